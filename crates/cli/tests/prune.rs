//! forget and prune end to end: space comes back with the backup key alone, what stays
//! restores byte-identical and passes `check --read-data`, trash is undoable until its grace
//! period ends, the key guard holds, and backups running meanwhile lose nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use vtool_testkit::tree::{assert_same_tree, copy_tree};
use vtool_testkit::Rng;

use crate::support::engines::keystore;
use crate::support::{s, text, Env, VTOOL};

/// Bytes of every pack in the repository, as stored.
fn pack_bytes(repo: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let m = e.metadata().expect("metadata");
                        if m.is_dir() {
                            walk(&e.path())
                        } else {
                            m.len()
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&repo.join("packs"))
}

/// `files` random files of 1–3 MiB under `dir/node`, named from `first`.
fn files(rng: &mut Rng, dir: &Path, first: usize, count: usize) {
    fs::create_dir_all(dir).expect("mkdir");
    for i in first..first + count {
        let len = (1 << 20) + rng.below(2 << 20) as usize;
        fs::write(dir.join(format!("f{i:03}.bin")), rng.bytes(len)).expect("write");
    }
}

fn keyed(env: &Env, command: &str, extra: &[&str], code: i32) -> Value {
    let (repo, bk) = (env.repo(), env.backup_key());
    let mut args = vec![command, "--repo", &repo, "--backup-key", &bk, "--json"];
    args.extend_from_slice(extra);
    env.json_with(&args, code)
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    env.snapshots()
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

fn restore_equals(env: &Env, id: &str, state: &Path, name: &str) {
    let target = env.path(&format!("restored-{}", &id[..8]));
    fs::remove_dir_all(&target).ok();
    let out = env.with_identity("restore", &[id, "--target", s(&target)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_same_tree(state, &target.join(name));
}

/// Five backups of a node whose files come and go; returns the snapshot ids, oldest first,
/// and a copy of the source as each backed up.
fn history(env: &Env, rng: &mut Rng) -> Vec<(String, PathBuf)> {
    let src = env.path("node");
    files(rng, &src, 0, 12);
    let mut out = Vec::new();
    for day in 0..5 {
        if day > 0 {
            // Half the files leave, new ones arrive: old packs end up partly used.
            for i in (day - 1) * 3..(day - 1) * 3 + 3 {
                fs::remove_file(src.join(format!("f{i:03}.bin"))).ok();
            }
            files(rng, &src, 12 + day * 3, 3);
        }
        let time = format!("2026-11-{:02}T03:00:00Z", day + 1);
        let r = env.backup(&["--time", &time, s(&src)]);
        let id = r["snapshot"].as_str().expect("snapshot").to_string();
        let state = env.path(&format!("state{day}"));
        copy_tree(&src, &state);
        out.push((id, state));
    }
    out
}

#[test]
fn prune_with_only_the_backup_key_reclaims_the_space_and_keeps_what_stays_intact() {
    let env = Env::with_repo();
    let mut rng = Rng::new(11);
    let states = history(&env, &mut rng);
    let repo = PathBuf::from(env.repo());
    let before = pack_bytes(&repo);

    // The identity is not on the machine while retention runs.
    let away = env
        .dir
        .path()
        .parent()
        .expect("tmp")
        .join(format!("identity-away-{}", std::process::id()));
    fs::rename(env.identity(), &away).expect("move identity away");
    let f = keyed(&env, "forget", &["--keep-last", "2"], 0);
    assert_eq!(
        f["groups"][0]["removed"].as_array().expect("removed").len(),
        3
    );
    let p = keyed(&env, "prune", &["--grace", "0s"], 0);
    fs::rename(&away, env.identity()).expect("bring identity back");

    let unused = p["unused_bytes"].as_u64().expect("unused");
    let used = p["used_bytes"].as_u64().expect("used");
    let after = pack_bytes(&repo);
    assert!(p["repacked_packs"].as_u64().expect("repacked") > 0, "{p:#}");
    assert!(unused > 10 << 20, "the history leaves unused data: {p:#}");
    let reclaimed = before - after;
    assert!(
        reclaimed as f64 >= 0.95 * unused as f64,
        "reclaimed {reclaimed} of {unused} unused bytes: {p:#}"
    );
    assert!(
        after <= used + used / 20 + (1 << 20),
        "{after} left for {used} used"
    );

    assert_eq!(
        snapshot_ids(&env),
        [states[3].0.clone(), states[4].0.clone()]
    );
    let out = env.with_identity("check", &["--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (id, state) in &states[3..] {
        restore_equals(&env, id, state, "node");
    }
    // Nothing more to do: a second prune deletes and repacks nothing.
    let again = keyed(&env, "prune", &["--grace", "0s"], 0);
    assert_eq!(again["condemned_packs"], 0, "{again:#}");
    assert_eq!(again["repacked_packs"], 0, "{again:#}");
}

#[test]
fn trash_is_undoable_until_a_prune_after_the_grace_period() {
    let env = Env::with_repo();
    let mut rng = Rng::new(12);
    let states = history(&env, &mut rng);
    let repo = PathBuf::from(env.repo());
    keyed(&env, "forget", &["--keep-last", "1"], 0);
    assert_eq!(snapshot_ids(&env), [states[4].0.clone()]);
    let before = pack_bytes(&repo);
    // Within the grace period prune marks but deletes nothing.
    let p = keyed(&env, "prune", &[], 0);
    assert!(p["purged"].as_array().expect("purged").is_empty(), "{p:#}");
    assert_eq!(p["pending"].as_array().expect("pending").len(), 1, "{p:#}");
    assert!(p["trash"].is_string(), "the unused packs are marked: {p:#}");
    assert!(pack_bytes(&repo) >= before, "nothing deleted yet");

    let u = keyed(&env, "prune", &["--undo"], 0);
    assert_eq!(u["snapshots"], 4, "{u:#}");
    let ids: Vec<String> = states.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(snapshot_ids(&env), ids);
    let out = env.with_identity("check", &["--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    restore_equals(&env, &states[0].0, &states[0].1, "node");

    // Taken back, then forgotten again and deleted for good.
    keyed(&env, "forget", &["--keep-last", "1"], 0);
    keyed(&env, "prune", &["--grace", "0s"], 0);
    assert_eq!(snapshot_ids(&env), [states[4].0.clone()]);
    let u = keyed(&env, "prune", &["--undo"], 0);
    assert_eq!(u["snapshots"], 0, "nothing left to undo: {u:#}");
    let out = env.with_identity("check", &["--read-data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    restore_equals(&env, &states[4].0, &states[4].1, "node");
}

#[test]
fn forget_keeps_the_newest_snapshot_of_every_validator_key() {
    let env = Env::with_repo();
    let keys = env.path("node/validator_keys");
    fs::create_dir_all(&keys).expect("mkdir");
    let (a, b) = ("a".repeat(96), "b".repeat(96));
    fs::write(keys.join("keystore-a.json"), keystore(&a, "pw")).expect("write");
    fs::write(keys.join("keystore-b.json"), keystore(&b, "pw")).expect("write");
    let src = env.path("node");
    let mut ids = Vec::new();
    for day in 1..=4 {
        if day == 2 {
            // Key a leaves the node (moved to another host).
            fs::remove_file(keys.join("keystore-a.json")).expect("rm");
        }
        let time = format!("2026-11-{day:02}T03:00:00Z");
        let r = env.backup(&["--time", &time, s(&src)]);
        ids.push(r["snapshot"].as_str().expect("id").to_string());
    }
    let verdicts = |extra: &[&str]| -> (Vec<String>, Value) {
        let mut args = vec!["--keep-last", "1", "--dry-run"];
        args.extend_from_slice(extra);
        let f = keyed(&env, "forget", &args, 0);
        let kept = f["groups"][0]["kept"]
            .as_array()
            .expect("kept")
            .iter()
            .map(|v| format!("{}:{}", v["id"].as_str().expect("id"), v["reasons"]))
            .collect();
        (kept, f)
    };
    let (kept, f) = verdicts(&[]);
    assert_eq!(
        kept,
        [
            format!("{}:[\"last\"]", ids[3]),
            format!("{}:[\"holds-key\"]", ids[0])
        ],
        "{f:#}"
    );
    assert_eq!(f["guarded"], 1);
    let (kept, f) = verdicts(&["--allow-losing-keys"]);
    assert_eq!(kept, [format!("{}:[\"last\"]", ids[3])], "{f:#}");
    assert_eq!(f["holdings_lost"], 1, "{f:#}");
    // A dry run changed nothing.
    assert_eq!(snapshot_ids(&env), ids);
}

#[test]
fn backups_running_during_prunes_lose_nothing() {
    let env = Env::with_repo();
    let mut rng = Rng::new(13);
    let src = env.path("node");
    files(&mut rng, &src, 0, 10);
    env.backup(&[s(&src)]);
    let (repo, bk) = (env.repo(), env.backup_key());
    for round in 0..4 {
        for i in round * 3..round * 3 + 3 {
            fs::remove_file(src.join(format!("f{i:03}.bin"))).ok();
        }
        files(&mut rng, &src, 10 + round * 3, 6);
        keyed(&env, "forget", &["--keep-last", "1"], 0);
        let mut backup = env
            .command(
                VTOOL,
                &[
                    "backup",
                    "--repo",
                    &repo,
                    "--backup-key",
                    &bk,
                    "--no-cache",
                    s(&src),
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn backup");
        let mut prunes = 0;
        loop {
            let done = backup.try_wait().expect("wait").is_some();
            keyed(&env, "prune", &["--grace", "0s"], 0);
            prunes += 1;
            if done {
                break;
            }
        }
        let out = backup.wait_with_output().expect("backup");
        assert_eq!(out.status.code(), Some(0), "round {round}: {}", text(&out));
        assert!(prunes >= 1);
        let check = env.with_identity("check", &["--read-data"]);
        assert_eq!(
            check.status.code(),
            Some(0),
            "round {round}: {}",
            text(&check)
        );
        let latest = snapshot_ids(&env).pop().expect("latest");
        restore_equals(&env, &latest, &src, "node");
    }
    // Everything the earlier rounds left is gone after one more prune.
    keyed(&env, "forget", &["--keep-last", "1"], 0);
    let p = keyed(&env, "prune", &["--grace", "0s"], 0);
    assert!(
        p["pending"].as_array().expect("pending").is_empty(),
        "{p:#}"
    );
    let check = env.with_identity("check", &["--read-data"]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
}

#[test]
fn a_lost_refs_object_is_reported_and_prune_deletes_nothing() {
    let env = Env::with_repo();
    let mut rng = Rng::new(14);
    let states = history(&env, &mut rng);
    let repo = PathBuf::from(env.repo());
    keyed(&env, "forget", &["--keep-last", "1"], 0);
    let refs: Vec<PathBuf> = fs::read_dir(repo.join("refs"))
        .expect("refs dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(refs.len(), 5, "one refs object per snapshot");
    let before = pack_bytes(&repo);
    for r in &refs {
        fs::rename(r, r.with_extension("away")).expect("move aside");
    }
    let r = env.json_with(&["check", "--repo", s(&repo), "--json"], 3);
    let kinds: Vec<&str> = r["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["kind"].as_str().expect("kind"))
        .collect();
    assert!(
        kinds.iter().all(|k| *k == "refs") && !kinds.is_empty(),
        "{r:#}"
    );
    let (repo_s, bk) = (env.repo(), env.backup_key());
    let out = env.run(&[
        "prune",
        "--repo",
        &repo_s,
        "--backup-key",
        &bk,
        "--grace",
        "0s",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(pack_bytes(&repo), before, "nothing deleted");
    for r in &refs {
        fs::rename(r.with_extension("away"), r).expect("bring back");
    }
    keyed(&env, "prune", &["--grace", "0s"], 0);
    restore_equals(&env, &states[4].0, &states[4].1, "node");
}
