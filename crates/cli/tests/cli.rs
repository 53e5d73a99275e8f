//! The `vtool` binary end to end: exit codes, JSON output and files on disk.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support;

use support::{fixtures, s, text, Env};
use vtool_testkit::tree::{assert_same_tree, set_mtime};
use vtool_testkit::Rng;

fn restore_args(env: &Env, snapshot: &str, target: &Path) -> Vec<String> {
    vec![
        "restore".into(),
        "--repo".into(),
        env.repo(),
        "--identity".into(),
        env.identity(),
        snapshot.into(),
        "--target".into(),
        target.display().to_string(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A small node directory with keystores (0600 in a 0700 dir), chain data, an empty dir
/// and a symlink; files and dirs get mtimes with nanoseconds.
fn make_source(root: &Path) {
    let ks = root.join("validator/keystores");
    fs::create_dir_all(&ks).expect("mkdir");
    fs::create_dir_all(root.join("beacon/db")).expect("mkdir");
    fs::create_dir_all(root.join("beacon/empty")).expect("mkdir");
    for i in 0..3 {
        let p = ks.join(format!("keystore-{i}.json"));
        fs::write(
            &p,
            format!("{{\"pubkey\": \"{i:096x}\", \"version\": 4}}\n"),
        )
        .expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    fs::set_permissions(&ks, fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::write(root.join("validator/slashing.json"), "{\"data\": []}\n").expect("write");
    let data = Rng::new(0x1234_5678_9abc_def0).bytes(1_500_000);
    fs::write(root.join("beacon/db/000001.ldb"), data).expect("write");
    std::os::unix::fs::symlink("db/000001.ldb", root.join("beacon/current")).expect("symlink");
    let mut paths = Vec::new();
    collect(root, &mut paths);
    paths.sort();
    for (i, p) in paths.iter().enumerate().rev() {
        if !fs::symlink_metadata(p).expect("stat").is_symlink() {
            set_mtime(p, 1_700_000_000 + i as i64, 111_111_111 * (i as u32 % 9));
        }
    }
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    if fs::symlink_metadata(p).expect("stat").is_dir() {
        for e in fs::read_dir(p).expect("readdir") {
            collect(&e.expect("dirent").path(), out);
        }
    }
}

fn is_hex64(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn init_backup_snapshots_restore_round_trip() {
    let env = Env::new();
    env.init();
    for key in ["identity.txt", "backup.key"] {
        let mode = fs::metadata(env.path(key)).expect("key file").mode() & 0o777;
        assert_eq!(mode, 0o600, "{key} has mode {mode:o}");
    }
    let src = env.path("src/node");
    make_source(&src);

    let b1 = env.backup(&[s(&src)]);
    assert_eq!(b1["files"], 5);
    assert_eq!(b1["files_read"], 5);
    let bytes = b1["bytes"].as_u64().expect("bytes");
    assert!(bytes > 1_500_000, "{b1}");
    assert_eq!(b1["bytes_read"], bytes);
    assert!(is_hex64(&b1["fingerprint"]), "{b1}");
    assert!(is_hex64(&b1["snapshot"]), "{b1}");
    let ratio = b1["dedup_ratio"].as_f64().expect("dedup_ratio is a number");
    assert!(ratio > 0.5 && ratio < 2.0, "dedup ratio {ratio}");
    assert!(b1["warnings"].as_array().expect("warnings").is_empty());

    // Change one keystore; the cache (VTOOL_CACHE_DIR) spares reading the rest.
    let ks = src.join("validator/keystores/keystore-1.json");
    fs::write(&ks, "{\"pubkey\": \"changed\", \"version\": 4}\n").expect("write");
    let b2 = env.backup(&[s(&src)]);
    assert_eq!(b2["files_read"], 1, "{b2}");
    assert_eq!(b2["files_unchanged"], 4, "{b2}");
    assert_ne!(b2["fingerprint"], b1["fingerprint"]);
    let stored = b2["bytes_added_stored"].as_u64().expect("stored");
    assert!(
        stored < 100_000,
        "stored {stored} bytes for one small change"
    );
    assert!(
        fs::read_dir(env.path("cache")).expect("cache dir").count() > 0,
        "VTOOL_CACHE_DIR was not used"
    );

    let list = env.json(&["snapshots", "--repo", &env.repo(), "--json"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], b1["snapshot"]);
    assert_eq!(list[0]["fingerprint"], b1["fingerprint"]);
    assert_eq!(list[1]["id"], b2["snapshot"]);
    assert_eq!(list[1]["fingerprint"], b2["fingerprint"]);
    assert_eq!(list[1]["summary"]["files"], 5);

    // Restore the latest snapshot by an 8-digit id prefix.
    let prefix = &b2["snapshot"].as_str().expect("id")[..8];
    let out = env.path("out");
    let mut a = restore_args(&env, prefix, &out);
    a.push("--json".into());
    let r = env.json(&args(&a));
    assert_eq!(r["snapshot"], b2["snapshot"]);
    assert_eq!(r["fingerprint"], b2["fingerprint"]);
    assert_eq!(r["files"], 5);
    assert_eq!(r["symlinks"], 1);
    assert!(r["damaged"].as_array().expect("damaged").is_empty());
    assert_eq!(
        fs::read_dir(&out).expect("out").count(),
        1,
        "only node/ expected in the target"
    );
    assert_same_tree(&src, &out.join("node"));

    // The first snapshot still holds the old keystore.
    let out1 = env.path("out1");
    let a = restore_args(&env, &b1["snapshot"].as_str().expect("id")[..12], &out1);
    env.ok(&args(&a), 0);
    assert_eq!(
        fs::read_to_string(out1.join("node/validator/keystores/keystore-1.json")).expect("read"),
        format!("{{\"pubkey\": \"{:096x}\", \"version\": 4}}\n", 1)
    );

    // Restoring into the same, now non-empty, target is refused.
    let a = restore_args(&env, "latest", &out);
    let o = env.run(&args(&a));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
}

#[test]
fn include_restores_only_the_matching_subtree() {
    let env = Env::new();
    env.init();
    let src = env.path("src/node");
    make_source(&src);
    env.backup(&[s(&src)]);
    let out = env.path("out");
    let mut a = restore_args(&env, "latest", &out);
    a.extend(["--include".into(), "node/validator/**".into()]);
    env.ok(&args(&a), 0);
    assert_same_tree(&src.join("validator"), &out.join("node/validator"));
    let top: Vec<_> = fs::read_dir(out.join("node"))
        .expect("readdir")
        .map(|e| e.expect("dirent").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(top, vec!["validator".to_string()]);
}

#[test]
fn restore_with_the_backup_key_is_refused() {
    let env = Env::new();
    env.init();
    let src = env.path("src/node");
    make_source(&src);
    env.backup(&[s(&src)]);
    let out = env.path("out");
    let mut a = restore_args(&env, "latest", &out);
    a[4] = env.path("backup.key").display().to_string();
    let o = env.run(&args(&a));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("backup key"), "{err}");
    assert!(!out.exists());

    // An identity of another repository: refused as a wrong key (usage error, not damage).
    let other = Env::new();
    other.init();
    a[4] = other.path("identity.txt").display().to_string();
    let o = env.run(&args(&a));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong key"));
}

#[test]
fn unknown_repository_points_at_init() {
    let env = Env::new();
    let missing = env.path("no-such-repo").display().to_string();
    let o = env.run(&["snapshots", "--repo", &missing]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("vtool init"), "{err}");

    // An existing directory that is not a repository says the same.
    fs::create_dir(env.path("empty")).expect("mkdir");
    let o = env.run(&[
        "snapshots",
        "--repo",
        &env.path("empty").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("vtool init"));
}

#[test]
fn init_refuses_to_overwrite_key_files() {
    let env = Env::new();
    env.init();
    let before = fs::read(env.path("backup.key")).expect("key");
    let id_before = fs::read(env.path("identity.txt")).expect("identity");
    let repo2 = env.path("repo2").display().to_string();
    let o = env.run(&[
        "init",
        "--repo",
        &repo2,
        "--identity-out",
        &env.path("new-identity.txt").display().to_string(),
        "--backup-key-out",
        &env.path("backup.key").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(fs::read(env.path("backup.key")).expect("key"), before);
    assert_eq!(
        fs::read(env.path("identity.txt")).expect("identity"),
        id_before
    );
    assert!(!env.path("new-identity.txt").exists());
    assert!(!env.path("repo2/config").exists());

    // Nor is an existing repository initialised again.
    let o = env.run(&[
        "init",
        "--repo",
        &env.repo(),
        "--identity-out",
        &env.path("id2.txt").display().to_string(),
        "--backup-key-out",
        &env.path("bk2").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a repository"));
    assert!(!env.path("bk2").exists());
    assert!(!env.path("id2.txt").exists());
}

#[test]
fn init_with_an_unwritable_key_path_leaves_no_repository() {
    let env = Env::new();
    let repo = env.repo();
    for (identity, backup_key) in [
        ("missing-dir/identity.txt", "backup.key"),
        ("identity.txt", "missing-dir/backup.key"),
    ] {
        let o = env.run(&[
            "init",
            "--repo",
            &repo,
            "--identity-out",
            &env.path(identity).display().to_string(),
            "--backup-key-out",
            &env.path(backup_key).display().to_string(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        // Nobody could restore from a repository whose identity was not written.
        assert!(!env.path("repo/config").exists(), "{identity} {backup_key}");
        assert!(!env.path("identity.txt").exists());
        assert!(!env.path("backup.key").exists());
    }
    env.init();
}

#[test]
fn damaged_pack_exits_3_and_names_the_file() {
    let env = Env::new();
    env.init();
    let src = env.path("src/node");
    make_source(&src);
    env.backup(&[s(&src)]);
    // The largest pack holds the chain-data table.
    let mut packs = Vec::new();
    collect(&env.path("repo/packs"), &mut packs);
    let largest = packs
        .into_iter()
        .filter(|p| p.is_file())
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("a pack");
    let mut data = fs::read(&largest).expect("read");
    let mid = data.len() / 2;
    data[mid] ^= 0x80;
    fs::write(&largest, data).expect("write");

    let out = env.path("out");
    let a = restore_args(&env, "latest", &out);
    let o = env.run(&args(&a));
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("DAMAGED"), "{stdout}");
    assert!(stdout.contains("000001.ldb"), "{stdout}");
    assert!(!out.join("node/beacon/db/000001.ldb").exists());
}

#[test]
fn backup_of_a_missing_path_fails_with_usage_error() {
    let env = Env::new();
    env.init();
    let repo = env.repo();
    let bk = env.path("backup.key").display().to_string();
    let missing = env.path("nope").display().to_string();
    let o = env.run(&["backup", "--repo", &repo, "--backup-key", &bk, &missing]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
    assert_eq!(
        fs::read_dir(env.path("repo/snapshots"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn keys_check_proves_the_eip2335_vectors() {
    let env = Env::new();
    let fixture = fixtures().join("eip2335");
    let pw = fixture.join("password.txt").display().to_string();
    let wrong = env.path("wrong.txt");
    fs::write(&wrong, "testpassword").expect("write");
    let wrong = wrong.display().to_string();
    // Each vector on its own (both KDFs): proven with the right password, refused with a
    // wrong one.
    for name in ["scrypt-keystore.json", "pbkdf2-keystore.json"] {
        let dir = env.path(name.trim_end_matches(".json"));
        fs::create_dir(&dir).expect("mkdir");
        fs::copy(fixture.join(name), dir.join(name)).expect("copy");
        let d = dir.display().to_string();
        let report = env.json(&["keys", "check", &d, "--password-file", &pw, "--json"]);
        assert_eq!(report["total"], 1, "{name}: {report}");
        assert_eq!(report["ok"], 1, "{name}: {report}");
        assert_eq!(report["keys"][0]["status"], "ok", "{name}: {report}");
        assert_eq!(
            report["keys"][0]["pubkey"],
            "0x9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07"
        );
        let text = env.ok(&["keys", "check", &d, "--password-file", &pw], 0);
        assert!(text.contains("1 of 1 keystores proven"), "{text}");

        let stdout = env.ok(
            &["keys", "check", &d, "--password-file", &wrong, "--json"],
            1,
        );
        let report: Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(report["ok"], 0, "{name}: {report}");
        assert_eq!(
            report["keys"][0]["status"], "wrong_password",
            "{name}: {report}"
        );
    }
    // The fixture directory holds both vectors, which are the same validator key: the
    // second is reported as a duplicate (two keystores for one validator risk a double
    // signature), so the directory as a whole is a "no".
    let d = fixture.display().to_string();
    let stdout = env.ok(&["keys", "check", &d, "--password-file", &pw, "--json"], 1);
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["total"], 2, "{report}");
    let statuses: BTreeSet<&str> = report["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["ok", "duplicate_pubkey"]),
        "{report}"
    );
}

#[test]
fn slashing_check_reads_the_eip3076_interchanges() {
    let env = Env::new();
    let generated = fixtures().join("eip3076/generated");
    let mut cases: Vec<PathBuf> = fs::read_dir(&generated)
        .expect("fixtures")
        .map(|e| e.expect("dirent").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 30);
    for case in &cases {
        let test: Value = serde_json::from_slice(&fs::read(case).expect("read")).expect("json");
        // The first step's interchange stands alone, so its flag is about itself.
        let step = &test["steps"][0];
        let file = env.path("interchange.json");
        fs::write(
            &file,
            serde_json::to_vec(&step["interchange"]).expect("json"),
        )
        .expect("write");
        let slashable = step["contains_slashable_data"].as_bool().unwrap_or(false);
        let f = file.display().to_string();
        let stdout = env.ok(
            &["slashing", "check", &f, "--json"],
            if slashable { 1 } else { 0 },
        );
        let out: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{}: {e}: {stdout}", case.display()));
        assert_eq!(out["slashable_data"], slashable, "{}", case.display());
        assert_eq!(
            out["genesis_validators_root"],
            step["interchange"]["metadata"]["genesis_validators_root"],
            "{}",
            case.display()
        );
        let pubkeys: BTreeSet<&str> = step["interchange"]["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|d| d["pubkey"].as_str().expect("pubkey"))
            .collect();
        assert_eq!(
            out["keys"].as_array().expect("keys").len(),
            pubkeys.len(),
            "{}",
            case.display()
        );
    }
    // A test-case file is not itself an interchange: refused as a usage error.
    let o = env.run(&["slashing", "check", &cases[0].display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a valid EIP-3076 interchange"));
}

/// `check` takes the identity from `VTOOL_IDENTITY` like every other command.
#[test]
fn check_reads_the_identity_from_the_environment() {
    let mut env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("a"), b"data").expect("write");
    env.backup(&[s(&src)]);
    env.vars.push(("VTOOL_IDENTITY".into(), env.identity()));
    let repo = env.repo();
    let report = env.json(&["check", "--repo", &repo, "--json"]);
    assert_eq!(report["with_identity"], true, "{report}");
    assert_eq!(report["counts"]["snapshots_authenticated"], 1, "{report}");
}

#[test]
fn backup_time_sets_the_snapshot_time_and_latest_follows_it() {
    let env = Env::with_repo();
    let src = env.path("node");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join("f"), "x").expect("write");
    // An import dated in the past, then today's backup: `latest` is today's.
    let old = env.backup(&["--time", "2020-01-02T03:04:05.5Z", s(&src)]);
    let new = env.backup(&[s(&src)]);
    let snaps = env.snapshots();
    let time_of = |id: &Value| {
        snaps
            .iter()
            .find(|s| &s["id"] == id)
            .map(|s| s["time"].clone())
            .expect("listed")
    };
    assert_eq!(
        time_of(&old["snapshot"]),
        "2020-01-02T03:04:05.5Z",
        "{snaps:?}"
    );
    let out = env.with_identity(
        "restore",
        &["latest", "--target", s(&env.path("t")), "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let restored: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(restored["snapshot"], new["snapshot"]);

    let out = env.backup_run(&["--time", "yesterday", s(&src)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("RFC 3339"), "{}", text(&out));
}
