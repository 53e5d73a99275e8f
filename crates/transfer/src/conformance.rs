//! The one behaviour suite every [`Backend`] must pass.
//!
//! Call [`run_all`] from a backend's tests with a fresh, empty repository. It panics with a
//! message naming the violated rule.

use crate::{Backend, BackendError};

/// Run every conformance check against an empty backend.
pub fn run_all(b: &dyn Backend) {
    put_get_roundtrip(b);
    never_overwrites(b);
    ranges(b);
    listing(b);
    missing_objects(b);
    refuses_bad_names(b);
    delete_and_rename(b);
    large_object(b);
}

fn put_get_roundtrip(b: &dyn Backend) {
    b.put("conf/a", b"alpha").expect("put conf/a");
    assert_eq!(b.get("conf/a").expect("get conf/a"), b"alpha");
    assert_eq!(b.stat("conf/a").expect("stat"), Some(5));
    b.put("conf/empty", b"").expect("put empty object");
    assert_eq!(b.get("conf/empty").expect("get empty"), b"");
}

fn never_overwrites(b: &dyn Backend) {
    b.put("conf/once", b"first").expect("put conf/once");
    match b.put("conf/once", b"second") {
        Err(BackendError::AlreadyExists(_)) => {}
        other => panic!("second put of an existing name must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        b.get("conf/once").expect("get"),
        b"first",
        "object was overwritten"
    );
}

fn ranges(b: &dyn Backend) {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    b.put("conf/range", &data).expect("put");
    assert_eq!(
        b.get_range("conf/range", 0, 10).expect("range"),
        &data[..10]
    );
    assert_eq!(
        b.get_range("conf/range", 9_990, 10).expect("range at end"),
        &data[9_990..]
    );
    assert_eq!(b.get_range("conf/range", 77, 0).expect("empty range"), b"");
    assert!(
        b.get_range("conf/range", 9_995, 10).is_err(),
        "range past the end must fail"
    );
}

fn listing(b: &dyn Backend) {
    b.put("list/aa/one", b"1").expect("put");
    b.put("list/bb/two", b"22").expect("put");
    b.put("list/three", b"333").expect("put");
    let mut got: Vec<(String, u64)> = b
        .list("list")
        .expect("list")
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("list/aa/one".to_string(), 1),
            ("list/bb/two".to_string(), 2),
            ("list/three".to_string(), 3)
        ]
    );
    assert!(b.list("nothing-here").expect("list missing dir").is_empty());
}

fn missing_objects(b: &dyn Backend) {
    assert!(matches!(
        b.get("conf/missing"),
        Err(BackendError::NotFound(_))
    ));
    assert_eq!(b.stat("conf/missing").expect("stat missing"), None);
    assert!(matches!(
        b.delete("conf/missing"),
        Err(BackendError::NotFound(_))
    ));
}

fn refuses_bad_names(b: &dyn Backend) {
    for bad in ["../escape", "a/../../b", "/abs", "conf/.hidden", ""] {
        assert!(
            matches!(b.put(bad, b"x"), Err(BackendError::InvalidName { .. })),
            "put {bad:?} must be refused"
        );
        assert!(b.get(bad).is_err(), "get {bad:?} must be refused");
    }
}

fn delete_and_rename(b: &dyn Backend) {
    b.put("mv/src", b"moving").expect("put");
    b.put("mv/taken", b"other").expect("put");
    assert!(matches!(
        b.rename("mv/src", "mv/taken"),
        Err(BackendError::AlreadyExists(_))
    ));
    assert_eq!(
        b.get("mv/taken").expect("get"),
        b"other",
        "rename overwrote"
    );
    b.rename("mv/src", "mv/new/dst").expect("rename");
    assert_eq!(b.get("mv/new/dst").expect("get renamed"), b"moving");
    assert_eq!(b.stat("mv/src").expect("stat"), None);
    b.delete("mv/new/dst").expect("delete");
    assert_eq!(b.stat("mv/new/dst").expect("stat"), None);
}

fn large_object(b: &dyn Backend) {
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    b.put("big/object", &data).expect("put 5 MB");
    assert_eq!(b.get("big/object").expect("get 5 MB"), data);
    assert_eq!(
        b.get_range("big/object", 3_000_000, 1_000_000)
            .expect("range"),
        &data[3_000_000..4_000_000]
    );
}
