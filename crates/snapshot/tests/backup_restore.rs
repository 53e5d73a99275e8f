//! Backup and restore through the library API on a generated validator-like directory:
//! round trips, deduplication, the files cache, unreadable and missing sources.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::TestRepo;
use vtool_snapshot::{backup, BackupOptions, Error, NoProgress};
use vtool_testkit::node::{make_validator_dir, FREEZER_SIZE, TABLE_SIZE};
use vtool_testkit::tree::{assert_same_tree, copy_tree, listing, set_mtime, Kind};
use vtool_testkit::{running_as_root, Rng};

/// Number of regular files `make_validator_dir` creates.
const FILES: u64 = 3 + 1 + 1 + 1 + 3 + 1 + 1;

fn total_bytes(root: &Path) -> u64 {
    listing(root)
        .values()
        .map(|e| match &e.kind {
            Kind::File(d) => d.len() as u64,
            _ => 0,
        })
        .sum()
}

#[test]
fn round_trip_with_mutation_dedups_and_restores_both_states() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src/node");
    fs::create_dir_all(src.parent().expect("parent")).expect("mkdir");
    make_validator_dir(&src);
    let size_a = total_bytes(&src);

    let r1 = t.backup(&[&src], true);
    let s1 = &r1.snapshot.summary;
    assert_eq!(s1.files, FILES);
    assert_eq!(s1.bytes, size_a);
    assert_eq!(s1.bytes_read, size_a);
    assert_eq!(r1.files_read, FILES);
    assert!(r1.warnings.is_empty(), "{:?}", r1.warnings);
    // Everything is new, but the freezer compresses: less is stored than was read, and no
    // more than the data plus a little framing.
    assert!(
        s1.bytes_added_stored < size_a && s1.bytes_added_stored > size_a / 2,
        "first backup stored {} of {size_a} bytes",
        s1.bytes_added_stored
    );

    // Keep state A for the comparison with snapshot 1.
    let state_a = work.path().join("a/node");
    fs::create_dir_all(state_a.parent().expect("parent")).expect("mkdir");
    copy_tree(&src, &state_a);
    assert_same_tree(&src, &state_a);

    // Mutate: append 1% to the freezer, replace a table, change a keystore, add a keystore,
    // delete a table.
    let mut rng = Rng::new(7);
    let freezer = src.join("beacon/ancient/bodies.cdat");
    let appended = rng.records(FREEZER_SIZE / 100, 1_000_000);
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&freezer)
            .expect("open freezer");
        f.write_all(&appended).expect("append");
    }
    let table = src.join("beacon/chaindata/000007.ldb");
    let new_table = rng.bytes(TABLE_SIZE);
    fs::write(&table, &new_table).expect("replace table");
    let ks1 = src.join("validator/keystores/keystore-1.json");
    let ks1_new = fs::read_to_string(&ks1).expect("read keystore").replace(
        "\"version\": 4",
        "\"version\": 4, \"description\": \"rotated\"",
    );
    fs::write(&ks1, &ks1_new).expect("rewrite keystore");
    let ks3 = src.join("validator/keystores/keystore-3.json");
    let ks3_data = b"{\"version\": 4, \"pubkey\": \"added\"}\n";
    fs::write(&ks3, ks3_data).expect("add keystore");
    fs::set_permissions(&ks3, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::remove_file(src.join("beacon/chaindata/000004.ldb")).expect("delete table");
    for (i, p) in [&freezer, &table, &ks1, &ks3].into_iter().enumerate() {
        set_mtime(p, 1_750_000_000 + i as i64, 987_654_321 - i as u32);
    }
    for (i, d) in ["beacon/chaindata", "validator/keystores"]
        .iter()
        .enumerate()
    {
        set_mtime(&src.join(d), 1_760_000_000 + i as i64, 5 + i as u32);
    }
    let changed = (appended.len() + new_table.len() + ks1_new.len() + ks3_data.len()) as u64;

    let r2 = t.backup(&[&src], true);
    let s2 = &r2.snapshot.summary;
    assert_eq!(s2.files, FILES); // one added, one deleted
    assert_eq!(s2.bytes, total_bytes(&src));
    assert_eq!(
        r2.files_read, 4,
        "only the four changed files should be read"
    );
    assert_eq!(r2.files_unchanged, FILES - 4);
    assert_ne!(r1.snapshot.fingerprint, r2.snapshot.fingerprint);
    // Deduplication: roughly only what changed is stored: the new table (incompressible),
    // the freezer's last chunk or two (compressible), the keystores and the trees.
    let bound = 2 * changed + (256 << 10);
    assert!(
        s2.bytes_added_stored <= bound,
        "second backup stored {} bytes for {changed} changed bytes (bound {bound})",
        s2.bytes_added_stored
    );
    assert!(
        s2.bytes_added_stored >= new_table.len() as u64,
        "the replaced table ({} bytes of random data) must be stored, but only {} bytes were",
        new_table.len(),
        s2.bytes_added_stored
    );
    assert!(
        s2.bytes_added_stored * 2 < s1.bytes_added_stored,
        "second backup stored {} bytes, first {}",
        s2.bytes_added_stored,
        s1.bytes_added_stored
    );

    // Both snapshots restore to exactly their source state.
    let out1 = work.path().join("restore1");
    let rep1 = t
        .restore(&r1.snapshot_id.to_hex(), &out1)
        .expect("restore 1");
    assert!(rep1.damaged.is_empty(), "{:?}", rep1.damaged);
    assert_eq!(rep1.files, FILES);
    assert_eq!(rep1.bytes, size_a);
    assert_eq!(
        fs::read_dir(&out1).expect("readdir").count(),
        1,
        "only node/ expected"
    );
    assert_same_tree(&state_a, &out1.join("node"));

    let out2 = work.path().join("restore2");
    let rep2 = t.restore("latest", &out2).expect("restore 2");
    assert!(rep2.damaged.is_empty(), "{:?}", rep2.damaged);
    assert_same_tree(&src, &out2.join("node"));
    assert!(!out2.join("node/beacon/chaindata/000004.ldb").exists());
    assert_eq!(
        fs::read_link(out2.join("node/dangling")).expect("readlink"),
        Path::new("/nonexistent/x")
    );
    assert!(out2.join("node/empty").is_dir());
}

