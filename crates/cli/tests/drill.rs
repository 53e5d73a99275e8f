//! `vtool drill`, `vtool drills` and `vtool checksums` with the real engines our users'
//! clients run on: SQLite (`sqlite3`), RocksDB (`ldb`, rocksdb-tools) and LMDB (`mdb_load`,
//! `mdb_stat`, lmdb-utils), and the real `sha256sum` / `b3sum`.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{engines, s, text, Env};
use vtool_testkit::reframe;

/// A node with one database of each engine, written by the engine itself.
fn engines_node(root: &Path) {
    engines::sqlite(
        &root.join("validator/slashing_protection.sqlite"),
        "CREATE TABLE validators (id INTEGER PRIMARY KEY, public_key BLOB NOT NULL UNIQUE);\
         CREATE TABLE signed_blocks (validator_id INTEGER, slot INTEGER, signing_root BLOB);\
         INSERT INTO validators (public_key) VALUES (x'a1'), (x'b2');\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
         INSERT INTO signed_blocks SELECT 1, i, randomblob(32) FROM n;",
    );
    engines::rocksdb(
        &root.join("beacon/chain_db"),
        &[("head", "slot-9000"), ("block:1", "aa"), ("block:2", "bb")],
    );
    engines::lmdb(
        &root.join("agave/accounts_index"),
        &[
            ("acct1", "lamports=5"),
            ("acct2", "lamports=7"),
            ("acct3", "lamports=9"),
        ],
    );
}

fn boot_args(env: &Env) -> Vec<String> {
    let name = env
        .path("node")
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string();
    vec![
        "--boot".into(),
        format!("sqlite3 {{dir}}/{name}/validator/slashing_protection.sqlite 'PRAGMA integrity_check'"),
        "--expect".into(),
        "^ok$".into(),
        "--boot".into(),
        format!("ldb --db={{dir}}/{name}/beacon/chain_db checkconsistency && ldb --db={{dir}}/{name}/beacon/chain_db get head"),
        "--expect".into(),
        "^OK$[\\s\\S]*slot-9000".into(),
        "--boot".into(),
        format!("mdb_stat {{dir}}/{name}/agave/accounts_index"),
        "--expect".into(),
        "Entries: 3".into(),
    ]
}

