//! The SFTP backend against a real OpenSSH server on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vtool_testkit::sshd::{self, Sshd};
use vtool_testkit::{running_as_root, within};
use vtool_transfer::{conformance, Backend, BackendError, SftpBackend};

#[test]
fn sftp_backend_passes_conformance() {
    let server = Sshd::start();
    let root = server.dir.path().join("repos/one");
    let config = server.config(&root);
    let planted = root.clone();
    within(180, "conformance suite", move || {
        let backend = SftpBackend::create(config).expect("create");
        conformance::run_all(&backend, Some(&planted));
    });
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = walk(&root)
        .into_iter()
        .filter(|p| p.contains("/.tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn open_missing_root_is_no_repository_and_create_makes_it() {
    let server = Sshd::start();
    let root = server.dir.path().join("a/b/repo");
    let config = server.config(&root);
    within(60, "open/create", move || {
        match SftpBackend::open(config.clone()) {
            Err(BackendError::NoRepository(loc)) => assert!(loc.contains("a/b/repo"), "{loc}"),
            other => panic!("expected NoRepository, got {other:?}"),
        }
        SftpBackend::create(config.clone()).expect("create");
        assert!(root.is_dir());
        let b = SftpBackend::open(config).expect("open after create");
        b.put("config", b"c").expect("put");
        assert_eq!(std::fs::read(root.join("config")).expect("read"), b"c");
    });
}

#[test]
fn rename_onto_existing_file_is_refused_by_openssh() {
    // The no-overwrite guarantee of put relies on this server behaviour; pin it down.
    let server = Sshd::start();
    let root = server.dir.path().join("repo");
    let config = server.config(&root);
    within(60, "rename", move || {
        let b = SftpBackend::create(config).expect("create");
        b.put("x/a", b"aaa").expect("put");
        b.put("x/b", b"bbb").expect("put");
        assert!(matches!(
            b.rename("x/a", "x/b"),
            Err(BackendError::AlreadyExists(_))
        ));
        assert_eq!(std::fs::read(root.join("x/b")).expect("read"), b"bbb");
        assert_eq!(std::fs::read(root.join("x/a")).expect("read"), b"aaa");
    });
}

#[test]
fn url_open_uses_environment() {
    let server = Sshd::start();
    let root = server.dir.path().join("viaurl");
    let url = server.url(&root);
    // Only this test reads the VTOOL_SSH_* variables; the others pass a config directly.
    std::env::set_var("VTOOL_SSH_KEY", &server.user_key);
    std::env::set_var("VTOOL_SSH_KNOWN_HOSTS", &server.known_hosts);
    within(60, "url create/open", move || {
        assert!(matches!(
            vtool_transfer::url::open(&url),
            Err(BackendError::NoRepository(_))
        ));
        let b = vtool_transfer::url::create(&url).expect("create via url");
        b.put("snapshots/s", b"x").expect("put");
        let b = vtool_transfer::url::open(&url).expect("open via url");
        assert_eq!(b.get("snapshots/s").expect("get"), b"x");
        assert!(b.location().starts_with("sftp://"), "{}", b.location());
    });
}

#[test]
fn wrong_host_key_is_refused() {
    let server = Sshd::start();
    let other = server.dir.path().join("other_host_key");
    sshd::keygen(&other);
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).expect("pub");
    let known_hosts = server.dir.path().join("known_hosts_wrong");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {other_pub}", server.port),
    )
    .expect("w");
    let mut config = server.config(&server.dir.path().join("repo"));
    config.known_hosts = Some(known_hosts.clone());
    config.accept_new_host_key = true; // must not help against a changed key
    let err = within(60, "connect", move || {
        SftpBackend::create(config).expect_err("must refuse")
    });
    assert!(
        matches!(err, BackendError::HostKeyMismatch { line: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("HOST KEY") && msg.contains("known_hosts_wrong"),
        "{msg}"
    );
    // The recorded key was not replaced.
    assert_eq!(
        std::fs::read_to_string(&known_hosts).expect("read"),
        format!("[127.0.0.1]:{} {other_pub}", server.port)
    );
}

#[test]
fn unknown_host_is_refused_unless_accepted() {
    let server = Sshd::start();
    let known_hosts = server.dir.path().join("ssh/known_hosts_empty");
    let mut config = server.config(&server.dir.path().join("repo"));
    config.known_hosts = Some(known_hosts.clone());
    let refused = config.clone();
    let err = within(60, "connect", move || {
        SftpBackend::create(refused).expect_err("must refuse")
    });
    assert!(matches!(err, BackendError::UnknownHost { .. }), "{err:?}");
    assert!(
        err.to_string().contains("VTOOL_SSH_ACCEPT_NEW_HOST"),
        "{err}"
    );
    assert!(!known_hosts.exists(), "refused key was recorded");

    let mut accept = config.clone();
    accept.accept_new_host_key = true;
    within(60, "accept", move || {
        SftpBackend::create(accept).map(|_| ())
    })
    .expect("accepted host");
    let recorded = std::fs::read_to_string(&known_hosts).expect("recorded");
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{}", server.port)),
        "{recorded}"
    );
    // Now known: a strict client connects.
    within(60, "strict", move || SftpBackend::open(config).map(|_| ())).expect("known host");
}

#[test]
fn wrong_user_key_is_an_authentication_error() {
    let server = Sshd::start();
    let stranger = server.dir.path().join("stranger_key");
    sshd::keygen(&stranger);
    let mut config = server.config(&server.dir.path().join("repo"));
    config.identity_file = Some(stranger);
    let err = within(60, "connect", move || {
        SftpBackend::create(config).expect_err("must fail")
    });
    assert!(matches!(err, BackendError::AuthFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("stranger_key"), "{err}");

    let mut missing = server.config(&server.dir.path().join("repo"));
    missing.identity_file = Some(server.dir.path().join("no_such_key"));
    let err = within(60, "connect", move || {
        SftpBackend::create(missing).expect_err("must fail")
    });
    assert!(err.to_string().contains("no_such_key"), "{err}");
}

#[test]
fn read_only_server_gives_permission_denied() {
    // `internal-sftp -R` refuses every write, even for root (which ignores file modes).
    let server = Sshd::start_read_only();
    let root = server.dir.path().join("repo");
    std::fs::create_dir_all(root.join("snapshots")).expect("mkdir");
    std::fs::write(root.join("snapshots/old"), b"kept").expect("write");
    let config = server.config(&root);
    within(60, "read-only", move || {
        let b = SftpBackend::open(config).expect("open read-only repository");
        assert_eq!(b.get("snapshots/old").expect("reads still work"), b"kept");
        match b.put("snapshots/new", b"x") {
            Err(BackendError::PermissionDenied(what)) => {
                assert!(what.contains("snapshots/new"), "{what}")
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
        assert!(matches!(
            b.delete("snapshots/old"),
            Err(BackendError::PermissionDenied(_))
        ));
    });
}

#[test]
fn read_only_directory_gives_permission_denied() {
    // Root's sessions bypass directory modes, so under root (as in CI) the session logs in
    // as the unprivileged `nobody`.
    let server = if running_as_root() {
        Sshd::start_as("nobody")
    } else {
        Sshd::start()
    };
    let root = server.dir.path().join("repo");
    std::fs::create_dir_all(root.join("snapshots")).expect("mkdir");
    let config = server.config(&root);
    let set_mode = |mode| {
        use std::os::unix::fs::PermissionsExt;
        for d in [root.clone(), root.join("snapshots")] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
    };
    set_mode(0o555);
    let result = within(60, "chmod 0555", move || {
        let b = SftpBackend::open(config)?;
        b.put("snapshots/new", b"x")
    });
    set_mode(0o755);
    assert!(
        matches!(result, Err(BackendError::PermissionDenied(_))),
        "{result:?}"
    );
}

#[test]
fn server_killed_mid_sequence_then_restarted() {
    let mut server = Sshd::start();
    let root = server.dir.path().join("repo");
    let mut config = server.config(&root);
    config.retries = 2;
    config.connections = 2;
    let backend = Arc::new(SftpBackend::create(config).expect("create"));
    let object = |i: usize| -> Vec<u8> { (0..1_000_000).map(|j| (j * 31 + i * 7) as u8).collect() };
    const COUNT: usize = 40;

    // Put objects one after another until the server disappears.
    let done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (backend, done) = (Arc::clone(&backend), Arc::clone(&done));
        std::thread::spawn(move || {
            for i in 0..COUNT {
                if let Err(e) = backend.put(&format!("packs/{i:03}"), &object(i)) {
                    return Some((i, e));
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            None
        })
    };
    let wait_start = std::time::Instant::now();
    while done.load(Ordering::SeqCst) < 5 {
        assert!(
            wait_start.elapsed() < Duration::from_secs(60),
            "puts too slow"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    let failed = within(60, "put while the server is down", move || {
        worker.join().expect("worker")
    });
    let (failed_at, err) = failed.expect("a put must fail while the server is down");
    let msg = err.to_string();
    assert!(
        matches!(&err, BackendError::Io { .. }) && msg.contains("connection"),
        "unclear error: {msg}"
    );
    assert!(err.is_transient(), "{msg}");

    server.restart();
    let check = Arc::clone(&backend);
    within(120, "resume after restart", move || {
        for i in failed_at..COUNT {
            match check.put(&format!("packs/{i:03}"), &object(i)) {
                Ok(()) => {}
                // The interrupted put may have completed on the server before the kill.
                Err(BackendError::AlreadyExists(_)) if i == failed_at => {}
                Err(e) => panic!("put {i} after restart: {e}"),
            }
        }
        let listed = check.list("packs").expect("list");
        assert_eq!(listed.len(), COUNT, "{listed:?}");
        for i in 0..COUNT {
            assert_eq!(
                check.get(&format!("packs/{i:03}")).expect("get"),
                object(i),
                "object {i}"
            );
        }
    });
    // A fresh backend sees the same intact data.
    let config = server.config(&root);
    within(60, "reopen", move || {
        let b = SftpBackend::open(config).expect("open");
        assert_eq!(b.list("packs").expect("list").len(), COUNT);
    });
}

#[test]
fn parallel_callers_share_the_pool() {
    let server = Sshd::start();
    let config = server.config(&server.dir.path().join("repo"));
    within(120, "parallel puts", move || {
        let b = SftpBackend::create(config).expect("create");
        std::thread::scope(|s| {
            for t in 0..8 {
                let b = &b;
                s.spawn(move || {
                    for i in 0..10 {
                        let data = vec![(t * 10 + i) as u8; 100_000 + i * 1000];
                        b.put(&format!("packs/{t}/{i}"), &data).expect("put");
                        assert_eq!(b.get(&format!("packs/{t}/{i}")).expect("get"), data);
                    }
                });
            }
        });
        assert_eq!(b.list("packs").expect("list").len(), 80);
    });
}
