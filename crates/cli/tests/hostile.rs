//! Hostile repositories through the binary: trees forged with the backup key (a compromised
//! backup host) and copies planted by a storage host without any key. vtool must refuse
//! them as damage (exit 3), quickly and in bounded memory, and never crash; a planted copy
//! beside a genuine one must not stop a restore.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{s, Env, VTOOL};
use vtool_snapshot::blob::{self, EncodedBlob};
use vtool_snapshot::index::decode_index;
use vtool_snapshot::keys::{parse_recipients, BackupKey};
use vtool_snapshot::pack::PackWriter;
use vtool_snapshot::repofile::{
    BlobKind, IndexFile, IndexedPack, Node, NodeKind, PackedBlob, SnapshotSummary, Tree,
};
use vtool_snapshot::{merkle, tree, FileType, Id, Repository};
use vtool_testkit::Rng;

/// Memory a refused hostile object may cost at most; the bombs would take gigabytes.
const PEAK_LIMIT_KIB: u64 = 400 << 10;

/// A command's outcome, its peak resident memory and how long it ran.
struct Watched {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_kib: u64,
    elapsed: Duration,
}

impl Watched {
    fn describe(&self) -> String {
        format!(
            "status {:?} after {:?}, peak {} MiB\nstdout: {}\nstderr: {}",
            self.code,
            self.elapsed,
            self.peak_kib >> 10,
            self.stdout,
            self.stderr
        )
    }

    /// Refused as damaged data (exit 3), fast and in bounded memory.
    fn assert_refused(&self, what: &str, why: &str) {
        assert_eq!(self.code, Some(3), "{what}: {}", self.describe());
        self.assert_bounded(what);
        assert!(
            self.stderr.contains(why) || self.stdout.contains(why),
            "{what} does not say {why:?}: {}",
            self.describe()
        );
    }

    fn assert_bounded(&self, what: &str) {
        assert!(
            self.peak_kib < PEAK_LIMIT_KIB,
            "{what} used too much memory: {}",
            self.describe()
        );
        assert!(
            self.elapsed < Duration::from_secs(60),
            "{what} took too long: {}",
            self.describe()
        );
    }
}

/// Peak resident memory of a running process (`VmHWM`), in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run vtool with `args`, watching its peak memory; killed after 90 s (an endless walk).
fn watched(env: &Env, args: &[&str]) -> Watched {
    let out = env.path("watched.out");
    let err = env.path("watched.err");
    let mut child = env
        .command(VTOOL, args)
        .stdout(Stdio::from(fs::File::create(&out).expect("create")))
        .stderr(Stdio::from(fs::File::create(&err).expect("create")))
        .spawn()
        .expect("run vtool");
    let started = Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Some(p) = peak_kib(child.id()) {
            peak = peak.max(p);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(90) {
            child.kill().expect("kill");
            child.wait().expect("wait");
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Watched {
        code: status.and_then(|s| s.code()),
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
        peak_kib: peak,
        elapsed: started.elapsed(),
    }
}

/// A zstd frame of RLE blocks that inflates to `len` zero bytes from a few bytes per 128 KiB.
fn zstd_bomb(len: u64) -> Vec<u8> {
    const BLOCK: u64 = 128 << 10;
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD]; // magic
    frame.push(0x00); // no content size, no checksum, no dictionary; window descriptor follows
    frame.push(7 << 3); // window 2^17 = 128 KiB
    let mut left = len;
    while left > 0 {
        let n = left.min(BLOCK);
        left -= n;
        let header = u32::from(left == 0) | (1 << 1) | ((n as u32) << 3); // RLE block
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0);
    }
    frame
}

fn bomb_blob(inflates_to: u64, claims: u32) -> EncodedBlob {
    EncodedBlob {
        data: zstd_bomb(inflates_to),
        raw_length: claims,
        compressed: true,
    }
}

