//! `vtool_verify::check` on a real repository, healthy and damaged at every level.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use vtool_snapshot::age::x25519::Identity;
use vtool_snapshot::repofile::BlobKind;
use vtool_snapshot::{backup, BackupOptions, FileType, Id, NoProgress, Repository};
use vtool_testkit::Rng;
use vtool_transfer::{Backend, LocalBackend};
use vtool_verify::{check, CheckOptions, CheckReport, ProblemKind, Subset};

struct Fixture {
    dir: tempfile::TempDir,
    identity: Identity,
    /// Packs written by the first backup (their data is in both snapshots).
    first_packs: BTreeSet<Id>,
}

impl Fixture {
    /// A repository holding two snapshots of a small node directory.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = Identity::generate();
        let backend = LocalBackend::create(dir.path().join("repo")).expect("backend");
        let new = Repository::init(Box::new(backend), vec![identity.to_public()]).expect("init");
        let node = dir.path().join("node");
        fs::create_dir_all(node.join("chaindata")).expect("mkdir");
        fs::create_dir_all(node.join("keys")).expect("mkdir");
        fs::write(
            node.join("chaindata/000001.ldb"),
            Rng::new(1).bytes(3 << 20),
        )
        .expect("write");
        fs::write(
            node.join("chaindata/000002.ldb"),
            Rng::new(2).bytes(2 << 20),
        )
        .expect("write");
        fs::write(node.join("keys/keystore-0.json"), b"{\"crypto\":{}}\n").expect("write");
        fs::write(node.join("config.toml"), b"network = \"mainnet\"\n").expect("write");
        let opts = BackupOptions {
            paths: vec![node.clone()],
            ..Default::default()
        };
        backup(&new.repo, &new.backup_key, &opts, &NoProgress).expect("backup 1");
        let first_packs = new
            .repo
            .load_index(None)
            .expect("index")
            .packs()
            .keys()
            .copied()
            .collect();
        fs::write(
            node.join("chaindata/000003.ldb"),
            Rng::new(3).bytes(2 << 20),
        )
        .expect("write");
        backup(&new.repo, &new.backup_key, &opts, &NoProgress).expect("backup 2");
        Fixture {
            dir,
            identity,
            first_packs,
        }
    }

    fn repo_path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn backend(&self) -> Box<dyn Backend> {
        Box::new(LocalBackend::open(self.repo_path()).expect("open"))
    }

    fn repo(&self) -> Repository {
        Repository::open(self.backend()).expect("open repository")
    }

    fn run(&self, identity: bool, opts: CheckOptions) -> CheckReport {
        let id = identity.then(|| self.identity.clone());
        check(self.backend(), id, &opts, &NoProgress).expect("check runs")
    }

    fn structure(&self, identity: bool) -> CheckReport {
        self.run(identity, CheckOptions::default())
    }

    fn packs(&self) -> CheckReport {
        self.run(
            false,
            CheckOptions {
                packs: true,
                ..Default::default()
            },
        )
    }

    fn read_data(&self) -> CheckReport {
        self.run(
            true,
            CheckOptions {
                read_data: true,
                ..Default::default()
            },
        )
    }

    /// A data pack of the first backup and its stored path.
    fn data_pack(&self) -> (Id, PathBuf) {
        let repo = self.repo();
        let index = repo.load_index(None).expect("index");
        let mut packs: Vec<Id> = index
            .blobs()
            .filter(|l| l.blob.kind == BlobKind::Data && self.first_packs.contains(&l.pack))
            .map(|l| l.pack)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        packs.sort();
        let id = packs[0];
        (id, self.repo_path().join(FileType::Pack.name(&id)))
    }

    fn index_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.repo_path().join("index"))
            .expect("index dir")
            .map(|e| e.expect("dirent").path())
            .collect();
        v.sort();
        v
    }

    fn snapshot_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.repo_path().join("snapshots"))
            .expect("snapshots dir")
            .map(|e| e.expect("dirent").path())
            .collect();
        v.sort();
        v
    }
}

fn kinds(r: &CheckReport) -> Vec<ProblemKind> {
    r.problems.iter().map(|p| p.kind).collect()
}