#[test]
fn several_roots_restore_side_by_side() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let a = work.path().join("one/validator");
    let b = work.path().join("two/config.toml");
    fs::create_dir_all(&a).expect("mkdir");
    fs::create_dir_all(b.parent().expect("parent")).expect("mkdir");
    fs::write(a.join("slashing.sqlite"), Rng::new(1).bytes(100_000)).expect("write");
    fs::write(&b, "network = \"mainnet\"\n").expect("write");
    set_mtime(&b, 1_600_000_000, 1);
    set_mtime(&a.join("slashing.sqlite"), 1_600_000_001, 2);
    set_mtime(&a, 1_600_000_002, 3);
    let r = t.backup(&[&a, &b], false);
    assert_eq!(r.snapshot.paths.len(), 2);
    assert_eq!(r.snapshot.summary.files, 2);

    let out = work.path().join("out");
    t.restore("latest", &out).expect("restore");
    assert_same_tree(&a, &out.join("validator"));
    assert_same_tree(&b, &out.join("config.toml"));

    // Two roots with the same last component would collide in the target.
    let c = work.path().join("three/validator");
    fs::create_dir_all(&c).expect("mkdir");
    let opts = BackupOptions {
        paths: vec![a.clone(), c],
        ..Default::default()
    };
    match backup(&t.repo, &t.backup_key, &opts, &NoProgress) {
        Err(Error::DuplicateRootName(n)) => assert_eq!(n, "validator"),
        other => panic!(
            "expected DuplicateRootName, got {:?}",
            other.map(|r| r.snapshot_id)
        ),
    }
}

