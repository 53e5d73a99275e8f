//! Sealed objects through the binary: the config, snapshots and drill records are
//! authenticated over their stored bytes; a damaged or planted one is named and hides nothing
//! else; a format 1 repository keeps working.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{fixtures, s, text, Env};
use vtool_testkit::reframe;
use vtool_testkit::tree::{assert_same, Compare};

fn node(env: &Env, name: &str, content: &str) -> PathBuf {
    let root = env.path(name);
    fs::create_dir_all(root.join("db")).expect("mkdir");
    fs::write(root.join("db/state.bin"), content.repeat(2048)).expect("write");
    fs::write(root.join("keystore.json"), format!("{{\"{name}\":1}}")).expect("write");
    root
}

fn blake3_name(dir: &str, data: &[u8]) -> String {
    format!("{dir}/{}", blake3::hash(data).to_hex())
}

/// Store `data` in the repository under its content hash, as a storage host could.
fn plant(env: &Env, dir: &str, data: &[u8]) -> String {
    let name = blake3_name(dir, data);
    fs::write(env.path(&format!("repo/{name}")), data).expect("plant");
    name
}

fn objects(env: &Env, dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(env.path(&format!("repo/{dir}")))
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

fn check(env: &Env, extra: &[&str], code: i32) -> Value {
    let repo = env.repo();
    let mut args = vec!["check", "--repo", &repo, "--json"];
    args.extend_from_slice(extra);
    env.json_with(&args, code)
}

fn problem_kinds(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["kind"].as_str().expect("kind").to_string())
        .collect()
}

fn notes(report: &Value) -> String {
    report["notes"].to_string()
}

/// A restored tree against its source: names, kinds and bytes.
fn assert_same_tree(a: &Path, b: &Path) {
    assert_same(a, b, Compare::CONTENTS);
}