/// A small genuine node: `big.bin` spans several chunks.
fn node(env: &Env) -> PathBuf {
    let root = env.path("node");
    fs::create_dir_all(root.join("chain")).expect("mkdir");
    let big = Rng::new(0x9E37_79B9_7F4A_7C15).bytes(3 << 20);
    fs::write(root.join("chain/big.bin"), big).expect("write");
    fs::write(root.join("chain/small.log"), "log line\n".repeat(1000)).expect("write");
    fs::write(root.join("keystore.json"), r#"{"crypto":{}}"#).expect("write");
    root
}

fn setup() -> (Env, PathBuf) {
    let env = Env::with_repo();
    let src = node(&env);
    env.backup(&[s(&src)]);
    (env, src)
}

/// Writes objects with the backup key, as a compromised backup host can.
struct Forger {
    repo: Repository,
    key: BackupKey,
}

/// A forged tree blob, ready to pack.
struct ForgedTree {
    id: Id,
    merkle: Id,
    blob: EncodedBlob,
}

fn entry(name: &str, kind: NodeKind) -> Node {
    Node {
        name: name.into(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        size: 0,
        content: None,
        chunks: Vec::new(),
        subtree: None,
        merkle: None,
        target: None,
    }
}

fn dir(name: &str, sub: &ForgedTree) -> Node {
    Node {
        subtree: Some(sub.id),
        merkle: Some(sub.merkle),
        ..entry(name, NodeKind::Dir)
    }
}

fn file(name: &str, size: u64, chunks: Vec<Id>) -> Node {
    Node {
        mode: 0o644,
        size,
        content: Some(Id::hash(name.as_bytes())),
        chunks,
        ..entry(name, NodeKind::File)
    }
}

impl Forger {
    fn open(env: &Env) -> Self {
        let backend = vtool_transfer::url::open(&env.repo()).expect("backend");
        Forger {
            repo: Repository::open(backend).expect("open"),
            key: BackupKey::load(Path::new(&env.backup_key())).expect("backup key"),
        }
    }

    fn tree(&self, tree: &Tree) -> ForgedTree {
        let json = tree::encode_tree(tree).expect("encode");
        ForgedTree {
            id: self.key.chunk_key.blob_id(&json),
            merkle: merkle::tree_hash(tree).expect("merkle"),
            blob: blob::encode(json, 3),
        }
    }

    /// One pack of `blobs` and an index listing it.
    fn store(&self, blobs: &[(Id, BlobKind, &EncodedBlob)]) {
        let pack = pack_of(&self.key.recipients, &self.repo, blobs);
        self.repo
            .save_index(&IndexFile {
                version: 1,
                packs: vec![pack],
                rebuilt: None,
            })
            .expect("index");
    }

    /// A snapshot of `root`, authenticated with the chunk key; returns its id.
    fn snapshot(&self, root: Id, fingerprint: Id, summary: SnapshotSummary) -> String {
        let (_, sealed) = self
            .repo
            .find_snapshot("latest", None)
            .expect("a genuine snapshot");
        let mut snap = sealed.into_value();
        snap.tree = root;
        snap.fingerprint = fingerprint;
        snap.summary = summary;
        let (id, _) = self
            .repo
            .save_snapshot(&snap, &self.key.chunk_key)
            .expect("snapshot");
        id.to_hex()
    }
}

/// Encrypt `blobs` into a pack, store it, and describe it as an index does.
fn pack_of(
    recipients: &[vtool_snapshot::age::x25519::Recipient],
    repo: &Repository,
    blobs: &[(Id, BlobKind, &EncodedBlob)],
) -> IndexedPack {
    let mut w = PackWriter::new(repo.pack_layout(), recipients, 1 << 20).expect("pack");
    for (id, kind, b) in blobs {
        w.add(*id, *kind, b).expect("add");
    }
    let pack = w.finish().expect("finish");
    repo.backend()
        .put(&FileType::Pack.name(&pack.id), &pack.bytes)
        .expect("put");
    IndexedPack {
        id: pack.id,
        size: pack.bytes.len() as u64,
        blobs: pack.blobs,
    }
}

fn check_json(env: &Env, extra: &[&str]) -> (Watched, Value) {
    let repo = env.repo();
    let mut args = vec!["check", "--repo", &repo, "--json"];
    args.extend_from_slice(extra);
    let run = watched(env, &args);
    let json = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run, json)
}

fn messages(report: &Value) -> String {
    report["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| p["message"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// `restore`, `check --identity`, `checksums`, `diff` and `drill` of `snap` are all refused
/// for `why`.
fn every_walk_refuses(env: &Env, snap: &str, why: &str) {
    let (repo, id) = (env.repo(), env.identity());
    let target = env.path("restored");
    let restore = watched(
        env,
        &[
            "restore",
            "--repo",
            &repo,
            "--identity",
            &id,
            snap,
            "--target",
            s(&target),
        ],
    );
    restore.assert_refused("restore", why);
    let (check, report) = check_json(env, &["--identity", &id]);
    assert_eq!(check.code, Some(3), "check: {}", check.describe());
    assert!(messages(&report).contains(why), "check: {report:#}");
    check.assert_bounded("check");
    let sums = watched(
        env,
        &[
            "checksums",
            "--repo",
            &repo,
            "--identity",
            &id,
            snap,
            "--format",
            "b3",
        ],
    );
    sums.assert_refused("checksums", why);
    let node = env.path("node");
    let diff = watched(
        env,
        &["diff", "--repo", &repo, "--identity", &id, snap, s(&node)],
    );
    diff.assert_refused("diff", why);
    let drilled = env.path("drilled");
    let drill = watched(
        env,
        &[
            "drill",
            "--repo",
            &repo,
            "--identity",
            &id,
            snap,
            "--target",
            s(&drilled),
        ],
    );
    drill.assert_refused("drill", why);
}

#[test]
fn a_chain_of_20000_directories_is_refused_not_a_stack_overflow() {
    let (env, _) = setup();
    let f = Forger::open(&env);
    let mut sub = f.tree(&Tree::default());
    let mut trees = Vec::new();
    for _ in 0..20_000 {
        let next = f.tree(&Tree {
            nodes: vec![dir("d", &sub)],
        });
        trees.push(std::mem::replace(&mut sub, next));
    }
    let mut blobs: Vec<_> = trees
        .iter()
        .map(|t| (t.id, BlobKind::Tree, &t.blob))
        .collect();
    blobs.push((sub.id, BlobKind::Tree, &sub.blob));
    f.store(&blobs);
    // The summary is honest: only the depth is hostile.
    let summary = SnapshotSummary {
        dirs: 20_000,
        ..Default::default()
    };
    let snap = f.snapshot(sub.id, sub.merkle, summary);
    every_walk_refuses(&env, &snap, "nest deeper than 1024 levels");
}

#[test]
fn a_dag_of_trees_is_refused_by_the_snapshot_totals() {
    let (env, _) = setup();
    let f = Forger::open(&env);
    // 40 levels, each directory listing the next twice: 2^40 paths from 41 small trees.
    let mut sub = f.tree(&Tree {
        nodes: vec![file("f", 0, Vec::new())],
    });
    let mut trees = Vec::new();
    for _ in 0..40 {
        let next = f.tree(&Tree {
            nodes: vec![dir("a", &sub), dir("b", &sub)],
        });
        trees.push(std::mem::replace(&mut sub, next));
    }
    let mut blobs: Vec<_> = trees
        .iter()
        .map(|t| (t.id, BlobKind::Tree, &t.blob))
        .collect();
    blobs.push((sub.id, BlobKind::Tree, &sub.blob));
    f.store(&blobs);
    // What the distinct trees hold, not what they expand to.
    let summary = SnapshotSummary {
        files: 1,
        dirs: 80,
        ..Default::default()
    };
    let snap = f.snapshot(sub.id, sub.merkle, summary);
    every_walk_refuses(&env, &snap, "authenticated summary records");
}

#[test]
fn zstd_bombs_in_trees_and_chunks_are_refused_in_bounded_memory() {
    let (env, _) = setup();
    let f = Forger::open(&env);
    let (repo, id) = (env.repo(), env.identity());

    // A root tree that inflates to 3 GiB.
    let tree_bomb = bomb_blob(3 << 30, 3 << 30);
    let tree_id = Id::hash(b"tree bomb");
    f.store(&[(tree_id, BlobKind::Tree, &tree_bomb)]);
    let snap = f.snapshot(tree_id, Id::hash(b"any"), SnapshotSummary::default());
    let target = env.path("restored-tree");
    let restore = watched(
        &env,
        &[
            "restore",
            "--repo",
            &repo,
            "--identity",
            &id,
            &snap,
            "--target",
            s(&target),
        ],
    );
    restore.assert_refused("restore of a tree bomb", "more than a tree blob may hold");
    let (check, report) = check_json(&env, &["--identity", &id]);
    check.assert_refused("check of a tree bomb", "more than a tree blob may hold");
    assert!(messages(&report).contains("tree"), "{report:#}");

    // Three files of one chunk each that inflates to 1 GiB, in a well-formed tree.
    let chunk_bomb = bomb_blob(1 << 30, 1 << 30);
    let chunks: Vec<Id> = (0..3u8).map(|i| Id::hash(&[i])).collect();
    let files = f.tree(&Tree {
        nodes: chunks
            .iter()
            .enumerate()
            .map(|(i, c)| file(&format!("part{i}"), 1 << 30, vec![*c]))
            .collect(),
    });
    let root = f.tree(&Tree {
        nodes: vec![dir("node", &files)],
    });
    let mut blobs: Vec<_> = chunks
        .iter()
        .map(|c| (*c, BlobKind::Data, &chunk_bomb))
        .collect();
    blobs.push((files.id, BlobKind::Tree, &files.blob));
    blobs.push((root.id, BlobKind::Tree, &root.blob));
    f.store(&blobs);
    let summary = SnapshotSummary {
        files: 3,
        dirs: 1,
        bytes: 3 << 30,
        ..Default::default()
    };
    let snap = f.snapshot(root.id, root.merkle, summary);
    let target = env.path("restored-data");
    let restore = watched(
        &env,
        &[
            "restore",
            "--repo",
            &repo,
            "--identity",
            &id,
            &snap,
            "--target",
            s(&target),
        ],
    );
    restore.assert_refused("restore of chunk bombs", "more than a chunk may hold");
    for i in 0..3 {
        assert!(
            !target.join(format!("node/part{i}")).exists(),
            "damaged file left behind"
        );
    }
    let (check, _) = check_json(&env, &["--identity", &id, "--read-data"]);
    check.assert_refused(
        "check --read-data of chunk bombs",
        "more than a data blob may hold",
    );
}

#[test]
fn copies_planted_by_a_storage_host_fall_back_to_the_genuine_ones() {
    let (env, src) = setup();
    let (repo, id) = (env.repo(), env.identity());
    // The storage host holds no key: it reads the public recipients from the config and the
    // plaintext index, plants a pack of bombs under every blob id it lists, and replaces the
    // index with one that lists its pack first.
    let backend = vtool_transfer::url::open(&repo).expect("backend");
    let host = Repository::open(backend).expect("open");
    let recipients = parse_recipients(&host.config().recipients).expect("recipients");
    let mut genuine: Vec<IndexedPack> = Vec::new();
    let index_dir = env.path("repo/index");
    for e in fs::read_dir(&index_dir).expect("readdir") {
        let path = e.expect("entry").path();
        let data = fs::read(&path).expect("read");
        let name = format!(
            "index/{}",
            path.file_name().and_then(|n| n.to_str()).expect("name")
        );
        genuine.extend(decode_index(&name, &data).expect("index").packs);
        fs::remove_file(&path).expect("rm");
    }
    let listed: Vec<PackedBlob> = genuine.iter().flat_map(|p| p.blobs.clone()).collect();
    assert!(listed.len() >= 4, "{listed:?}");
    // Same claimed lengths, 3 GiB of zeros each; one data chunk also claims a false length.
    let liar = listed
        .iter()
        .position(|b| b.kind == BlobKind::Data)
        .expect("a data blob");
    let bombs: Vec<EncodedBlob> = listed
        .iter()
        .enumerate()
        .map(|(i, b)| {
            bomb_blob(
                3 << 30,
                if i == liar {
                    b.raw_length + 1
                } else {
                    b.raw_length
                },
            )
        })
        .collect();
    let planted: Vec<_> = listed
        .iter()
        .zip(&bombs)
        .map(|(b, bomb)| (b.id, b.kind, bomb))
        .collect();
    let planted = pack_of(&recipients, &host, &planted);
    let mut packs = vec![planted];
    packs.extend(genuine);
    host.save_index(&IndexFile {
        version: 1,
        packs,
        rebuilt: None,
    })
    .expect("index");

    let target = env.path("restored");
    let restore = watched(
        &env,
        &[
            "restore",
            "--repo",
            &repo,
            "--identity",
            &id,
            "latest",
            "--target",
            s(&target),
        ],
    );
    assert_eq!(restore.code, Some(0), "{}", restore.describe());
    restore.assert_bounded("restore");
    for rel in ["chain/big.bin", "chain/small.log", "keystore.json"] {
        assert_eq!(
            fs::read(target.join("node").join(rel)).expect("restored"),
            fs::read(src.join(rel)).expect("source"),
            "{rel}"
        );
    }

    // Check names what was planted, and that it damages nothing.
    let (check, report) = check_json(&env, &["--identity", &id]);
    check.assert_bounded("check --identity");
    assert_eq!(check.code, Some(3), "{}", check.describe());
    let problems = report["problems"].as_array().expect("problems");
    assert!(
        problems.iter().all(|p| p["kind"] == "index"),
        "only the entry with a false length shows without reading data: {report:#}"
    );
    assert_eq!(problems.len(), 1, "{report:#}");
    let (check, report) = check_json(&env, &["--identity", &id, "--read-data"]);
    check.assert_bounded("check --read-data");
    assert_eq!(check.code, Some(3), "{}", check.describe());
    let problems = report["problems"].as_array().expect("problems");
    let blob_problems: Vec<_> = problems.iter().filter(|p| p["kind"] == "blob").collect();
    assert_eq!(blob_problems.len(), listed.len(), "{report:#}");
    for p in problems {
        assert_eq!(
            p["damaged"],
            Value::Array(Vec::new()),
            "nothing is lost: {report:#}"
        );
    }
    for p in blob_problems {
        assert!(
            p["message"]
                .as_str()
                .is_some_and(|m| m.contains("restores use it")),
            "{p:#}"
        );
    }
}

#[test]
fn a_non_root_user_restores_mode_000_entries() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let env = Env::with_repo();
    let src = env.path("node");
    fs::create_dir_all(src.join("locked/inner")).expect("mkdir");
    fs::create_dir_all(src.join("readonly")).expect("mkdir");
    fs::write(src.join("locked/inner/data"), "deep").expect("write");
    fs::write(src.join("readonly/file"), "ro").expect("write");
    fs::write(src.join("secret"), "no one may read this").expect("write");
    let mode = |p: &str, m: u32| {
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(m)).expect("chmod");
    };
    mode("secret", 0o000);
    mode("locked/inner", 0o000);
    mode("locked", 0o000);
    mode("readonly", 0o500);
    let as_root = fs::metadata("/proc/self").expect("stat").uid() == 0;
    if !as_root {
        // An ordinary user cannot back up what it cannot read: open up for the backup only.
        for (p, m) in [
            ("locked", 0o700),
            ("locked/inner", 0o700),
            ("secret", 0o600),
        ] {
            mode(p, m);
        }
    }
    env.backup(&[s(&src)]);

    let target = env.path("restored");
    let (repo, id) = (env.repo(), env.identity());
    let args = [
        "restore",
        "--repo",
        &repo,
        "--identity",
        &id,
        "latest",
        "--target",
        s(&target),
    ];
    let out = if as_root {
        // CI runs as root: restore as nobody, who owns the scratch area (keys stay 0600).
        let chown = std::process::Command::new("chown")
            .args(["-R", "65534:65534", s(env.dir.path())])
            .status()
            .expect("chown");
        assert!(chown.success());
        let mut wrapped = vec!["--reuid=65534", "--regid=65534", "--clear-groups", VTOOL];
        wrapped.extend_from_slice(&args);
        env.command("setpriv", &wrapped)
            .env("HOME", env.dir.path())
            .output()
            .expect("setpriv")
    } else {
        env.run(&args)
    };
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out));

    let restored = target.join("node");
    for (p, m) in [
        ("secret", 0o000),
        ("locked", 0o000),
        ("locked/inner", 0o000),
        ("readonly", 0o500),
    ] {
        let want = if as_root {
            m
        } else {
            fs::metadata(src.join(p)).expect("stat").mode() & 0o7777
        };
        let got = fs::symlink_metadata(restored.join(p)).expect("stat");
        assert_eq!(got.mode() & 0o7777, want, "{p}");
        let orig = fs::symlink_metadata(src.join(p)).expect("stat");
        assert_eq!(got.mtime(), orig.mtime(), "{p} mtime");
    }
    if as_root {
        // Root reads through the modes: the contents are there.
        assert_eq!(
            fs::read(restored.join("secret")).expect("read"),
            b"no one may read this"
        );
        assert_eq!(
            fs::read(restored.join("locked/inner/data")).expect("read"),
            b"deep"
        );
        assert_eq!(
            fs::read(restored.join("readonly/file")).expect("read"),
            b"ro"
        );
    }
}