#[test]
fn files_cache_skips_unchanged_files_without_changing_the_fingerprint() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    make_validator_dir(&src);
    let size = total_bytes(&src);

    let first = t.backup(&[&src], true);
    assert_eq!(first.files_read, FILES);
    assert_eq!(first.snapshot.summary.bytes_read, size);

    // Nothing changed: nothing is read, nothing is stored, same fingerprint.
    let cached = t.backup(&[&src], true);
    assert_eq!(cached.files_read, 0);
    assert_eq!(cached.files_unchanged, FILES);
    assert_eq!(cached.snapshot.summary.bytes_read, 0);
    assert_eq!(cached.snapshot.summary.bytes_added_stored, 0);
    assert_eq!(cached.new_blobs, 0);
    assert_eq!(cached.snapshot.summary.bytes, size);
    assert_eq!(cached.snapshot.fingerprint, first.snapshot.fingerprint);
    assert_eq!(cached.snapshot.tree, first.snapshot.tree);

    // Without the cache every file is read again, and the result is the same.
    let uncached = t.backup(&[&src], false);
    assert_eq!(uncached.files_read, FILES);
    assert_eq!(uncached.files_unchanged, 0);
    assert_eq!(uncached.snapshot.summary.bytes_read, size);
    assert_eq!(uncached.snapshot.summary.bytes_added_stored, 0);
    assert_eq!(uncached.snapshot.fingerprint, first.snapshot.fingerprint);

    // Touching one file's mtime makes exactly that file be read again.
    let touched = src.join("beacon/chaindata/000009.ldb");
    set_mtime(&touched, 1_800_000_000, 1);
    let after = t.backup(&[&src], true);
    assert_eq!(after.files_read, 1);
    assert_eq!(after.snapshot.summary.bytes_read, TABLE_SIZE as u64);
    assert_ne!(after.snapshot.fingerprint, first.snapshot.fingerprint);
    // Same content: only the changed trees are new.
    assert!(
        after.snapshot.summary.bytes_added_stored < 64 << 10,
        "stored {} bytes for an mtime change",
        after.snapshot.summary.bytes_added_stored
    );

    // Changing content while keeping size and mtime is still caught through the ctime.
    let ks = src.join("validator/keystores/keystore-0.json");
    let meta = fs::metadata(&ks).expect("stat");
    let mut data = fs::read(&ks).expect("read");
    data[10] ^= 0x20;
    fs::write(&ks, &data).expect("write");
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    filetime::set_file_mtime(&ks, mtime).expect("restore mtime");
    let sneaky = t.backup(&[&src], true);
    assert_eq!(sneaky.files_read, 1);
    assert_ne!(sneaky.snapshot.fingerprint, after.snapshot.fingerprint);

    let out = work.path().join("out");
    t.restore("latest", &out).expect("restore");
    assert_same_tree(&src, &out.join("node"));
}

#[test]
fn unreadable_file_is_reported_or_backed_up_never_silently_lost() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("a.txt"), "a").expect("write");
    fs::write(src.join("secret.key"), "hidden").expect("write");
    fs::write(src.join("z.txt"), "z").expect("write");
    fs::set_permissions(src.join("secret.key"), fs::Permissions::from_mode(0o000)).expect("chmod");
    set_mtime(&src, 1_650_000_000, 42);

    let r = t.backup(&[&src], false);
    let out = work.path().join("out");
    let rep = t.restore("latest", &out).expect("restore");
    assert!(rep.damaged.is_empty());
    if running_as_root() {
        // Root reads it regardless of its mode: it must be stored, mode 000 included.
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.snapshot.summary.files, 3);
        assert_same_tree(&src, &out.join("node"));
    } else {
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].path.ends_with("secret.key"));
        assert!(
            r.warnings[0].message.contains("not backed up"),
            "{}",
            r.warnings[0].message
        );
        assert_eq!(r.snapshot.summary.warnings, 1);
        assert_eq!(r.snapshot.summary.files, 2);
        assert!(!out.join("node/secret.key").exists());
        assert_eq!(fs::read(out.join("node/a.txt")).expect("a"), b"a");
        assert_eq!(fs::read(out.join("node/z.txt")).expect("z"), b"z");
    }
}

#[test]
fn read_error_is_a_warning_and_the_file_is_left_out() {
    // /proc/self/mem is a regular file whose first read fails (EIO) even for root.
    let mem = Path::new("/proc/self/mem");
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("ok.txt"), "fine").expect("write");

    let r = t.backup(&[&src, mem], false);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert_eq!(r.warnings[0].path, "/proc/self/mem");
    assert!(
        r.warnings[0].message.contains("not backed up"),
        "{}",
        r.warnings[0].message
    );
    assert_eq!(r.snapshot.summary.warnings, 1);
    assert_eq!(r.snapshot.summary.files, 1);

    let out = work.path().join("out");
    t.restore("latest", &out).expect("restore");
    assert!(
        !out.join("mem").exists(),
        "a failed read must not restore as a file"
    );
    assert_same_tree(&src, &out.join("node"));
}

#[test]
fn missing_source_is_refused_before_anything_is_written() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let present = work.path().join("present");
    fs::create_dir(&present).expect("mkdir");
    let missing = work.path().join("does-not-exist");
    let before = t.objects();
    let opts = BackupOptions {
        paths: vec![present, missing.clone()],
        ..Default::default()
    };
    match backup(&t.repo, &t.backup_key, &opts, &NoProgress) {
        Err(Error::SourceMissing(p)) => assert_eq!(p, missing),
        other => panic!(
            "expected SourceMissing, got {:?}",
            other.map(|r| r.snapshot_id)
        ),
    }
    assert_eq!(t.objects(), before);
    assert!(t.repo.snapshots().expect("snapshots").objects.is_empty());
}

