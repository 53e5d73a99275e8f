//! Test helpers shared by the sftp test binaries; each binary uses a different subset.
#![allow(dead_code)]

pub mod sshd;

use std::sync::mpsc;
use std::time::Duration;

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
