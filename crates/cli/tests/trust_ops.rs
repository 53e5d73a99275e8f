//! Operator-facing trust problems through the binary: secrets other users can read, a
//! damaged key object told apart from a wrong identity.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{s, text, Env};
use vtool_testkit::tree::{assert_same, Compare};

fn node(env: &Env) -> std::path::PathBuf {
    let root = env.path("node");
    fs::create_dir_all(root.join("db")).expect("mkdir");
    fs::write(root.join("db/state.bin"), b"validator state ".repeat(4096)).expect("write");
    fs::write(root.join("keystore.json"), r#"{"crypto":{}}"#).expect("write");
    root
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn secrets_other_users_can_read_are_refused_with_the_chmod_to_run() {
    let env = Env::with_repo();
    let src = node(&env);
    let id = env.path("identity.txt");
    let bk = env.path("backup.key");

    for mode in [0o644, 0o640, 0o604] {
        chmod(&bk, mode);
        let out = env.backup_run(&[s(&src)]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "backup key {mode:o}: {}",
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("chmod 600 {}", bk.display())),
            "{err}"
        );
    }
    assert!(
        env.snapshots().is_empty(),
        "a refused key still wrote a snapshot"
    );
    chmod(&bk, 0o600);
    env.backup(&[s(&src)]);

    let target = env.path("restored");
    for mode in [0o644, 0o640] {
        chmod(&id, mode);
        let out = env.with_identity("restore", &["latest", "--target", s(&target)]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "identity {mode:o}: {}",
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("chmod 600 {}", id.display())),
            "{err}"
        );
        assert!(!target.exists(), "a refused identity still restored");
        let out = env.with_identity("check", &[]);
        assert_eq!(out.status.code(), Some(2), "check {mode:o}: {}", text(&out));
    }
    chmod(&id, 0o400);
    env.restore_latest(&target);
    assert_eq!(
        fs::read(target.join("node/db/state.bin")).expect("restored"),
        fs::read(src.join("db/state.bin")).expect("source")
    );
}

