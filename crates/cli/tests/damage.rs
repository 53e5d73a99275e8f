//! Damaged repositories through the binary: each kind of damage is caught by the cheapest
//! check level that can see it, reported with the files it hits, and never restored as
//! wrong bytes.

use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{s, text, Env};
use vtool_testkit::Rng;

/// A node of a few files; `big.bin` spans several chunks.
fn node(env: &Env) -> PathBuf {
    let root = env.path("node");
    fs::create_dir_all(root.join("chain")).expect("mkdir");
    fs::create_dir_all(root.join("keys")).expect("mkdir");
    let big = Rng::new(0x243F_6A88_85A3_08D3).bytes(6 << 20);
    fs::write(root.join("chain/big.bin"), big).expect("write");
    fs::write(root.join("chain/small.log"), "log line\n".repeat(1000)).expect("write");
    fs::write(root.join("keys/keystore.json"), r#"{"crypto":{}}"#).expect("write");
    root
}

fn objects(env: &Env, dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![env.path(&format!("repo/{dir}"))];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).expect("readdir") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn largest_pack(env: &Env) -> PathBuf {
    objects(env, "packs")
        .into_iter()
        .max_by_key(|p| fs::metadata(p).expect("stat").len())
        .expect("a pack")
}

fn name_of(env: &Env, path: &Path) -> String {
    path.strip_prefix(env.path("repo"))
        .expect("in repo")
        .display()
        .to_string()
}

fn check(env: &Env, extra: &[&str]) -> (i32, Value) {
    let repo = env.repo();
    let mut args = vec!["check", "--repo", &repo, "--json"];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code().unwrap_or(-1), json)
}

fn kinds(report: &Value) -> BTreeSet<String> {
    report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["kind"].as_str().expect("kind").to_string())
        .collect()
}

fn damaged_paths(report: &Value) -> BTreeSet<String> {
    report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .flat_map(|p| p["damaged"].as_array().cloned().unwrap_or_default())
        .map(|d| d["path"].as_str().expect("path").to_string())
        .collect()
}

/// Restore must either fail or leave out exactly the damaged files; whatever it writes is
/// the original bytes.
fn restore_never_lies(env: &Env, source: &Path) -> i32 {
    let target = env.path("restored");
    let out = env.with_identity("restore", &["latest", "--target", s(&target)]);
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(
        code,
        0,
        "a damaged repository restored cleanly: {}",
        text(&out)
    );
    for rel in ["chain/big.bin", "chain/small.log", "keys/keystore.json"] {
        let restored = target.join("node").join(rel);
        if restored.exists() {
            assert_eq!(
                fs::read(&restored).expect("read"),
                fs::read(source.join(rel)).expect("read"),
                "{rel} restored with wrong bytes"
            );
        }
    }
    code
}

fn setup() -> (Env, PathBuf) {
    let env = Env::with_repo();
    let src = node(&env);
    env.backup(&[s(&src)]);
    (env, src)
}

#[test]
fn flipped_byte_in_a_pack_is_caught_by_packs_and_read_data() {
    let (env, src) = setup();
    let pack = largest_pack(&env);
    let mut data = fs::read(&pack).expect("read");
    let at = data.len() / 2;
    data[at] ^= 0x01;
    fs::write(&pack, data).expect("write");
    let id = env.identity();

    // Structure cannot see a same-size change; --packs (no key) and --read-data can.
    assert_eq!(check(&env, &[]).0, 0);
    let (code, r) = check(&env, &["--packs"]);
    assert_eq!(code, 3);
    assert_eq!(kinds(&r), BTreeSet::from(["pack-hash".to_string()]));
    assert_eq!(r["problems"][0]["object"], name_of(&env, &pack));
    let (code, r) = check(&env, &["--read-data", "--identity", &id]);
    assert_eq!(code, 3);
    assert!(kinds(&r).contains("blob"), "{r:#}");
    assert!(damaged_paths(&r).contains("node/chain/big.bin"), "{r:#}");
    assert_eq!(restore_never_lies(&env, &src), 3);
}

