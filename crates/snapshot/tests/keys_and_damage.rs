//! What the keys allow, and how damaged, hostile or failing storage is handled.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use support::TestRepo;
use vtool_snapshot::age::x25519::Identity;
use vtool_snapshot::keys::{load_identity, save_identity};
use vtool_snapshot::pack::{self, PackWriter};
use vtool_snapshot::reader::BlobReader;
use vtool_snapshot::repofile::{
    BlobKind, IndexFile, IndexedPack, Node, NodeKind, Snapshot, SnapshotSummary, Tree,
    FORMAT_VERSION,
};
use vtool_snapshot::{
    backup, blob, merkle, restore, tree, BackupOptions, Error, FileType, Id, NoProgress,
    Repository, RestoreOptions,
};
use vtool_testkit::node::make_validator_dir;
use vtool_testkit::tree::{assert_same_tree, copy_tree, diff_listings, listing, Kind};
use vtool_testkit::{reframe, Rng};
use vtool_transfer::{Backend, BackendError, Hooked, LocalBackend};

fn restore_opts(target: &Path) -> RestoreOptions {
    RestoreOptions {
        target: target.to_path_buf(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

#[test]
fn backup_key_alone_cannot_restore() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("keystore.json"), "secret material").expect("write");
    t.backup(&[&src], false);

    // The backup key file is refused where the identity is expected, with a clear reason.
    let key_file = work.path().join("backup.key");
    t.backup_key.save(&key_file).expect("save backup key");
    let text = fs::read_to_string(&key_file).expect("read key file");
    assert!(
        !text.contains("AGE-SECRET-KEY-"),
        "the backup key must not hold a secret identity"
    );
    match load_identity(&key_file) {
        Err(Error::KeyFile { path, reason }) => {
            assert_eq!(path, key_file);
            assert!(reason.contains("backup key"), "{reason}");
        }
        other => panic!("backup key accepted as identity: {:?}", other.map(|_| ())),
    }

    // The identity file round-trips (positive control).
    let id_file = work.path().join("identity.txt");
    save_identity(&t.identity, &id_file).expect("save identity");
    let loaded = load_identity(&id_file).expect("load identity");
    assert_eq!(
        loaded.to_public().to_string(),
        t.identity.to_public().to_string()
    );
    assert!(t.repo.unlock(loaded).is_ok());

    // Another identity cannot unlock the repository.
    match t.repo.unlock(Identity::generate()) {
        Err(Error::WrongKey(msg)) => assert!(msg.contains("cannot decrypt"), "{msg}"),
        Err(e) => panic!("expected WrongKey, got {e}"),
        Ok(_) => panic!("a foreign identity unlocked the repository"),
    }

    // Whatever identity a backup-key holder has, packs stay closed to it; the real
    // identity opens them.
    let packs = t.packs();
    assert!(!packs.is_empty());
    for (name, _) in &packs {
        let data = t.local().get(name).expect("get pack");
        let id = FileType::Pack.id_of(name).expect("pack name");
        let blobs = pack::read_trailer(&data).expect("a format 3 trailer is plaintext");
        assert!(!blobs.is_empty());
        for b in &blobs {
            let sealed = pack::blob_slice(&data, b).expect("blob inside its pack");
            match pack::unseal_blob(&Identity::generate(), sealed, b, &id) {
                Err(Error::WrongKey(_)) => {}
                Err(e) => panic!("expected WrongKey, got {e}"),
                Ok(_) => panic!("a foreign identity decrypted a blob of {name}"),
            }
            pack::unseal_blob(&t.identity, sealed, b, &id).expect("the identity decrypts blobs");
        }
    }
}

#[test]
fn backup_key_of_another_repository_is_refused_and_nothing_is_written() {
    let t = TestRepo::new();
    let other = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("f"), Rng::new(3).bytes(200_000)).expect("write");
    t.backup(&[&src], false);

    let before = listing(&t.path());
    let opts = BackupOptions {
        paths: vec![src.clone()],
        cache_base: Some(t.cache()),
        ..Default::default()
    };
    match backup(&t.repo, &other.backup_key, &opts, &NoProgress) {
        Err(Error::WrongKey(msg)) => assert!(msg.contains("belongs to repository"), "{msg}"),
        other => panic!("expected WrongKey, got {:?}", other.map(|r| r.snapshot_id)),
    }
    let diffs = diff_listings(&before, &listing(&t.path()));
    assert!(
        diffs.is_empty(),
        "repository changed:\n{}",
        diffs.join("\n")
    );
    assert_eq!(t.repo.snapshots().expect("snapshots").objects.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Damage
// ---------------------------------------------------------------------------------------

/// Relative path (below the restore target) of every file of a snapshot → packs holding its
/// chunks.
fn file_packs(t: &TestRepo, snap: &Snapshot) -> BTreeMap<String, BTreeSet<Id>> {
    let key = t.repo.unlock(t.identity.clone()).expect("unlock");
    let index = t.repo.load_index(None).expect("index");
    let reader = BlobReader::new(&t.repo, &key, &index);
    let mut out = BTreeMap::new();
    let mut stack = vec![(
        String::new(),
        reader
            .tree(&snap.tree, &snap.fingerprint)
            .expect("root tree"),
    )];
    while let Some((rel, tree)) = stack.pop() {
        for node in tree.nodes {
            let path = if rel.is_empty() {
                node.name.clone()
            } else {
                format!("{rel}/{}", node.name)
            };
            match node.kind {
                NodeKind::Dir => {
                    let sub = reader
                        .tree(
                            &node.subtree.expect("subtree"),
                            &node.merkle.expect("merkle"),
                        )
                        .expect("tree");
                    stack.push((path, sub));
                }
                NodeKind::File => {
                    let packs = node
                        .chunks
                        .iter()
                        .map(|c| index.locate(c, BlobKind::Data).expect("locate").pack)
                        .collect();
                    out.insert(path, packs);
                }
                NodeKind::Symlink => {}
            }
        }
    }
    out
}

/// Back up a validator directory, damage its largest pack with `damage`, restore, and check
/// that exactly the files with a chunk in that pack are reported and absent, and everything
/// else is identical.
/// `whole_pack_lost`: every file with data in the pack is damaged. Otherwise (a flipped
/// byte) restore reads the pack up to the damaged 64 KiB chunk, so files whose blobs come
/// before it survive: the damaged files are a non-empty subset of the pack's files.
fn damaged_pack_is_reported(whole_pack_lost: bool, damage: impl FnOnce(&Path)) {
    // Small packs, so the damage hits some files and spares others.
    let t = TestRepo::with_pack_size(1 << 20);
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    make_validator_dir(&src);
    let r = t.backup(&[&src], false);

    let (largest, size) = t.packs()[0].clone();
    assert!(size > 1 << 20, "largest pack is only {size} bytes");
    let pack_id = Id::from_hex(largest.rsplit('/').next().expect("name")).expect("pack id");
    let expected: BTreeSet<String> = file_packs(&t, &r.snapshot)
        .into_iter()
        .filter(|(_, packs)| packs.contains(&pack_id))
        .map(|(p, _)| p)
        .collect();
    assert!(!expected.is_empty());
    let data_files = file_packs(&t, &r.snapshot)
        .values()
        .filter(|p| !p.is_empty())
        .count();
    assert!(
        expected.len() < data_files,
        "every file is in the damaged pack; the test would not show that the others survive"
    );

    damage(&t.path().join(&largest));

    let out = work.path().join("out");
    let report = t.restore("latest", &out).expect("restore runs to the end");
    let damaged: BTreeSet<String> = report
        .damaged
        .iter()
        .map(|d| {
            Path::new(&d.path)
                .strip_prefix(&out)
                .unwrap_or_else(|_| panic!("damaged path {} is not under the target", d.path))
                .display()
                .to_string()
        })
        .collect();
    if whole_pack_lost {
        assert_eq!(damaged, expected, "{:#?}", report.damaged);
    } else {
        assert!(
            !damaged.is_empty() && damaged.is_subset(&expected),
            "damaged {damaged:#?} is not a non-empty subset of the pack's files {expected:#?}"
        );
    }
    for d in &report.damaged {
        assert!(
            d.message.contains(&pack_id.short()),
            "message should name the pack: {}",
            d.message
        );
        assert!(
            fs::symlink_metadata(&d.path).is_err(),
            "damaged file {} was left in the target",
            d.path
        );
    }
    let total_files = listing(&src)
        .values()
        .filter(|e| matches!(e.kind, Kind::File(_)))
        .count() as u64;
    assert_eq!(report.files, total_files - damaged.len() as u64);

    // Everything else is exactly as backed up.
    let mut want = listing(&src);
    for p in &damaged {
        want.remove(p.strip_prefix("node/").expect("below node/"));
    }
    let diffs = diff_listings(&want, &listing(&out.join("node")));
    assert!(
        diffs.is_empty(),
        "intact files differ:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn flipped_byte_in_a_pack_is_detected_and_not_restored() {
    damaged_pack_is_reported(false, |path| {
        let mut data = fs::read(path).expect("read pack");
        let mid = data.len() / 2;
        data[mid] ^= 0x01;
        fs::write(path, data).expect("write pack");
    });
}

#[test]
fn missing_pack_is_detected_and_not_restored() {
    damaged_pack_is_reported(true, |path| fs::remove_file(path).expect("delete pack"));
}

#[test]
fn altered_snapshot_fails_authentication() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("f"), "data").expect("write");
    let r = t.backup(&[&src], false);

    let name = format!("snapshots/{}", r.snapshot_id);
    let mut json: serde_json::Value =
        serde_json::from_slice(&t.local().get(&name).expect("get")).expect("snapshot json");
    json["body"]["hostname"] = serde_json::Value::String("attacker".into());
    let forged = reframe(&json);
    let forged_id = Id::hash(&forged);
    t.local()
        .put(&format!("snapshots/{forged_id}"), &forged)
        .expect("put forged snapshot");

    // It lists (listing needs no key) ...
    let (id, snap) = t
        .repo
        .find_snapshot(&forged_id.to_hex(), None)
        .expect("find forged");
    assert_eq!(id, forged_id);
    assert_eq!(snap.hostname, "attacker");
    // ... but does not restore.
    let out = work.path().join("out");
    match t.restore(&forged_id.to_hex(), &out) {
        Err(Error::Corrupt(msg)) => assert!(msg.contains("authentication"), "{msg}"),
        other => panic!("forged snapshot restored: {:?}", other.map(|r| r.files)),
    }
    assert!(
        !out.exists(),
        "nothing may be written for a forged snapshot"
    );
    // The original still restores.
    t.restore(&r.snapshot_id.to_hex(), &work.path().join("ok"))
        .expect("original restores");
}

// ---------------------------------------------------------------------------------------
// Hostile repositories
// ---------------------------------------------------------------------------------------

fn file_node(name: &str, data: &[u8], chunk: Id) -> Node {
    Node {
        name: name.into(),
        kind: NodeKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        size: data.len() as u64,
        content: Some(Id::hash(data)),
        chunks: vec![chunk],
        subtree: None,
        merkle: None,
        target: None,
    }
}

#[test]
fn tree_decoder_refuses_traversal_names() {
    for name in ["..", "../../etc/x", "/etc/passwd", "a/b", ".", ""] {
        let tree = Tree {
            nodes: vec![file_node(name, b"x", Id([1; 32]))],
        };
        let data = tree::encode_tree(&tree).expect("encode");
        match tree::decode_tree(&data) {
            Err(Error::UnsafeName(n)) => assert_eq!(n, name),
            other => panic!("{name:?}: expected UnsafeName, got {other:?}"),
        }
    }
    // Duplicates are refused too (they would restore one over the other).
    let tree = Tree {
        nodes: vec![
            file_node("a", b"x", Id([1; 32])),
            file_node("a", b"x", Id([1; 32])),
        ],
    };
    assert!(matches!(
        tree::decode_tree(&tree::encode_tree(&tree).expect("encode")),
        Err(Error::Corrupt(_))
    ));
}

/// A backup-key holder (or anyone with the chunk key) writes a snapshot whose root tree
/// holds `name`; restoring it must refuse the name and write nothing outside the target.
#[test]
fn crafted_snapshot_with_traversal_name_is_refused_on_restore() {
    for name in ["../escape", "..", "a/../../escape"] {
        let t = TestRepo::new();
        let work = tempfile::tempdir().expect("tempdir");
        let key = &t.backup_key;
        let data = b"pwned\n".to_vec();
        let chunk = key.chunk_key.blob_id(&data);
        let tree = Tree {
            nodes: vec![file_node(name, &data, chunk)],
        };
        let tree_bytes = tree::encode_tree(&tree).expect("encode");
        let tree_id = key.chunk_key.blob_id(&tree_bytes);
        let mut w =
            PackWriter::new(t.repo.pack_layout(), &key.recipients, 1 << 16).expect("pack writer");
        w.add(chunk, BlobKind::Data, &blob::encode(data.clone(), 3))
            .expect("add");
        w.add(tree_id, BlobKind::Tree, &blob::encode(tree_bytes, 3))
            .expect("add");
        let pack = w.finish().expect("finish");
        t.repo
            .backend()
            .put(&FileType::Pack.name(&pack.id), &pack.bytes)
            .expect("put pack");
        t.repo
            .save_index(&IndexFile {
                version: FORMAT_VERSION,
                packs: vec![IndexedPack {
                    id: pack.id,
                    size: pack.bytes.len() as u64,
                    blobs: pack.blobs,
                }],
                rebuilt: None,
            })
            .expect("index");
        let snap = Snapshot {
            version: FORMAT_VERSION,
            time: vtool_snapshot::time::OffsetDateTime::now_utc(),
            hostname: "evil".into(),
            username: "evil".into(),
            paths: vec!["/x".into()],
            tags: vec![],
            tree: tree_id,
            fingerprint: merkle::tree_hash(&tree).expect("merkle"),
            summary: SnapshotSummary::default(),
            labels: Default::default(),
            refs: None,
            holds: Vec::new(),
        };
        let (id, _) = t
            .repo
            .save_snapshot(&snap, &key.chunk_key)
            .expect("save snapshot");

        let target = work.path().join("t/inner");
        match t.restore(&id.to_hex(), &target) {
            Err(Error::UnsafeName(n)) => assert_eq!(n, name),
            other => panic!(
                "{name:?}: expected UnsafeName, got {:?}",
                other.map(|r| r.files)
            ),
        }
        assert!(
            !work.path().join("t/escape").exists(),
            "{name:?} escaped the target"
        );
        assert!(
            !work.path().join("escape").exists(),
            "{name:?} escaped the target"
        );
        let inside: Vec<_> = fs::read_dir(&target)
            .map(|r| r.map(|e| e.expect("dirent").path()).collect())
            .unwrap_or_default();
        assert!(inside.is_empty(), "{name:?}: restore wrote {inside:?}");
    }
}

#[test]
fn restore_into_non_empty_target_is_refused() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("f"), "new").expect("write");
    t.backup(&[&src], false);

    let target = work.path().join("target");
    fs::create_dir_all(target.join("node")).expect("mkdir");
    fs::write(target.join("node/f"), "precious").expect("write");
    match t.restore("latest", &target) {
        Err(Error::TargetNotEmpty(p)) => assert_eq!(p, target),
        other => panic!("expected TargetNotEmpty, got {:?}", other.map(|r| r.files)),
    }
    assert_eq!(fs::read(target.join("node/f")).expect("read"), b"precious");

    // An empty existing directory is fine.
    let empty = work.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    t.restore("latest", &empty).expect("restore into empty dir");
    assert_eq!(fs::read(empty.join("node/f")).expect("read"), b"new");
}