#[test]
fn fifo_and_socket_are_skipped_not_read() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("data"), "x").expect("write");
    let status = std::process::Command::new("mkfifo")
        .arg(src.join("pipe"))
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let _sock = std::os::unix::net::UnixListener::bind(src.join("geth.ipc")).expect("bind");
    // Reading the FIFO would block forever; the backup must finish.
    let r = t.backup(&[&src], true);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.snapshot.summary.files, 1);
    let out = work.path().join("out");
    t.restore("latest", &out).expect("restore");
    let names: Vec<_> = fs::read_dir(out.join("node"))
        .expect("readdir")
        .map(|e| e.expect("dirent").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("data")]);
}

/// The comparison the other tests rely on must notice every kind of difference.
#[test]
fn assert_same_tree_notices_each_kind_of_difference() {
    let work = tempfile::tempdir().expect("tempdir");
    let base = work.path().join("base");
    fs::create_dir(&base).expect("mkdir");
    fs::write(base.join("f"), "content").expect("write");
    fs::create_dir(base.join("empty")).expect("mkdir");
    std::os::unix::fs::symlink("f", base.join("link")).expect("symlink");
    set_mtime(&base.join("f"), 1_600_000_000, 500);
    set_mtime(&base.join("link"), 1_600_000_001, 600);
    set_mtime(&base.join("empty"), 1_600_000_002, 700);
    set_mtime(&base, 1_600_000_003, 800);

    type Edit = fn(&Path);
    let edits: [(&str, Edit); 7] = [
        ("content", |d| {
            fs::write(d.join("f"), "contenT").expect("write");
            set_mtime(&d.join("f"), 1_600_000_000, 500);
        }),
        ("mode", |d| {
            fs::set_permissions(d.join("f"), fs::Permissions::from_mode(0o600)).expect("chmod")
        }),
        ("mtime ns", |d| set_mtime(&d.join("f"), 1_600_000_000, 501)),
        ("symlink target", |d| {
            fs::remove_file(d.join("link")).expect("rm");
            std::os::unix::fs::symlink("g", d.join("link")).expect("symlink");
            set_mtime(&d.join("link"), 1_600_000_001, 600);
        }),
        ("symlink mtime", |d| {
            set_mtime(&d.join("link"), 1_600_000_001, 601)
        }),
        ("empty dir", |d| {
            fs::remove_dir(d.join("empty")).expect("rmdir")
        }),
        ("root mtime", |d| set_mtime(d, 1_600_000_003, 801)),
    ];
    for (i, (what, edit)) in edits.into_iter().enumerate() {
        let copy = work.path().join(format!("copy{i}"));
        copy_tree(&base, &copy);
        assert_same_tree(&base, &copy);
        edit(&copy);
        if !what.starts_with("root") && what != "empty dir" {
            set_mtime(&copy, 1_600_000_003, 800);
        }
        let caught = std::panic::catch_unwind(|| assert_same_tree(&base, &copy)).is_err();
        assert!(caught, "a difference in {what} went unnoticed");
    }
}

#[test]
fn appended_files_resume_and_an_edited_prefix_is_never_trusted() {
    use std::io::Write;
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    let freezer = src.join("ancient/bodies.cdat");
    fs::create_dir_all(freezer.parent().expect("parent")).expect("mkdir");
    let mut rng = Rng::new(7);
    fs::write(&freezer, rng.bytes(12 << 20)).expect("write");
    t.backup(&[&src], true);

    let append = |len: usize, rng: &mut Rng| {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&freezer)
            .expect("open for append");
        f.write_all(&rng.bytes(len)).expect("append");
    };
    let check = |label: &str| {
        // Whatever path the cache took, the snapshot is what a cold backup makes of the file.
        let cached = t.backup(&[&src], true);
        let cold = t.backup(&[&src], false);
        assert_eq!(
            cached.snapshot.fingerprint, cold.snapshot.fingerprint,
            "{label}: the files cache changed the snapshot"
        );
        let out = work.path().join(label);
        t.restore(&cached.snapshot_id.to_hex(), &out)
            .expect("restore");
        assert_same_tree(&src, &out.join("node"));
        cached
    };

    // Appended in place (same inode): the old chunks but the last are reused.
    append(300 << 10, &mut rng);
    let appended = check("appended");
    assert!(
        appended.snapshot.summary.bytes_added_stored < 9 << 20,
        "stored {} bytes for a 300 KiB append",
        appended.snapshot.summary.bytes_added_stored
    );

    // Edited in the middle and appended to: the prefix no longer matches, so it is cut anew.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&freezer)
        .expect("open");
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"rewritten in place", 5 << 20)
        .expect("edit");
    f.flush().expect("flush");
    drop(f);
    append(100 << 10, &mut rng);
    check("edited");
}
