//! The S3 backend against moto, a real S3 server, on loopback.

use vtool_testkit::moto::Moto;
use vtool_testkit::within;
use vtool_transfer::{conformance, Backend, BackendError, S3Backend};

#[test]
fn s3_backend_passes_conformance() {
    let moto = Moto::start();
    moto.create_bucket("conformance");
    let config = moto.config("conformance", "repos/one");
    within(180, "conformance suite", move || {
        let backend = S3Backend::create(config).expect("create");
        conformance::run_all(&backend, None);
    });
}

/// A listing spans pages: S3 returns at most 1,000 keys per request.
#[test]
fn listing_goes_past_one_page() {
    let moto = Moto::start();
    moto.create_bucket("many");
    let config = moto.config("many", "repo");
    within(300, "1,205 puts and a listing", move || {
        let backend = S3Backend::create(config).expect("create");
        std::thread::scope(|s| {
            for t in 0..8 {
                let backend = &backend;
                s.spawn(move || {
                    for i in (t..1_205).step_by(8) {
                        backend
                            .put(&format!("packs/{:02x}/obj{i:04}", i % 256), b"x")
                            .expect("put");
                    }
                });
            }
        });
        backend.put("config", b"{}").expect("put config");
        let mut names: Vec<String> = backend
            .list("packs")
            .expect("list")
            .into_iter()
            .map(|o| o.name)
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 1_205);
        assert!(names.contains(&"packs/04/obj1028".to_string()));
    });
}

#[test]
fn prefixes_are_separate_repositories() {
    let moto = Moto::start();
    moto.create_bucket("shared");
    within(60, "two prefixes", move || {
        let a = S3Backend::create(moto.config("shared", "a")).expect("create a");
        a.put("config", b"a").expect("put");
        // A prefix that is a string prefix of another is still another repository.
        let ab = S3Backend::create(moto.config("shared", "a-b")).expect("create a-b");
        assert_eq!(ab.stat("config").expect("stat"), None);
        assert!(matches!(
            S3Backend::open(moto.config("shared", "empty")),
            Err(BackendError::NoRepository(_))
        ));
        let reopened = S3Backend::open(moto.config("shared", "a")).expect("open a");
        assert_eq!(reopened.get("config").expect("get"), b"a");
        assert!(matches!(
            S3Backend::create(moto.config("no-such-bucket", "a")),
            Err(BackendError::NotFound(_) | BackendError::Io { .. })
        ));
    });
}

/// Two writers racing for one new name: the HEAD before each put can miss the other writer,
/// and then the conditional put (`If-None-Match: *`, honoured by moto) lets exactly one win.
#[test]
fn racing_puts_of_one_name_have_one_winner() {
    let moto = Moto::start();
    moto.create_bucket("race");
    let config = moto.config("race", "repo");
    within(120, "racing puts", move || {
        let backend = S3Backend::create(config).expect("create");
        for round in 0..30 {
            let name = format!("snapshots/race{round:02}");
            let barrier = std::sync::Barrier::new(2);
            let results: Vec<(u8, Result<(), BackendError>)> = std::thread::scope(|s| {
                let racers: Vec<_> = [1u8, 2]
                    .into_iter()
                    .map(|who| {
                        let (backend, barrier, name) = (&backend, &barrier, &name);
                        s.spawn(move || {
                            barrier.wait();
                            (who, backend.put(name, &[who; 64]))
                        })
                    })
                    .collect();
                racers
                    .into_iter()
                    .map(|r| r.join().expect("racer"))
                    .collect()
            });
            let winners: Vec<u8> = results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(who, _)| *who)
                .collect();
            assert_eq!(winners.len(), 1, "round {round}: {results:?}");
            for (_, r) in &results {
                assert!(
                    matches!(r, Ok(()) | Err(BackendError::AlreadyExists(_))),
                    "{r:?}"
                );
            }
            assert_eq!(backend.get(&name).expect("get"), vec![winners[0]; 64]);
        }
    });
}

/// A store that refuses the credentials (403) is a permission error naming what was refused,
/// not a missing object or a transport error.
#[test]
fn refused_credentials_are_permission_denied() {
    // Two free requests: the readiness probe and creating the bucket.
    let moto = Moto::start_checking_keys(2);
    moto.create_bucket("locked");
    let config = moto.config("locked", "repo");
    within(60, "refused credentials", move || {
        match S3Backend::create(config) {
            Err(BackendError::PermissionDenied(what)) => {
                assert!(what.contains("s3://locked/repo"), "{what}")
            }
            Err(other) => panic!("expected PermissionDenied, got {other:?}"),
            Ok(_) => panic!("expected PermissionDenied, got a backend"),
        }
    });
}

/// moto honours `If-None-Match: *`; a directory has no such question.
#[test]
fn the_conditional_put_probe_answers() {
    let moto = Moto::start();
    moto.create_bucket("probe");
    let config = moto.config("probe", "repo");
    within(60, "probe", move || {
        let backend = S3Backend::create(config).expect("create");
        assert_eq!(backend.probe_conditional_put().expect("probe"), Some(true));
        // Asked again, with a probe name of its own.
        assert_eq!(backend.probe_conditional_put().expect("probe"), Some(true));
    });
    let dir = tempfile::tempdir().expect("dir");
    let local = vtool_transfer::LocalBackend::create(dir.path().join("repo")).expect("local");
    assert_eq!(local.probe_conditional_put().expect("probe"), None);
}
