//! The one behaviour suite every [`Backend`] must pass.
//!
//! Call [`run_all`] from a backend's tests with a fresh, empty repository and the directory
//! that holds its files as seen from the test (it plants the temporary files of interrupted
//! writers there), or `None` for an object store, whose puts are atomic without temporary
//! files. Rename is checked where [`Backend::can_rename`] says the backend has it. It panics
//! with a message naming the violated rule.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::{remove_stale_temp, survey_temp, Backend, BackendError, STALE_TEMP_AGE};

/// Object stores page their listings (S3: 1,000 keys a request): 1,205 objects, put from 8
/// threads into an empty backend, all come back.
pub fn listing_past_one_page(b: &dyn Backend) {
    const N: usize = 1_205;
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                for i in (t..N).step_by(8) {
                    b.put(&format!("packs/{:02x}/obj{i:04}", i % 256), b"x")
                        .expect("put");
                }
            });
        }
    });
    b.put("config", b"{}").expect("put config");
    let mut names: Vec<String> = b
        .list("packs")
        .expect("list")
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), N, "a listing must return every object");
    assert!(names.contains(&"packs/04/obj1028".to_string()));
}

/// Run every conformance check against an empty backend whose files are in `root` (`None`:
/// the backend has no temporary files).
pub fn run_all(b: &dyn Backend, root: Option<&Path>) {
    put_get_roundtrip(b);
    never_overwrites(b);
    ranges(b);
    listing(b);
    missing_objects(b);
    refuses_bad_names(b);
    delete_and_rename(b);
    delete_many(b);
    large_object(b);
    match root {
        Some(root) => temp_files(b, root),
        None => no_temp_files(b),
    }
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
    if !b.can_rename() {
        assert!(
            matches!(
                b.rename("mv/src", "mv/new/dst"),
                Err(BackendError::Unsupported { .. })
            ),
            "a backend without rename must say so"
        );
        assert_eq!(b.get("mv/src").expect("get"), b"moving");
        assert_eq!(b.stat("mv/new/dst").expect("stat"), None);
        b.delete("mv/src").expect("delete");
        assert_eq!(b.stat("mv/src").expect("stat"), None);
        return;
    }
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

fn delete_many(b: &dyn Backend) {
    let names: Vec<String> = (0..5).map(|i| format!("many/{i}")).collect();
    for n in &names[..4] {
        b.put(n, b"x").expect("put");
    }
    b.put("many-kept", b"k").expect("put");
    // The fifth was never stored: missing names are no error.
    b.delete_many(&names).expect("delete many");
    assert!(
        b.list("many").expect("list").is_empty(),
        "delete_many left objects"
    );
    assert_eq!(b.get("many-kept").expect("get"), b"k");
    b.delete_many(&[]).expect("delete nothing");
    assert!(matches!(
        b.delete_many(&["../escape".to_string()]),
        Err(BackendError::InvalidName { .. })
    ));
    b.delete("many-kept").expect("delete");
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

/// A backend without temporary files lists none and removes none, but still refuses names
/// that are not temporary files.
fn no_temp_files(b: &dyn Backend) {
    assert!(b.list_temp().expect("list_temp").is_empty());
    assert!(matches!(
        b.remove_temp("tmpconf/.tmp-x"),
        Err(BackendError::NotFound(_))
    ));
    assert!(matches!(
        b.remove_temp("conf/a"),
        Err(BackendError::InvalidName { .. })
    ));
    assert_eq!(
        survey_temp(b).expect("survey").files,
        0,
        "survey found temporary files"
    );
}

/// Plant a temporary file as an interrupted writer leaves it, last modified `age` ago.
fn plant(root: &Path, name: &str, len: usize, age: Duration) {
    let path = root.join(name);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("create dir for planted temp file");
    }
    fs::write(&path, vec![7u8; len]).expect("plant temp file");
    let mtime = SystemTime::now() - age;
    fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(mtime))
        .expect("backdate planted temp file");
}

fn temp_files(b: &dyn Backend, root: &Path) {
    assert!(
        b.list_temp().expect("list_temp").is_empty(),
        "completed puts left temporary files"
    );
    b.put("tmpconf/obj", b"kept").expect("put");
    let hour = STALE_TEMP_AGE;
    plant(root, "tmpconf/.tmp-dead", 100, hour * 2);
    plant(
        root,
        ".tmp-dead-config",
        10,
        hour + Duration::from_secs(120),
    );
    plant(root, "tmpconf/deep/.tmp-live", 1000, Duration::ZERO);
    plant(
        root,
        "tmpconf/.tmp-paused",
        1,
        hour - Duration::from_secs(300),
    );

    let mut listed: Vec<(String, u64)> = b
        .list_temp()
        .expect("list_temp")
        .into_iter()
        .map(|t| (t.name, t.size))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            (".tmp-dead-config".to_string(), 10),
            ("tmpconf/.tmp-dead".to_string(), 100),
            ("tmpconf/.tmp-paused".to_string(), 1),
            ("tmpconf/deep/.tmp-live".to_string(), 1000),
        ]
    );
    let names: Vec<String> = b
        .list("tmpconf")
        .expect("list")
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec!["tmpconf/obj"], "list shows temporary files");
    let survey = survey_temp(b).expect("survey");
    assert_eq!(
        (survey.files, survey.bytes, survey.stale, survey.stale_bytes),
        (4, 1111, 2, 110)
    );

    for bad in [
        "tmpconf/obj",
        "../.tmp-x",
        "tmpconf/../../.tmp-x",
        "/.tmp-x",
        ".tmp-",
    ] {
        assert!(
            matches!(b.remove_temp(bad), Err(BackendError::InvalidName { .. })),
            "remove_temp {bad:?} must be refused"
        );
    }
    assert_eq!(b.get("tmpconf/obj").expect("object survives"), b"kept");

    let cleanup = remove_stale_temp(b, STALE_TEMP_AGE).expect("remove stale");
    assert_eq!(
        (cleanup.removed, cleanup.removed_bytes, cleanup.kept),
        (2, 110, 2)
    );
    assert!(cleanup.failed.is_empty(), "{:?}", cleanup.failed);
    let mut left: Vec<String> = b
        .list_temp()
        .expect("list_temp")
        .into_iter()
        .map(|t| t.name)
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec!["tmpconf/.tmp-paused", "tmpconf/deep/.tmp-live"],
        "a live temp file was removed"
    );
    assert_eq!(b.get("tmpconf/obj").expect("object survives"), b"kept");

    for name in left {
        b.remove_temp(&name).expect("remove_temp");
        assert!(matches!(
            b.remove_temp(&name),
            Err(BackendError::NotFound(_))
        ));
    }
    assert!(
        b.list_temp().expect("list_temp").is_empty(),
        "probe files left behind"
    );
}
