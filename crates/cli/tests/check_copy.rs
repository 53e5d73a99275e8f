//! `vtool check` and `vtool copy` end to end, through the binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vtool_snapshot::age::x25519::Identity;
use vtool_snapshot::{backup, keys, BackupOptions, NoProgress, Repository};
use vtool_testkit::tree::{assert_same, Compare};
use vtool_testkit::Rng;
use vtool_transfer::{Backend, LocalBackend};

use crate::support::{clean_command, s, VTOOL};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// vtool with a clean environment and its cache under target/tmp, not the user's.
fn vtool(args: &[&str]) -> Run {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check_copy-cache");
    let out = clean_command(VTOOL, args, &cache)
        .output()
        .expect("run vtool");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(args: &[&str]) -> Run {
    let r = vtool(args);
    assert_eq!(
        r.code, 0,
        "vtool {args:?} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    r
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let identity = Identity::generate();
        keys::save_identity(&identity, &root.join("identity.txt")).expect("identity");
        let backend = LocalBackend::create(root.join("src")).expect("backend");
        let new = Repository::init(Box::new(backend), vec![identity.to_public()]).expect("init");
        let node = root.join("data/node");
        fs::create_dir_all(node.join("chaindata")).expect("mkdir");
        fs::create_dir_all(node.join("keys")).expect("mkdir");
        fs::write(
            node.join("chaindata/000001.ldb"),
            Rng::new(1).bytes(3 << 20),
        )
        .expect("write");
        fs::write(node.join("keys/keystore-0.json"), b"{\"crypto\":{}}\n").expect("write");
        fs::set_permissions(
            node.join("keys/keystore-0.json"),
            fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        let opts = BackupOptions {
            paths: vec![node.clone()],
            ..Default::default()
        };
        backup(&new.repo, &new.backup_key, &opts, &NoProgress).expect("backup 1");
        fs::write(
            node.join("chaindata/000002.ldb"),
            Rng::new(2).bytes(1 << 20),
        )
        .expect("write");
        backup(&new.repo, &new.backup_key, &opts, &NoProgress).expect("backup 2");
        Setup { _dir: dir, root }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn fingerprints(&self, repo: &str) -> Vec<(String, String)> {
        let r = ok(&["snapshots", "--repo", s(&self.p(repo)), "--json"]);
        let mut v: Vec<(String, String)> = r
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|row| {
                (
                    row["id"].as_str().expect("id").to_string(),
                    row["fingerprint"]
                        .as_str()
                        .expect("fingerprint")
                        .to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn names(&self, repo: &str, dir: &str) -> Vec<(String, u64)> {
        let b = LocalBackend::open(self.p(repo)).expect("open");
        let mut v: Vec<(String, u64)> = b
            .list(dir)
            .expect("list")
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        v.sort();
        v
    }
}

#[test]
fn check_levels_and_exit_codes() {
    let t = Setup::new();
    let src = t.p("src");
    let id = t.p("identity.txt");
    ok(&["check", "--repo", s(&src)]);
    ok(&["check", "--repo", s(&src), "--packs"]);
    let r = ok(&[
        "check",
        "--repo",
        s(&src),
        "--identity",
        s(&id),
        "--read-data",
        "--json",
    ]);
    let j = r.json();
    assert_eq!(j["ok"], Value::Bool(true));
    assert!(
        j["counts"]["blobs_checked"].as_u64().unwrap_or(0) > 0,
        "{j}"
    );
    // --read-data without the identity is a usage error.
    assert_eq!(vtool(&["check", "--repo", s(&src), "--read-data"]).code, 2);
    assert_eq!(
        vtool(&["check", "--repo", s(&src), "--packs", "--subset", "0/3"]).code,
        2
    );

    // Flip one byte of the largest pack.
    let packs = t.names("src", "packs");
    let (name, _) = packs.iter().max_by_key(|(_, size)| *size).expect("a pack");
    let path = src.join(name);
    let mut bytes = fs::read(&path).expect("read");
    let at = bytes.len() / 3;
    bytes[at] ^= 0x08;
    fs::write(&path, &bytes).expect("write");

    let r = vtool(&["check", "--repo", s(&src), "--packs", "--json"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["ok"], Value::Bool(false));
    assert_eq!(j["problems"][0]["kind"], "pack-hash", "{j}");
    assert_eq!(j["problems"][0]["object"], name.as_str());

    let r = vtool(&[
        "check",
        "--repo",
        s(&src),
        "--identity",
        s(&id),
        "--read-data",
    ]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PROBLEM Blob"), "{}", r.stdout);
    assert!(
        r.stdout.contains("node/chaindata/00000"),
        "file not named:\n{}",
        r.stdout
    );

    // Slices 1/2 and 2/2 together re-hash every pack.
    let hashed = |spec: &str| {
        let r = vtool(&[
            "check",
            "--repo",
            s(&src),
            "--packs",
            "--subset",
            spec,
            "--json",
        ]);
        assert!(r.code == 0 || r.code == 3, "{}", r.stderr);
        r.json()["counts"]["packs_hashed"].as_u64().expect("count")
    };
    assert_eq!(hashed("1/2") + hashed("2/2"), packs.len() as u64);
}

#[test]
fn copy_then_check_and_restore_from_the_copy() {
    let t = Setup::new();
    let (src, dst) = (t.p("src"), t.p("offsite/repo"));
    let r = ok(&["copy", "--from", s(&src), "--to", s(&dst), "--json"]);
    let j = r.json();
    assert_eq!(j["initialized_destination"], Value::Bool(true));
    let phases: Vec<&str> = j["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().expect("phase"))
        .collect();
    assert_eq!(
        phases,
        [
            "keys",
            "config",
            "packs",
            "index",
            "refs",
            "snapshots",
            "drills",
            "reports"
        ]
    );
    let copied = j["total"]["copied_objects"].as_u64().expect("copied");
    assert!(copied >= 7, "{j}");

    // The copy holds the same objects; README.txt is beside them, not among them.
    for dir in ["keys", "packs", "index", "snapshots"] {
        assert_eq!(t.names("src", dir), t.names("offsite/repo", dir), "{dir}");
    }
    assert_eq!(
        fs::read(src.join("config")).expect("config"),
        fs::read(dst.join("config")).expect("config")
    );
    let readme = fs::read_to_string(dst.join("README.txt")).expect("README.txt");
    assert!(
        readme.contains("vtool check --repo DIR --packs"),
        "{readme}"
    );
    assert!(readme.contains("vtool snapshots --repo DIR"), "{readme}");
    assert!(readme.contains("age"), "{readme}");
    assert!(!src.join("README.txt").exists());

    let r = ok(&["check", "--repo", s(&dst), "--packs", "--json"]);
    assert_eq!(r.json()["unreferenced"], Value::Array(vec![]));
    assert_eq!(t.fingerprints("src"), t.fingerprints("offsite/repo"));

    let target = t.p("restored");
    ok(&[
        "restore",
        "--repo",
        s(&dst),
        "--identity",
        s(&t.p("identity.txt")),
        "latest",
        "--target",
        s(&target),
        "--no-cache",
    ]);
    assert_same(
        &target.join("node"),
        &t.p("data/node"),
        Compare::CONTENTS_AND_MODES,
    );

    // A second copy sends nothing.
    let r = ok(&["copy", "--from", s(&src), "--to", s(&dst), "--json"]);
    let j = r.json();
    assert_eq!(j["total"]["copied_objects"], 0, "{j}");
    assert_eq!(j["initialized_destination"], Value::Bool(false));
    assert!(
        j["total"]["skipped_objects"].as_u64().unwrap_or(0) >= 6,
        "{j}"
    );
    assert_eq!(j["readme"], Value::Null);
}

#[test]
fn copy_refuses_another_repository() {
    let t = Setup::new();
    let other = t.p("other");
    Repository::init(
        Box::new(LocalBackend::create(&other).expect("backend")),
        vec![Identity::generate().to_public()],
    )
    .expect("init");
    let before = fs::read(other.join("config")).expect("config");
    let r = vtool(&["copy", "--from", s(&t.p("src")), "--to", s(&other)]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("another repository"), "{}", r.stderr);
    assert!(t.names("other", "packs").is_empty());
    assert!(t.names("other", "snapshots").is_empty());
    assert_eq!(fs::read(other.join("config")).expect("config"), before);
    assert!(!other.join("README.txt").exists());
}

#[test]
fn copy_selected_snapshots() {
    let t = Setup::new();
    let fps = t.fingerprints("src");
    assert_eq!(fps.len(), 2);
    let first = &fps[0].0;
    let dst = t.p("one");
    let r = ok(&[
        "copy",
        "--from",
        s(&t.p("src")),
        "--to",
        s(&dst),
        &first[..10],
        "--json",
    ]);
    assert_eq!(r.json()["snapshots"][0], first.as_str());
    assert_eq!(t.fingerprints("one"), vec![fps[0].clone()]);
    // Packs and indexes are copied whole.
    assert_eq!(t.names("src", "packs"), t.names("one", "packs"));
    ok(&["check", "--repo", s(&dst), "--packs"]);
    // The rest follows with a plain copy.
    ok(&["copy", "--from", s(&t.p("src")), "--to", s(&dst)]);
    assert_eq!(t.fingerprints("one"), fps);
}