#[test]
fn a_rewritten_config_is_caught_by_every_command_that_holds_a_key() {
    let env = Env::with_repo();
    let src = node(&env, "node", "a");
    env.backup(&[s(&src)]);
    let config = env.path("repo/config");
    let original = fs::read_to_string(&config).expect("read");
    // A storage host turns compression up (same length: nothing else moves).
    let rewritten = original.replacen("\"zstd_level\": 3", "\"zstd_level\": 9", 1);
    assert_ne!(rewritten, original);
    fs::write(&config, &rewritten).expect("write");

    let r = check(&env, &["--identity", &env.identity()], 3);
    assert_eq!(problem_kinds(&r), vec!["config"], "{r:#}");
    let out = env.backup_run(&[s(&src)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config authentication failed"),
        "{}",
        text(&out)
    );
    let out = env.with_identity("restore", &["latest", "--target", s(&env.path("t"))]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        !env.path("t/node").exists(),
        "restored with a forged config"
    );

    // Without a key nothing can tell, and check says so.
    let r = check(&env, &["--packs"], 0);
    assert!(
        notes(&r).contains("could not be authenticated without a key"),
        "{r:#}"
    );

    // Swapping in an unsealed config is refused too: as format 2 on open, as format 1 by
    // every key made for format 2.
    let body: Value = serde_json::from_str::<Value>(&original).expect("json")["body"].clone();
    fs::write(&config, serde_json::to_vec_pretty(&body).expect("json")).expect("write");
    let r = check(&env, &[], 3);
    assert_eq!(problem_kinds(&r), vec!["config"], "{r:#}");
    let mut v1 = body.clone();
    v1["version"] = Value::from(1);
    fs::write(&config, serde_json::to_vec_pretty(&v1).expect("json")).expect("write");
    let r = check(&env, &["--identity", &env.identity()], 3);
    assert_eq!(problem_kinds(&r), vec!["config"], "{r:#}");
    let out = env.backup_run(&[s(&src)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    fs::write(&config, &original).expect("write");
    let r = check(&env, &["--identity", &env.identity()], 0);
    assert_eq!(r["ok"], true, "{r:#}");
}

#[test]
fn a_damaged_snapshot_hides_nothing_else() {
    let env = Env::with_repo();
    let first = node(&env, "first", "1");
    env.backup(&[s(&first)]);
    let second = node(&env, "second", "2");
    env.backup(&[s(&second)]);
    let snaps = objects(&env, "snapshots");
    assert_eq!(snaps.len(), 2);
    // One junk object under its own hash, and one byte flipped in the newer snapshot.
    let junk = plant(&env, "snapshots", b"not a snapshot at all");
    let newer: Vec<PathBuf> = snaps
        .iter()
        .filter(|p| fs::read_to_string(p).expect("read").contains("/second"))
        .cloned()
        .collect();
    let mut bytes = fs::read(&newer[0]).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    fs::write(&newer[0], &bytes).expect("write");

    let repo = env.repo();
    let out = env.run(&["snapshots", "--repo", &repo, "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["paths"][0], s(&first));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&junk), "{err}");
    let flipped = newer[0].file_name().expect("name").to_string_lossy();
    assert!(err.contains(&*flipped), "{err}");

    let target = env.path("restored");
    let out = env.with_identity("restore", &["latest", "--target", s(&target)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_same_tree(&first, &target.join("first"));

    let r = check(&env, &["--identity", &env.identity()], 3);
    assert_eq!(problem_kinds(&r), vec!["snapshot", "snapshot"], "{r:#}");
}

#[test]
fn a_planted_newer_snapshot_is_passed_over_by_latest() {
    let env = Env::with_repo();
    let src = node(&env, "node", "genuine");
    env.backup(&[s(&src)]);
    let stored = fs::read_to_string(&objects(&env, "snapshots")[0]).expect("read");
    // A storage host dates a copy into the future (the MAC cannot follow).
    let mut forged: Value = serde_json::from_str(&stored).expect("json");
    forged["body"]["time"] = Value::from("2099-01-01T00:00:00Z");
    forged["body"]["hostname"] = Value::from("evil");
    let name = plant(&env, "snapshots", &reframe(&forged));

    let target = env.path("restored");
    let out = env.with_identity("restore", &["latest", "--target", s(&target)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&name),
        "{}",
        text(&out)
    );
    assert_same_tree(&src, &target.join("node"));

    let id = name.trim_start_matches("snapshots/");
    let out = env.with_identity("restore", &[id, "--target", s(&env.path("t2"))]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let r = check(&env, &["--identity", &env.identity()], 3);
    assert_eq!(problem_kinds(&r), vec!["snapshot-auth"], "{r:#}");
}

#[test]
fn check_authenticates_drill_records_and_check_states() {
    let env = Env::with_repo();
    let src = node(&env, "node", "d");
    env.backup(&[s(&src)]);
    let out = env.with_identity("drill", &["latest", "--boot", "exit 1", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let record = objects(&env, "drills").remove(0);
    let r = check(&env, &["--identity", &env.identity()], 0);
    assert_eq!(r["counts"]["drills_authenticated"], 1, "{r:#}");

    // Turned into a pass and stored under its new hash: only the key can tell.
    let mut forged: Value =
        serde_json::from_slice(&fs::read(&record).expect("read")).expect("json");
    forged["body"]["passed"] = Value::Bool(true);
    forged["body"]["failure"] = Value::Null;
    let name = plant(&env, "drills", &reframe(&forged));
    check(&env, &[], 0);
    let r = check(&env, &["--identity", &env.identity()], 3);
    assert_eq!(problem_kinds(&r), vec!["drill-auth"], "{r:#}");
    assert_eq!(r["problems"][0]["object"], name.as_str());
    fs::remove_file(env.path(&format!("repo/{name}"))).expect("rm");

    // A flipped byte is damage at every level.
    let original = fs::read(&record).expect("read");
    let mut bytes = original.clone();
    bytes[original.len() / 3] ^= 0x01;
    fs::write(&record, &bytes).expect("write");
    let r = check(&env, &[], 3);
    assert_eq!(problem_kinds(&r), vec!["drill"], "{r:#}");
    fs::write(&record, &original).expect("write");

    // So is a flipped check state.
    check(&env, &["--packs", "--subset", "50%"], 0);
    let state = objects(&env, "check").remove(0);
    let mut bytes = fs::read(&state).expect("read");
    bytes[10] ^= 0x01;
    fs::write(&state, &bytes).expect("write");
    let r = check(&env, &[], 3);
    assert_eq!(problem_kinds(&r), vec!["check-state"], "{r:#}");
}

/// A copy of `fixtures/repo-v1` (written by vtool's format 1) with its keys at mode 0600,
/// which git does not keep.
fn v1_repository() -> Env {
    let env = Env::new();
    let out = std::process::Command::new("cp")
        .args([
            "-a",
            s(&fixtures().join("repo-v1/repo")),
            s(&env.path("repo")),
        ])
        .output()
        .expect("cp");
    assert!(out.status.success(), "{}", text(&out));
    for (from, to) in [
        ("restore.identity", env.identity()),
        ("backup.key", env.backup_key()),
    ] {
        fs::copy(fixtures().join("repo-v1").join(from), &to).expect("copy key");
        fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    env
}

#[test]
fn a_format_1_repository_keeps_restoring_and_its_drills_authenticate() {
    let env = v1_repository();
    let sample = fixtures().join("sample-node/lighthouse");
    let listed = env.snapshots();
    assert_eq!(listed.len(), 2, "{listed:#?}");
    // The one vtool 1 itself refused as forged: its duration does not survive an
    // inexactly rounding float parser.
    assert!(
        listed
            .iter()
            .any(|s| s["summary"]["duration_secs"].as_f64() == Some(3.6432756790000003)),
        "{listed:#?}"
    );
    for snap in &listed {
        let id = snap["id"].as_str().expect("id");
        let target = env.path(&format!("restored-{}", &id[..8]));
        // The sample's keystore is real; no beacon node here to gate it.
        let out = env.with_identity(
            "restore",
            &[id, "--target", s(&target), "--verify", "--no-gate"],
        );
        assert_eq!(out.status.code(), Some(0), "{id}: {}", text(&out));
        assert_same_tree(&sample, &target.join("lighthouse"));
    }

    let repo = env.repo();
    let drills = env.json(&[
        "drills",
        "--repo",
        &repo,
        "--identity",
        &env.identity(),
        "--json",
    ]);
    let rows = drills["drills"].as_array().expect("drills");
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|d| d["authenticity"] == "authentic"),
        "{drills:#}"
    );

    let r = check(&env, &["--read-data", "--identity", &env.identity()], 0);
    assert_eq!(r["counts"]["snapshots_authenticated"], 2, "{r:#}");
    assert!(notes(&r).contains("format 1"), "{r:#}");

    // New snapshots go in sealed, and both kinds list and restore side by side.
    let src = node(&env, "node", "new");
    env.backup(&[s(&src)]);
    let target = env.path("restored-new");
    env.restore_latest(&target);
    assert_same_tree(&src, &target.join("node"));
    check(&env, &["--identity", &env.identity()], 0);
}