fn assert_healthy(r: &CheckReport) {
    assert!(r.ok, "problems: {:#?}", r.problems);
    assert!(r.problems.is_empty());
    assert_eq!(r.counts.problems, 0);
}

#[test]
fn healthy_repository_passes_every_level() {
    let f = Fixture::new();
    let s = f.structure(false);
    assert_healthy(&s);
    assert_eq!(s.counts.snapshots, 2);
    assert!(s.counts.indexes >= 2);
    assert_eq!(s.counts.packs_indexed, s.counts.packs_present);
    assert!(s.unreferenced.is_empty());

    let s = f.structure(true);
    assert_healthy(&s);
    assert_eq!(s.counts.snapshots_authenticated, 2);
    assert!(s.counts.files_checked >= 4, "{:?}", s.counts);
    assert!(s.counts.trees_checked >= 3, "{:?}", s.counts);

    let p = f.packs();
    assert_healthy(&p);
    assert_eq!(p.counts.packs_hashed, p.counts.packs_present);

    let r = f.read_data();
    assert_healthy(&r);
    assert_eq!(r.counts.packs_read, r.counts.packs_indexed);
    assert!(r.counts.blobs_checked >= 8, "{:?}", r.counts);
}

#[test]
fn read_data_needs_the_identity() {
    let f = Fixture::new();
    let opts = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    assert!(check(f.backend(), None, &opts, &NoProgress).is_err());
    // A wrong identity is an error of the check, not a finding about the data.
    let other = Identity::generate();
    assert!(check(
        f.backend(),
        Some(other),
        &CheckOptions::default(),
        &NoProgress
    )
    .is_err());
}

#[test]
fn flipped_byte_in_a_data_pack() {
    let f = Fixture::new();
    let (id, path) = f.data_pack();
    let mut bytes = fs::read(&path).expect("read pack");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    fs::write(&path, &bytes).expect("write pack");

    // Same size: the structure is intact, only reading the bytes tells.
    assert_healthy(&f.structure(false));

    let p = f.packs();
    assert!(!p.ok);
    assert_eq!(kinds(&p), vec![ProblemKind::PackHash], "{:#?}", p.problems);
    assert_eq!(p.problems[0].pack.as_deref(), Some(id.to_hex().as_str()));
    assert_eq!(p.problems[0].object, FileType::Pack.name(&id));

    let r = f.read_data();
    assert!(!r.ok);
    let blob_problems: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Blob)
        .collect();
    // One 64 KiB age chunk is lost: one blob, two if the chunk straddles a boundary.
    assert!((1..=2).contains(&blob_problems.len()), "{:#?}", r.problems);
    let snapshots: BTreeSet<String> = f
        .repo()
        .snapshots()
        .expect("snapshots")
        .objects
        .iter()
        .map(|(id, _)| id.short())
        .collect();
    for p in &blob_problems {
        assert_eq!(p.pack.as_deref(), Some(id.to_hex().as_str()));
        assert!(p.blob.is_some());
        assert!(!p.damaged.is_empty(), "no file named: {p:#?}");
        for d in &p.damaged {
            assert!(
                d.path.starts_with("node/chaindata/0000"),
                "unexpected path {d:?}"
            );
            assert!(snapshots.contains(&d.snapshot), "{d:?}");
        }
    }
    assert!(r.problems.iter().any(|p| p.kind == ProblemKind::PackHash));
}

#[test]
fn truncated_pack_is_a_structure_problem() {
    let f = Fixture::new();
    let (id, path) = f.data_pack();
    let bytes = fs::read(&path).expect("read");
    fs::write(&path, &bytes[..bytes.len() - 1000]).expect("truncate");
    let s = f.structure(false);
    assert!(!s.ok);
    assert_eq!(kinds(&s), vec![ProblemKind::PackSize], "{:#?}", s.problems);
    assert!(s.problems[0].message.contains("truncated"));
    assert_eq!(s.problems[0].pack.as_deref(), Some(id.to_hex().as_str()));
    // With the identity it also names the files that lost data.
    let s = f.structure(true);
    let p = s
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::PackSize)
        .expect("size problem");
    assert!(p
        .damaged
        .iter()
        .any(|d| d.path.starts_with("node/chaindata/")));
}

