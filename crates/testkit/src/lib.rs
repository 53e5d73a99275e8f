//! What vtool's integration tests share, written once: a seeded random source, generated node
//! directories, tree listings and their comparison, a throwaway OpenSSH server, a throwaway
//! etcd with its certificates, a throwaway S3 server (moto), a Beacon API double, and running code under a time limit. Not
//! published; only dev-dependencies use it.

pub mod beacon;
pub mod etcd;
pub mod faulty;
pub mod garage;
pub mod keymanager;
pub mod moto;
pub mod node;
pub mod rng;
pub mod sshd;
pub mod tree;

use std::sync::mpsc;
use std::time::Duration;

pub use rng::Rng;

/// A sealed object whose body was edited, framed with its old MAC as a storage host without
/// the keys would store it: well formed, but it must fail authentication.
pub fn reframe(object: &serde_json::Value) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(&object["body"]).expect("json");
    vtool_snapshot::sealed::envelope(object["mac"].as_str().expect("mac"), &body)
}

/// Run `f` on its own thread and fail the test if it takes longer than `secs`: a hang in the
/// code under test becomes a failure, not a stuck CI job.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish within {secs}s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{what} ended without a result"),
        },
    }
}

/// True when the tests run as root, where file permissions do not stop reads.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
