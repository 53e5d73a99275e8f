//! `copy_objects` from a local repository to an SFTP server, including a server crash in the
//! middle of the copy and the re-run that completes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vtool_testkit::sshd::Sshd;
use vtool_testkit::within;
use vtool_transfer::{
    copy_objects, Backend, CopyError, CopyOptions, CopyPhase, LocalBackend, NoProgress, Progress,
    SftpBackend,
};

/// Counts the objects a copy has sent.
struct ObjectsSent(Arc<AtomicU64>);

impl Progress for ObjectsSent {
    fn advance(&self, _bytes: u64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn phases() -> Vec<CopyPhase> {
    vec![
        CopyPhase::content_addressed("packs"),
        CopyPhase::new("index"),
        CopyPhase::new("keys"),
        CopyPhase::new("snapshots"),
    ]
}

/// A source repository: `packs` objects named by their BLAKE3, plus small metadata.
fn source(dir: &std::path::Path, packs: u32) -> (LocalBackend, u64) {
    let src = LocalBackend::create(dir).expect("source");
    let mut bytes = 0;
    for i in 0..packs {
        let data: Vec<u8> = (0..(200_000 + i * 10_007))
            .map(|j| (j * 13 + i) as u8)
            .collect();
        let h = blake3::hash(&data).to_hex().to_string();
        src.put(&format!("packs/{}/{h}", &h[..2]), &data)
            .expect("put pack");
        bytes += data.len() as u64;
    }
    for (name, data) in [
        ("index/0001", &b"idx"[..]),
        ("keys/k1", b"key"),
        ("snapshots/s1", b"snap"),
    ] {
        src.put(name, data).expect("put");
        bytes += data.len() as u64;
    }
    (src, bytes)
}

fn objects_at(dir: &std::path::Path) -> usize {
    fn walk(d: &std::path::Path, n: &mut usize) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

#[test]
fn copy_to_sftp_survives_a_server_crash_and_resumes() {
    let mut server = Sshd::start();
    let src_dir = tempfile::tempdir().expect("tmp");
    let (src, bytes) = source(src_dir.path(), 60);
    let total = 63u64;
    let dst_root = server.dir.path().join("offsite");
    let mut config = server.config(&dst_root);
    config.retries = 1;

    // First run: the server dies after some objects arrived.
    let copied = Arc::new(AtomicU64::new(0));
    let run = {
        let (copied, config) = (Arc::clone(&copied), config.clone());
        let src_path = src_dir.path().to_path_buf();
        std::thread::spawn(move || {
            let src = LocalBackend::open(src_path).expect("source");
            let dst = SftpBackend::create(config).expect("destination");
            copy_objects(
                &src,
                &dst,
                &phases(),
                &CopyOptions { parallel: 3 },
                &ObjectsSent(copied),
            )
        })
    };
    let start = std::time::Instant::now();
    while copied.load(Ordering::SeqCst) < 10 {
        assert!(start.elapsed() < Duration::from_secs(60), "copy too slow");
        std::thread::sleep(Duration::from_millis(2));
    }
    server.kill();
    let result = within(60, "interrupted copy", move || {
        run.join().expect("copy thread")
    });
    let err = result.expect_err("copy must fail while the server is down");
    assert!(matches!(err, CopyError::Backend { .. }), "{err}");
    assert!(err.to_string().contains("connection"), "{err}");
    let present = objects_at(&dst_root) as u64;
    assert!(
        present >= 10 && present < total,
        "{present} objects present"
    );
    assert!(
        !dst_root.join("snapshots").exists(),
        "snapshots copied before packs"
    );

    // Second run after the server is back: only the rest is sent.
    server.restart();
    let report = within(120, "resumed copy", move || {
        let dst = SftpBackend::open(config).expect("destination");
        copy_objects(&src, &dst, &phases(), &CopyOptions::default(), &NoProgress).expect("copy")
    });
    assert_eq!(report.total.copied_objects, total - present);
    assert_eq!(report.total.skipped_objects, present);
    assert_eq!(
        report.total.copied_bytes + report.total.skipped_bytes,
        bytes
    );
    assert_eq!(objects_at(&dst_root) as u64, total);

    // Every object arrived intact: the destination, read as a local repository, matches.
    let (src, dst) = (
        LocalBackend::open(src_dir.path()).expect("src"),
        LocalBackend::open(&dst_root).expect("dst"),
    );
    for phase in phases() {
        for o in src.list(&phase.dir).expect("list") {
            assert_eq!(
                dst.get(&o.name).expect("get"),
                src.get(&o.name).expect("get"),
                "{}",
                o.name
            );
        }
    }
}

#[test]
fn copy_from_sftp_to_local() {
    let server = Sshd::start();
    let remote_dir = server.dir.path().join("remote");
    let (_, bytes) = source(&remote_dir, 12);
    let config = server.config(&remote_dir);
    let local_dir = tempfile::tempdir().expect("tmp");
    let local_path = local_dir.path().to_path_buf();
    let report = within(120, "copy", move || {
        let src = SftpBackend::open(config).expect("open remote");
        let dst = LocalBackend::create(&local_path).expect("local");
        copy_objects(&src, &dst, &phases(), &CopyOptions::default(), &NoProgress).expect("copy")
    });
    assert_eq!(report.total.copied_objects, 15);
    assert_eq!(report.total.copied_bytes, bytes);
    assert_eq!(objects_at(local_dir.path()), 15);
}