#[test]
fn deleted_pack_names_the_files() {
    let f = Fixture::new();
    let (id, path) = f.data_pack();
    fs::remove_file(&path).expect("delete");
    let s = f.structure(false);
    assert_eq!(
        kinds(&s),
        vec![ProblemKind::PackMissing],
        "{:#?}",
        s.problems
    );
    assert!(s.problems[0].damaged.is_empty(), "needs the identity");
    assert_eq!(s.problems[0].object, FileType::Pack.name(&id));

    let s = f.structure(true);
    assert!(!s.ok);
    let p = s
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::PackMissing)
        .expect("missing pack");
    assert!(
        p.damaged
            .iter()
            .any(|d| d.path.starts_with("node/chaindata/0000")),
        "{p:#?}"
    );
    // The files of the first backup are in both snapshots.
    let snaps: BTreeSet<&str> = p.damaged.iter().map(|d| d.snapshot.as_str()).collect();
    assert_eq!(snaps.len(), 2, "{p:#?}");
}

#[test]
fn damaged_and_deleted_indexes() {
    let f = Fixture::new();
    // Garbage under its own hash: the name matches, it does not decode.
    let garbage = b"not an index at all".to_vec();
    let name = Id::hash(&garbage).to_hex();
    fs::write(f.repo_path().join("index").join(&name), &garbage).expect("write");
    // Garbage under a name that is not its hash.
    let wrong = Id::hash(b"something else").to_hex();
    fs::write(f.repo_path().join("index").join(&wrong), b"junk").expect("write");
    let s = f.structure(false);
    assert_eq!(
        kinds(&s),
        vec![ProblemKind::Index, ProblemKind::Index],
        "{:#?}",
        s.problems
    );
    let objects: BTreeSet<&str> = s.problems.iter().map(|p| p.object.as_str()).collect();
    assert!(objects.contains(format!("index/{name}").as_str()));
    assert!(objects.contains(format!("index/{wrong}").as_str()));
    fs::remove_file(f.repo_path().join("index").join(&name)).expect("rm");
    fs::remove_file(f.repo_path().join("index").join(&wrong)).expect("rm");
    assert_healthy(&f.structure(false));

    // Delete every index: packs become unreferenced (a note) but the snapshots' root trees
    // are in no index any more, which is found without a key.
    for p in f.index_files() {
        fs::remove_file(p).expect("rm");
    }
    let s = f.structure(false);
    assert!(!s.ok);
    assert!(kinds(&s).contains(&ProblemKind::Tree), "{:#?}", s.problems);
    assert_eq!(s.counts.packs_unreferenced, s.counts.packs_present);
    let s = f.structure(true);
    assert!(!s.ok);
    let snaps: BTreeSet<&str> = s
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Tree)
        .flat_map(|p| p.damaged.iter().map(|d| d.snapshot.as_str()))
        .collect();
    assert_eq!(snaps.len(), 2, "both snapshots: {:#?}", s.problems);
}

#[test]
fn deleted_data_index_found_with_identity() {
    let f = Fixture::new();
    // The second backup's index lists only its new packs; find the one without the root
    // trees of the first snapshot by trying each: deleting any index must be detected with
    // the identity.
    for path in f.index_files() {
        let saved = fs::read(&path).expect("read");
        fs::remove_file(&path).expect("rm");
        let s = f.structure(true);
        assert!(!s.ok, "deleting {} went unnoticed", path.display());
        assert!(
            s.problems.iter().any(|p| matches!(
                p.kind,
                ProblemKind::BlobMissing | ProblemKind::Tree
            ) && !p.damaged.is_empty()),
            "{:#?}",
            s.problems
        );
        fs::write(&path, saved).expect("restore");
    }
    assert_healthy(&f.structure(true));
}

