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
        conformance::listing_past_one_page(&backend);
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
/// and then the conditional put (`If-None-Match: *`, honoured by moto) refuses the later one.
#[test]
fn racing_puts_of_one_name_store_a_winner_and_refuse_the_others() {
    let moto = Moto::start();
    moto.create_bucket("race");
    let config = moto.config("race", "repo");
    within(120, "racing puts", move || {
        let backend = S3Backend::create(config).expect("create");
        let mut refused = 0;
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
            for (_, r) in &results {
                assert!(
                    matches!(r, Ok(()) | Err(BackendError::AlreadyExists(_))),
                    "{r:?}"
                );
            }
            // moto checks the condition and stores without a lock, so on a loaded machine
            // both racers can pass it (the later bytes then stay): the store's race, which
            // AWS does not have. What the backend owes: no other error, and a refused racer
            // never reported as stored.
            assert!(!winners.is_empty(), "round {round}: {results:?}");
            let stored = backend.get(&name).expect("get");
            assert!(
                winners.iter().any(|w| stored == vec![*w; 64]),
                "round {round}: {results:?} stored {stored:?}"
            );
            refused += usize::from(winners.len() == 1);
        }
        assert!(refused > 0, "no round refused a racer");
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

/// A versioned bucket (Object Lock makes one) without retention behaves as any other:
/// deletes remove the version itself, not just hide it behind a delete marker.
#[test]
fn a_versioned_bucket_passes_conformance_and_deletes_for_good() {
    let moto = Moto::start();
    moto.create_locked_bucket("versioned");
    let config = moto.config("versioned", "repo");
    within(180, "conformance suite", move || {
        let backend = S3Backend::create(config).expect("create");
        assert_eq!(backend.retention_days(), None);
        conformance::run_all(&backend, None);
        backend.put("packs/ab/gone", b"x").expect("put");
        backend.delete("packs/ab/gone").expect("delete");
    });
    assert_eq!(moto.versions("versioned", "repo/packs/ab/gone"), 0);
}

#[test]
fn object_lock_retains_what_restores_need_and_the_store_refuses_its_deletion() {
    let moto = Moto::start();
    moto.create_locked_bucket("worm");
    moto.create_bucket("plain");
    let worm = moto.config("worm", "repo");
    let plain = moto.config("plain", "repo");
    within(120, "object lock", move || {
        let backend = S3Backend::create(plain).expect("create plain");
        assert!(matches!(
            backend.probe_object_lock().expect("probe"),
            Some(vtool_transfer::LockSupport::Absent(_))
        ));
        let refused = backend
            .enable_retention(7)
            .expect_err("no Object Lock on plain");
        assert!(refused.to_string().contains("Object Lock"), "{refused}");
        assert_eq!(backend.stat("object-lock").expect("stat"), None);

        let backend = S3Backend::create(worm.clone()).expect("create worm");
        assert_eq!(
            backend.probe_object_lock().expect("probe"),
            Some(vtool_transfer::LockSupport::Enabled)
        );
        backend.enable_retention(2).expect("enable");
        backend.put("packs/ab/abcd", b"pack").expect("put pack");
        backend.put("writers/w1", b"{}").expect("put writer");
        // Reopened, the location still retains.
        let backend = S3Backend::open(worm).expect("open");
        assert_eq!(backend.retention_days(), Some(2));
        backend.put("snapshots/s1", b"snap").expect("put snapshot");
        assert!(matches!(
            backend.delete("packs/ab/abcd"),
            Err(BackendError::PermissionDenied(_))
        ));
        assert!(matches!(
            backend.delete("snapshots/s1"),
            Err(BackendError::PermissionDenied(_))
        ));
        assert_eq!(backend.get("packs/ab/abcd").expect("still there"), b"pack");
        // Coordination records stay deletable.
        backend.delete("writers/w1").expect("delete writer");
        backend
    });
    let pack_until = moto
        .retain_until("worm", "repo/packs/ab/abcd")
        .expect("the pack is retained");
    assert!(moto.retain_until("worm", "repo/object-lock").is_some());
    let left = parse_time(&pack_until) - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::hours(47) && left <= time::Duration::hours(48),
        "retained {left} more"
    );
}

#[test]
fn retention_is_extended_from_now() {
    let moto = Moto::start();
    moto.create_locked_bucket("extend");
    let config = moto.config("extend", "repo");
    let backend = within(60, "put", move || {
        let backend = S3Backend::create(config).expect("create");
        backend.enable_retention(1).expect("enable");
        backend.put("index/i1", b"index").expect("put");
        backend
    });
    let first = moto
        .retain_until("extend", "repo/index/i1")
        .expect("retained");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let backend = within(60, "retain", move || {
        backend.retain(&["index/i1".to_string()]).expect("retain");
        assert!(matches!(
            backend.retain(&["index/missing".to_string()]),
            Err(BackendError::NotFound(_) | BackendError::Io { .. })
        ));
        backend
    });
    drop(backend);
    let second = moto
        .retain_until("extend", "repo/index/i1")
        .expect("retained");
    assert!(
        parse_time(&second) > parse_time(&first),
        "{first} then {second}"
    );
}

fn parse_time(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("retain-until {s:?}: {e}"))
}