fn drill(env: &Env, extra: &[String], code: i32) -> Value {
    let mut args: Vec<&str> = vec!["--json"];
    args.extend(extra.iter().map(String::as_str));
    let out = env.with_identity("drill", &args);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn drills(env: &Env, key: &[&str], code: i32) -> Value {
    let repo = env.repo();
    let mut args = vec!["drills", "--repo", &repo, "--json"];
    args.extend_from_slice(key);
    env.json_with(&args, code)
}

/// Flip a byte in the middle of the largest pack (the data pack of a small backup).
fn damage_largest_pack(env: &Env) {
    let mut packs = Vec::new();
    for dir in fs::read_dir(env.path("repo/packs")).expect("packs") {
        for f in fs::read_dir(dir.expect("dir").path()).expect("pack dir") {
            let p = f.expect("pack").path();
            packs.push((fs::metadata(&p).expect("stat").len(), p));
        }
    }
    let (len, path) = packs.into_iter().max().expect("a pack");
    let mut data = fs::read(&path).expect("read pack");
    data[len as usize / 2] ^= 0x40;
    fs::write(&path, data).expect("write pack");
}

#[test]
fn drill_boots_sqlite_rocksdb_and_lmdb_and_records_a_pass() {
    let env = Env::with_repo();
    engines_node(&env.path("node"));
    env.backup(&[s(&env.path("node"))]);

    let v = drill(&env, &boot_args(&env), 0);
    let record = &v["drill"];
    assert_eq!(record["passed"], true, "{v:#}");
    assert_eq!(record["verified"], true);
    let commands = record["commands"].as_array().expect("commands");
    assert_eq!(commands.len(), 3);
    for c in commands {
        assert_eq!(c["passed"], true, "{c:#}");
        assert_eq!(c["expect_matched"], true);
    }
    // The scratch directory is gone.
    let target = record["target"].as_str().expect("target");
    assert!(!Path::new(target).exists(), "{target} left behind");

    let listed = drills(&env, &["--identity", &env.identity()], 0);
    let rows = listed["drills"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["authenticity"], "authentic");
    assert_eq!(rows[0]["passed"], true);
    assert_eq!(rows[0]["name"], v["record"]);
    // The backup key authenticates too; no key lists without vouching.
    let with_bk = drills(&env, &["--backup-key", &env.backup_key()], 0);
    assert_eq!(with_bk["drills"][0]["authenticity"], "authentic");
    assert_eq!(
        drills(&env, &[], 0)["drills"][0]["authenticity"],
        "not-checked"
    );
}

#[test]
fn drill_on_a_damaged_pack_fails_names_the_file_and_runs_nothing() {
    let env = Env::with_repo();
    engines_node(&env.path("node"));
    env.backup(&[s(&env.path("node"))]);
    damage_largest_pack(&env);

    let mut args = boot_args(&env);
    args.push("--keep-on-failure".into());
    let v = drill(&env, &args, 3);
    let record = &v["drill"];
    assert_eq!(record["passed"], false);
    assert_eq!(record["verified"], false);
    let damaged = record["restore"]["damaged"].as_array().expect("damaged");
    assert!(!damaged.is_empty(), "{v:#}");
    assert!(
        damaged
            .iter()
            .all(|d| d.as_str().is_some_and(|p| p.starts_with("node/"))),
        "{damaged:?}"
    );
    let failure = record["failure"].as_str().expect("failure");
    assert!(
        failure.contains(damaged[0].as_str().expect("path")),
        "{failure}"
    );
    for c in record["commands"].as_array().expect("commands") {
        assert_eq!(c["ran"], false, "{c:#}");
    }
    // Kept for investigation, without the damaged files.
    let kept = v["kept"].as_str().expect("kept dir");
    assert!(Path::new(kept).join("node").is_dir());
    for d in damaged {
        assert!(!Path::new(kept).join(d.as_str().expect("path")).exists());
    }
    fs::remove_dir_all(kept).expect("clean up");

    let listed = drills(&env, &["--identity", &env.identity()], 0);
    assert_eq!(listed["drills"][0]["passed"], false);
    assert_eq!(listed["drills"][0]["authenticity"], "authentic");
}

#[test]
fn drill_fails_when_the_engine_rejects_faithfully_backed_up_data() {
    let env = Env::with_repo();
    engines_node(&env.path("node"));
    // Corrupt an SST on the source: the backup stores it faithfully, the fingerprint
    // verifies, and only booting the engine tells.
    let rocks = env.path("node/beacon/chain_db");
    let sst = fs::read_dir(&rocks)
        .expect("rocksdb dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .expect("an sst file");
    let mut data = fs::read(&sst).expect("read sst");
    for b in &mut data[10..60] {
        *b ^= 0xff;
    }
    fs::write(&sst, data).expect("write sst");
    env.backup(&[s(&env.path("node"))]);

    let v = drill(&env, &boot_args(&env), 1);
    let record = &v["drill"];
    assert_eq!(record["verified"], true);
    assert_eq!(record["passed"], false);
    let commands = record["commands"].as_array().expect("commands");
    assert_eq!(commands[0]["passed"], true);
    assert_eq!(commands[1]["passed"], false);
    assert!(
        commands[1]["output_tail"]
            .as_str()
            .is_some_and(|o| o.contains("Corruption")),
        "{:#}",
        commands[1]
    );
    assert!(record["failure"]
        .as_str()
        .is_some_and(|f| f.contains("boot command 2")));
}

#[test]
fn slow_boot_command_times_out() {
    let env = Env::with_repo();
    fs::create_dir_all(env.path("node")).expect("mkdir");
    fs::write(env.path("node/f"), "x").expect("write");
    env.backup(&[s(&env.path("node"))]);
    let args: Vec<String> = ["--boot", "sleep 20", "--timeout", "1"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let v = drill(&env, &args, 1);
    assert_eq!(v["drill"]["commands"][0]["timed_out"], true);
}

#[test]
fn altered_or_forged_drill_records_are_flagged() {
    let env = Env::with_repo();
    fs::create_dir_all(env.path("node")).expect("mkdir");
    fs::write(env.path("node/f"), "x").expect("write");
    env.backup(&[s(&env.path("node"))]);
    let args: Vec<String> = ["--boot", "exit 1"].iter().map(|a| a.to_string()).collect();
    let v = drill(&env, &args, 1);
    let name = v["record"].as_str().expect("name");

    // The storage host turns the failure into a pass and stores it under its new hash.
    let mut record: Value =
        serde_json::from_slice(&fs::read(env.path(&format!("repo/{name}"))).expect("read"))
            .expect("json");
    let body = &mut record["body"];
    body["passed"] = Value::Bool(true);
    body["failure"] = Value::Null;
    body["time"] = Value::String("2099-01-01T00:00:00Z".into());
    let data = reframe(&record);
    let forged = format!("drills/{}", blake3::hash(&data).to_hex());
    fs::write(env.path(&format!("repo/{forged}")), &data).expect("write");

    let listed = drills(&env, &["--identity", &env.identity()], 3);
    let rows = listed["drills"].as_array().expect("rows");
    assert_eq!(rows[0]["name"], forged.as_str());
    assert_eq!(rows[0]["authenticity"], "forged");
    assert_eq!(rows[1]["authenticity"], "authentic");
    assert_eq!(rows[1]["passed"], false);

    // A record whose bytes no longer match its name is invalid, not trusted.
    fs::write(env.path(&format!("repo/{name}")), b"{}").expect("overwrite");
    let listed = drills(&env, &["--identity", &env.identity()], 3);
    assert_eq!(listed["invalid"].as_array().map(Vec::len), Some(1));
}

#[test]
fn checksum_manifests_are_accepted_by_sha256sum_and_b3sum() {
    let env = Env::with_repo();
    let node = env.path("node");
    engines_node(&node);
    fs::write(node.join("name with spaces"), "spaces").expect("write");
    fs::write(node.join("back\\slash"), "backslash").expect("write");
    fs::write(node.join("big.bin"), vec![7u8; 3 << 20]).expect("write");
    env.backup(&[s(&node)]);
    let target = env.path("restored");
    let out = env.with_identity("restore", &["latest", "--target", s(&target)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    for (format, checker) in [("sha256", "sha256sum"), ("b3", "b3sum")] {
        let out = env.with_identity("checksums", &["latest", "--format", format]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let manifest = env.path(&format!("manifest.{format}"));
        fs::write(&manifest, &out.stdout).expect("write manifest");
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        assert!(lines >= 8, "{lines} lines");
        let check = Command::new(checker)
            .args(["-c", s(&manifest)])
            .current_dir(&target)
            .output()
            .expect("run checker");
        assert!(check.status.success(), "{checker}: {}", text(&check));

        // A changed byte in the restored tree is caught by the manifest.
        let victim = target.join("node/validator/slashing_protection.sqlite");
        let original = fs::read(&victim).expect("read");
        let mut changed = original.clone();
        changed[100] ^= 1;
        fs::write(&victim, changed).expect("write");
        let check = Command::new(checker)
            .args(["-c", s(&manifest)])
            .current_dir(&target)
            .output()
            .expect("run checker");
        assert!(!check.status.success(), "{checker} missed a changed byte");
        fs::write(&victim, original).expect("restore");
    }

    // sha256 reads the data back: a damaged pack gets no checksum, and says where.
    damage_largest_pack(&env);
    let out = env.with_identity("checksums", &["latest", "--format", "sha256"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DAMAGED (no checksum): node/"),
        "{}",
        text(&out)
    );
}