#[test]
fn truncated_pack_is_caught_by_structure() {
    let (env, src) = setup();
    let pack = largest_pack(&env);
    let data = fs::read(&pack).expect("read");
    // Half of it: the blobs after the cut are lost whatever the layout (a format 3 pack
    // cut only in its trailer still restores, every blob being sealed on its own).
    fs::write(&pack, &data[..data.len() / 2]).expect("truncate");

    let (code, r) = check(&env, &[]);
    assert_eq!(code, 3);
    assert_eq!(kinds(&r), BTreeSet::from(["pack-size".to_string()]));
    let (code, r) = check(&env, &["--identity", &env.identity()]);
    assert_eq!(code, 3);
    assert!(damaged_paths(&r).contains("node/chain/big.bin"), "{r:#}");
    restore_never_lies(&env, &src);
}

#[test]
fn missing_pack_is_caught_by_structure() {
    let (env, src) = setup();
    let pack = largest_pack(&env);
    fs::remove_file(&pack).expect("rm");

    let (code, r) = check(&env, &[]);
    assert_eq!(code, 3);
    assert_eq!(kinds(&r), BTreeSet::from(["pack-missing".to_string()]));
    assert_eq!(r["problems"][0]["object"], name_of(&env, &pack));
    let (code, r) = check(&env, &["--identity", &env.identity()]);
    assert_eq!(code, 3);
    assert!(damaged_paths(&r).contains("node/chain/big.bin"), "{r:#}");
    assert_eq!(restore_never_lies(&env, &src), 3);
}

#[test]
fn damaged_index_is_caught_by_structure() {
    let (env, src) = setup();
    let index = objects(&env, "index");
    assert_eq!(index.len(), 1);
    let mut data = fs::read(&index[0]).expect("read");
    let at = data.len() / 2;
    data[at] ^= 0xff;
    fs::write(&index[0], data).expect("write");

    let (code, r) = check(&env, &[]);
    assert_eq!(code, 3);
    assert!(kinds(&r).contains("index"), "{r:#}");
    assert_eq!(r["problems"][0]["object"], name_of(&env, &index[0]));
    // Every blob it listed is now unlocatable: the identity check says what that costs.
    let (code, r) = check(&env, &["--identity", &env.identity()]);
    assert_eq!(code, 3);
    assert!(kinds(&r).len() >= 2, "{r:#}");
    restore_never_lies(&env, &src);
}

#[test]
fn damaged_snapshot_is_caught_by_structure_and_altered_one_by_authentication() {
    let (env, src) = setup();
    let snaps = objects(&env, "snapshots");
    assert_eq!(snaps.len(), 1);
    let original = fs::read(&snaps[0]).expect("read");

    // Bit rot: the bytes no longer match the name.
    let rotten = String::from_utf8(original.clone())
        .expect("utf-8")
        .replacen("\"files\": 3", "\"files\": 4", 1);
    assert_ne!(rotten.as_bytes(), &original[..]);
    fs::write(&snaps[0], &rotten).expect("write");
    let (code, r) = check(&env, &[]);
    assert_eq!(code, 3);
    assert_eq!(kinds(&r), BTreeSet::from(["snapshot".to_string()]));
    assert_ne!(restore_never_lies(&env, &src), 0);

    // Tampering: stored under its new hash, so only the MAC can tell.
    fs::remove_file(&snaps[0]).expect("rm");
    let name = format!("snapshots/{}", blake3::hash(rotten.as_bytes()).to_hex());
    fs::write(env.path(&format!("repo/{name}")), &rotten).expect("write");
    assert_eq!(
        check(&env, &[]).0,
        0,
        "structure has no key to authenticate with"
    );
    let (code, r) = check(&env, &["--identity", &env.identity()]);
    assert_eq!(code, 3);
    assert_eq!(kinds(&r), BTreeSet::from(["snapshot-auth".to_string()]));
    assert_eq!(r["problems"][0]["object"], name);
    fs::remove_dir_all(env.path("restored")).ok();
    assert_ne!(restore_never_lies(&env, &src), 0);
}
