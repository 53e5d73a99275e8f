//! The S3 backend through a proxy that injects 503 SlowDown, connections reset before and
//! after the server handled a request, and truncated bodies: every operation is retried to
//! a correct outcome, never a corrupt object, a short read or a false success.

use vtool_testkit::faulty::{Fault, FaultyProxy};
use vtool_testkit::moto::Moto;
use vtool_testkit::{within, Rng};
use vtool_transfer::{Backend, BackendError, S3Backend};

#[test]
fn injected_faults_are_retried_and_never_corrupt_or_falsely_succeed() {
    let moto = Moto::start();
    moto.create_bucket("faults");
    // Every third request meets a fault.
    let proxy = FaultyProxy::start(moto.port, 3);
    let mut config = moto.config("faults", "repo");
    config.endpoint = Some(proxy.endpoint());
    config.retries = 8;
    config.retry_delay = std::time::Duration::from_millis(20);
    let direct = moto.config("faults", "repo");
    let objects = within(300, "operations through faults", move || {
        let backend = S3Backend::create(config).expect("create through faults");
        let mut rng = Rng::new(14);
        let mut objects = Vec::new();
        for i in 0..40 {
            let len = match i % 4 {
                0 => 0,
                1 => 1 + rng.below(4096) as usize,
                2 => 64 << 10,
                _ => 1 << 20,
            };
            let name = format!("packs/{:02x}/obj{i:03}", i);
            let data = rng.bytes(len);
            backend.put(&name, &data).expect("put through faults");
            assert_eq!(backend.get(&name).expect("get"), data, "{name}");
            if len > 10 {
                let (off, n) = (len as u64 / 3, len as u64 / 2);
                assert_eq!(
                    backend.get_range(&name, off, n).expect("range"),
                    data[off as usize..(off + n) as usize],
                    "{name} range"
                );
            }
            assert_eq!(backend.stat(&name).expect("stat"), Some(len as u64));
            // A second put of the name is refused even when its answers are lost.
            assert!(matches!(
                backend.put(&name, b"other"),
                Err(BackendError::AlreadyExists(_))
            ));
            objects.push((name, data));
        }
        let listed = backend.list("packs").expect("list").len();
        assert_eq!(listed, objects.len());
        for (name, _) in objects.iter().step_by(5) {
            backend.delete(name).expect("delete through faults");
            assert_eq!(backend.stat(name).expect("stat"), None);
        }
        objects
    });
    for kind in Fault::ALL {
        assert!(
            proxy.injected(kind) > 0,
            "no {kind:?} injected: {:?}",
            proxy.log()
        );
    }
    // Answers lost after the server stored a PUT: the retry meets If-None-Match.
    assert!(
        proxy
            .log()
            .iter()
            .any(|(k, line)| *k == Fault::ResetAfter && line.starts_with("PUT")),
        "{:?}",
        proxy.log()
    );
    // Read without the proxy: exactly what was put, nothing else, nothing torn.
    let direct = S3Backend::open(direct).expect("open direct");
    for (i, (name, data)) in objects.iter().enumerate() {
        if i % 5 == 0 {
            assert_eq!(direct.stat(name).expect("stat"), None, "{name} deleted");
        } else {
            assert_eq!(&direct.get(name).expect("get direct"), data, "{name}");
        }
    }
}