#[test]
fn hostile_config_is_refused_on_open() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 4] = [
        ("pack_size", |c| c["pack_size"] = (1u64 << 40).into()),
        ("chunker max", |c| {
            c["chunker"]["max_size"] = (1u64 << 31).into()
        }),
        ("chunker min 0", |c| c["chunker"]["min_size"] = 0.into()),
        ("version", |c| c["version"] = 99.into()),
    ];
    for (what, edit) in cases {
        let t = TestRepo::new();
        let path = t.path().join("config");
        let mut config: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).expect("read config")).expect("json");
        // Checked on open, before any key authenticates the config.
        edit(&mut config["body"]);
        fs::write(&path, reframe(&config)).expect("write");
        match Repository::open(Box::new(t.local())) {
            Err(Error::Corrupt(msg)) if what != "version" => {
                assert!(msg.contains("absurd"), "{what}: {msg}")
            }
            Err(Error::UnsupportedVersion(99)) if what == "version" => {}
            Err(e) => panic!("{what}: unexpected error {e}"),
            Ok(_) => panic!("{what}: hostile config accepted"),
        }
    }
    // And an untouched one opens.
    let t = TestRepo::new();
    let repo = Repository::open(Box::new(t.local())).expect("open");
    assert_eq!(repo.config().id, t.repo.config().id);
}