/// Flip one byte of the only key object at `at` (a position inside the file).
fn flip_key_object(env: &Env, at: impl Fn(&[u8]) -> usize) -> String {
    let keys: Vec<_> = fs::read_dir(env.path("repo/keys"))
        .expect("keys dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(keys.len(), 1);
    let mut data = fs::read(&keys[0]).expect("read key object");
    let i = at(&data);
    // Stay within base64 so the header still parses: only the cryptography can object.
    data[i] = if data[i] == b'A' { b'B' } else { b'A' };
    fs::write(&keys[0], data).expect("write key object");
    format!(
        "keys/{}",
        keys[0].file_name().expect("name").to_string_lossy()
    )
}

fn line_start(data: &[u8], n: usize) -> usize {
    data.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map(|(i, _)| i + 1)
        .expect("line")
}

#[test]
fn a_damaged_key_object_is_reported_as_damage_not_as_a_wrong_identity() {
    // Where a flip lands: the recipient stanza's body (age then finds no stanza it can
    // open, exactly as for a foreign identity), its MAC line, its encrypted payload.
    type Spot = fn(&[u8]) -> usize;
    let spots: [(&str, Spot); 3] = [
        ("stanza body", |d| line_start(d, 2) + 5),
        ("header MAC", |d| line_start(d, 3) + 10),
        ("payload", |d| d.len() - 3),
    ];
    for (what, at) in spots {
        let env = Env::with_repo();
        let src = node(&env);
        env.backup(&[s(&src)]);
        let name = flip_key_object(&env, at);
        let out = env.with_identity("restore", &["latest", "--target", s(&env.path("t"))]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{what}: {}", text(&out));
        assert!(
            err.contains(&format!("key object {name} is damaged")),
            "{what}: {err}"
        );
        assert!(!err.contains("another repository"), "{what}: {err}");
    }

    // An intact key object and the identity of another repository: a wrong key (exit 2).
    let env = Env::with_repo();
    let other = Env::with_repo();
    let repo = env.repo();
    let out = env.run(&[
        "restore",
        "--repo",
        &repo,
        "--identity",
        &other.identity(),
        "latest",
        "--target",
        s(&env.path("t")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(err.contains("belongs to another repository"), "{err}");
    assert!(!err.contains("damaged"), "{err}");
}

/// Leave a temporary file as a killed writer does, last written `age_secs` ago.
fn plant_temp(repo: &Path, name: &str, len: usize, age_secs: u64) {
    let path = repo.join(name);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(&path, vec![1u8; len]).expect("plant");
    let mtime = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
    fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(mtime))
        .expect("backdate");
}

fn temp_report(env: &Env, repo: &str) -> (u64, u64, u64) {
    let v = env.json(&["check", "--repo", repo, "--json"]);
    assert_eq!(v["ok"], true, "temporary files are not problems: {v}");
    let t = &v["temp_files"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("files"), n("bytes"), n("stale"))
}

#[test]
fn stale_temp_files_are_reported_by_check_and_removed_by_the_next_backup_and_copy() {
    let env = Env::with_repo();
    let src = node(&env);
    env.backup(&[s(&src)]);
    let repo_dir = env.path("repo");
    let repo = env.repo();
    assert_eq!(temp_report(&env, &repo), (0, 0, 0));

    // A backup killed two hours ago, and one writing right now.
    plant_temp(&repo_dir, "packs/ab/.tmp-killed", 4096, 7200);
    plant_temp(&repo_dir, ".tmp-killed-config", 10, 3 * 3600);
    plant_temp(&repo_dir, "index/.tmp-live", 100, 0);
    assert_eq!(temp_report(&env, &repo), (3, 4206, 2));
    let human = env.ok(&["check", "--repo", &repo], 0);
    assert!(
        human.contains("3 temporary file(s)") && human.contains("2 of them"),
        "{human}"
    );

    env.backup(&[s(&src)]);
    assert!(
        !repo_dir.join("packs/ab/.tmp-killed").exists(),
        "stale temp file kept"
    );
    assert!(
        !repo_dir.join(".tmp-killed-config").exists(),
        "stale temp file kept"
    );
    assert!(
        repo_dir.join("index/.tmp-live").exists(),
        "a live writer's temp file was removed"
    );
    assert_eq!(temp_report(&env, &repo), (1, 100, 0));

    // A copy cleans its destination the same way.
    let dest = env.path("offsite");
    let dest_s = dest.display().to_string();
    env.ok(&["copy", "--from", &repo, "--to", &dest_s], 0);
    plant_temp(&dest, "packs/cd/.tmp-killed-copy", 2048, 7200);
    plant_temp(&dest, "packs/cd/.tmp-copying", 2048, 60);
    assert_eq!(temp_report(&env, &dest_s), (2, 4096, 1));
    env.ok(&["copy", "--from", &repo, "--to", &dest_s], 0);
    assert!(
        !dest.join("packs/cd/.tmp-killed-copy").exists(),
        "stale temp file kept"
    );
    assert!(
        dest.join("packs/cd/.tmp-copying").exists(),
        "a live copy's temp file was removed"
    );

    let target = env.path("restored");
    env.restore_latest(&target);
    assert_eq!(
        fs::read(target.join("node/db/state.bin")).expect("restored"),
        fs::read(src.join("db/state.bin")).expect("source")
    );
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("readdir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if !p
                .file_name()
                .expect("name")
                .to_string_lossy()
                .starts_with('.')
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn repair(env: &Env, extra: &[&str], code: i32) -> serde_json::Value {
    let (repo, id) = (env.repo(), env.identity());
    let mut args = vec![
        "repair",
        "index",
        "--repo",
        &repo,
        "--identity",
        &id,
        "--json",
    ];
    args.extend_from_slice(extra);
    env.json_with(&args, code)
}

/// Restore into a fresh target and return the exit status.
fn restore_status(env: &Env, target: &str) -> i32 {
    let out = env.with_identity("restore", &["latest", "--target", s(&env.path(target))]);
    out.status.code().unwrap_or(-1)
}

#[test]
fn repair_index_rebuilds_a_damaged_or_lost_index_from_the_packs() {
    for damage in ["flip", "delete"] {
        let env = Env::with_repo();
        let src = node(&env);
        fs::write(
            src.join("db/other.bin"),
            (0..3_000_000u32)
                .map(|i| (i * 31 % 251) as u8)
                .collect::<Vec<_>>(),
        )
        .expect("write");
        env.backup(&[s(&src)]);
        let indexes = files_in(&env.path("repo/index"));
        assert!(!indexes.is_empty());
        for index in &indexes {
            if damage == "flip" {
                let mut d = fs::read(index).expect("read");
                let i = d.len() / 2;
                d[i] ^= 0x10;
                fs::write(index, d).expect("write");
            } else {
                fs::remove_file(index).expect("delete");
            }
        }
        assert_eq!(
            restore_status(&env, "before"),
            3,
            "{damage}: restore without an index"
        );

        // A dry run finds the packs and writes nothing.
        let dry = repair(&env, &["--dry-run"], 0);
        assert!(
            dry["packs_reindexed"].as_u64().expect("count") >= 1,
            "{dry}"
        );
        assert_eq!(dry["packs_indexed"], 0, "{dry}");
        assert_eq!(
            dry["new_indexes"].as_array().expect("list").len(),
            0,
            "{dry}"
        );
        assert_eq!(
            files_in(&env.path("repo/index")).len(),
            if damage == "flip" { indexes.len() } else { 0 }
        );
        assert_eq!(restore_status(&env, "after-dry-run"), 3);

        let done = repair(&env, &[], 0);
        assert_eq!(done["packs_reindexed"], dry["packs_reindexed"], "{done}");
        assert_eq!(done["blobs_reindexed"], dry["blobs_reindexed"], "{done}");
        assert!(
            done["unreadable"].as_array().expect("list").is_empty(),
            "{done}"
        );
        assert!(
            done["bad_blobs"].as_array().expect("list").is_empty(),
            "{done}"
        );
        for index in &indexes {
            assert_eq!(
                index.exists(),
                damage == "flip",
                "{damage}: repair deleted or restored {}",
                index.display()
            );
        }

        let target = env.path("restored");
        env.restore_latest(&target);
        assert_same(&target.join("node"), &src, Compare::CONTENTS);
        let (repo, id) = (env.repo(), env.identity());
        let check = env.json_with(
            &[
                "check",
                "--repo",
                &repo,
                "--identity",
                &id,
                "--read-data",
                "--json",
            ],
            if damage == "flip" { 3 } else { 0 },
        );
        // The damaged index is left in place and still reported; nothing else is wrong.
        for p in check["problems"].as_array().expect("problems") {
            assert_eq!(p["kind"], "index", "{damage}: {check}");
        }
        assert_eq!(check["counts"]["packs_unreferenced"], 0, "{check}");

        // Idempotent: nothing left to do.
        let again = repair(&env, &[], 0);
        assert_eq!(again["packs_reindexed"], 0, "{again}");
        assert!(
            again["new_indexes"].as_array().expect("list").is_empty(),
            "{again}"
        );
    }
}

#[test]
fn repair_index_skips_a_damaged_pack_and_reports_it() {
    let env = Env::with_repo();
    let src = node(&env);
    env.backup(&[s(&src)]);
    for index in files_in(&env.path("repo/index")) {
        fs::remove_file(index).expect("delete");
    }
    let packs = files_in(&env.path("repo/packs"));
    let victim = packs
        .iter()
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("a pack");
    let mut d = fs::read(victim).expect("read");
    let i = d.len() / 2;
    d[i] ^= 1;
    fs::write(victim, d).expect("write");
    let r = repair(&env, &[], 3);
    let unreadable = r["unreadable"].as_array().expect("list");
    assert_eq!(unreadable.len(), 1, "{r}");
    let victim_name = victim
        .strip_prefix(env.path("repo"))
        .expect("in repo")
        .display()
        .to_string();
    assert_eq!(unreadable[0]["object"], victim_name.as_str(), "{r}");
    assert!(
        unreadable[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("hash"),
        "{r}"
    );
    assert_eq!(
        r["packs_reindexed"].as_u64(),
        Some(packs.len() as u64 - 1),
        "{r}"
    );
}