#[test]
fn damaged_and_forged_snapshots() {
    let f = Fixture::new();
    let snaps = f.snapshot_files();
    let path = &snaps[0];
    let original = fs::read(path).expect("read");
    let mut bytes = original.clone();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(path, &bytes).expect("write");
    let s = f.structure(false);
    assert_eq!(kinds(&s), vec![ProblemKind::Snapshot], "{:#?}", s.problems);
    fs::write(path, &original).expect("write");

    // A snapshot altered by someone without the keys and stored under its new hash: only
    // the identity can tell.
    let text = String::from_utf8(original).expect("utf-8");
    let forged = text.replacen("\"hostname\": \"", "\"hostname\": \"evil-", 1);
    assert_ne!(forged, text);
    let name = Id::hash(forged.as_bytes()).to_hex();
    fs::write(f.repo_path().join("snapshots").join(&name), &forged).expect("write");
    assert_healthy(&f.structure(false));
    let s = f.structure(true);
    assert_eq!(
        kinds(&s),
        vec![ProblemKind::SnapshotAuth],
        "{:#?}",
        s.problems
    );
    assert_eq!(s.problems[0].object, format!("snapshots/{name}"));
}

#[test]
fn unreferenced_packs_are_a_note() {
    let f = Fixture::new();
    let data = b"left by a crashed backup".to_vec();
    let id = Id::hash(&data);
    let dest = f.repo_path().join(FileType::Pack.name(&id));
    fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    fs::write(&dest, &data).expect("write");
    let s = f.structure(true);
    assert_healthy(&s);
    assert_eq!(s.unreferenced.len(), 1);
    assert_eq!(s.unreferenced[0].object, FileType::Pack.name(&id));
    assert_healthy(&f.packs());
}

fn subset_run(f: &Fixture, spec: &str) -> CheckReport {
    f.run(
        true,
        CheckOptions {
            read_data: true,
            subset: Some(spec.parse::<Subset>().expect("subset")),
            ..Default::default()
        },
    )
}

fn all_packs(f: &Fixture) -> BTreeSet<Id> {
    f.backend()
        .list("packs")
        .expect("list")
        .iter()
        .filter_map(|o| Id::from_hex(o.name.rsplit('/').next().unwrap_or_default()))
        .collect()
}

#[test]
fn slices_cover_every_pack_once() {
    let f = Fixture::new();
    let all = all_packs(&f);
    assert!(all.len() >= 3, "{all:?}");
    let a = subset_run(&f, "1/2");
    let b = subset_run(&f, "2/2");
    assert_healthy(&a);
    assert_healthy(&b);
    let sa: BTreeSet<Id> = a.checked_packs.iter().copied().collect();
    let sb: BTreeSet<Id> = b.checked_packs.iter().copied().collect();
    assert!(sa.is_disjoint(&sb));
    assert_eq!(sa.union(&sb).copied().collect::<BTreeSet<_>>(), all);
    assert!(sa.iter().all(|id| id.0[0] % 2 == 0));
    // Fixed slices keep no state.
    assert!(f.backend().list("check").expect("list").is_empty());
}

#[test]
fn percentages_rotate_and_keep_state() {
    let f = Fixture::new();
    let all = all_packs(&f);
    let first = subset_run(&f, "50%");
    let second = subset_run(&f, "50%");
    let third = subset_run(&f, "50%");
    let slice = |r: &CheckReport| r.subset.as_ref().map(|s| (s.slice, s.slices));
    assert_eq!(slice(&first), Some((1, 2)));
    assert_eq!(slice(&second), Some((2, 2)));
    assert_eq!(slice(&third), Some((1, 2)));
    let covered: BTreeSet<Id> = first
        .checked_packs
        .iter()
        .chain(&second.checked_packs)
        .copied()
        .collect();
    assert_eq!(covered, all);
    // One new state object per run, each named by its hash, chained to the one before.
    let states = f.backend().list("check").expect("list");
    assert_eq!(states.len(), 3);
    for s in &states {
        let data = f.backend().get(&s.name).expect("get");
        assert_eq!(s.name, format!("check/{}", Id::hash(&data)));
    }
    let second_state = second.subset.as_ref().and_then(|s| s.state_object.clone());
    assert_eq!(
        third.subset.as_ref().and_then(|s| s.previous.clone()),
        second_state
    );
    // The state objects do not disturb the repository.
    assert_healthy(&f.structure(true));
    // --packs rotates on its own.
    let p = f.run(
        false,
        CheckOptions {
            packs: true,
            subset: Some(Subset::Percent(50.0)),
            ..Default::default()
        },
    );
    assert_eq!(slice(&p), Some((1, 2)));
}