#[test]
fn not_a_repository_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    match Repository::open(Box::new(LocalBackend::open(dir.path()).expect("dir"))) {
        Err(e @ Error::NotARepository(_)) => assert!(e.to_string().contains("vtool init")),
        other => panic!(
            "expected NotARepository, got {:?}",
            other.map(|r| r.config().id)
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Failing storage
// ---------------------------------------------------------------------------------------

/// A local backend that runs out of space: puts fail with `NoSpace` once `budget` bytes
/// were written, and puts of objects under `refuse` always fail.
fn full_disk(
    inner: LocalBackend,
    budget: u64,
    refuse: Option<&'static str>,
) -> Hooked<Box<LocalBackend>> {
    let budget = AtomicU64::new(budget);
    Hooked::new(Box::new(inner)).before_put(move |name, data| {
        if refuse.is_some_and(|p| name.starts_with(p)) {
            return Err(BackendError::NoSpace(name.into()));
        }
        let len = data.len() as u64;
        budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(len)
            })
            .map(|_| ())
            .map_err(|_| BackendError::NoSpace(name.into()))
    })
}

#[test]
fn full_disk_fails_cleanly_and_the_repository_stays_usable() {
    let t = TestRepo::new();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("node");
    make_validator_dir(&src);
    let first = t.backup(&[&src], true);
    let state_a = work.path().join("a");
    copy_tree(&src, &state_a);

    // New data for the failing backups to store.
    fs::write(
        src.join("beacon/chaindata/000010.ldb"),
        Rng::new(99).bytes(3 << 20),
    )
    .expect("write");
    fs::write(src.join("validator/new.json"), "{}").expect("write");

    let cases: [(&str, u64, Option<&'static str>); 4] = [
        ("nothing fits", 0, None),
        ("space runs out within the data", 1 << 20, None),
        ("index cannot be written", u64::MAX, Some("index/")),
        ("snapshot cannot be written", u64::MAX, Some("snapshots/")),
    ];
    for (what, budget, refuse) in cases {
        let full = Repository::open(Box::new(full_disk(t.local(), budget, refuse)))
            .expect("open through the full disk");
        let opts = BackupOptions {
            paths: vec![src.clone()],
            cache_base: Some(t.cache()),
            ..Default::default()
        };
        match backup(&full, &t.backup_key, &opts, &NoProgress) {
            Err(e @ Error::Backend(BackendError::NoSpace(_))) => {
                assert!(e.to_string().contains("no space left"), "{what}: {e}")
            }
            Err(e) => panic!("{what}: expected NoSpace, got {e}"),
            Ok(r) => panic!("{what}: backup succeeded ({})", r.snapshot_id),
        }
        // No snapshot was written; the repository opens and the earlier snapshot restores.
        let repo = t.reopen();
        let snaps = repo.snapshots().expect("snapshots").objects;
        assert_eq!(snaps.len(), 1, "{what}: a snapshot was written");
        assert_eq!(snaps[0].0, first.snapshot_id);
        let key = repo.unlock(t.identity.clone()).expect("unlock");
        let out = work.path().join(format!("out-{}", what.replace(' ', "-")));
        let rep = restore(&repo, &key, &snaps[0].1, &restore_opts(&out), &NoProgress)
            .unwrap_or_else(|e| panic!("{what}: restore failed: {e}"));
        assert!(rep.damaged.is_empty(), "{what}: {:?}", rep.damaged);
        assert_same_tree(&state_a, &out.join("node"));
    }

    // With space again, the backup succeeds and restores exactly.
    let ok = t.backup(&[&src], true);
    assert_eq!(t.repo.snapshots().expect("snapshots").objects.len(), 2);
    let out = work.path().join("out-final");
    let rep = t.restore(&ok.snapshot_id.to_hex(), &out).expect("restore");
    assert!(rep.damaged.is_empty(), "{:?}", rep.damaged);
    assert_same_tree(&src, &out.join("node"));
}
