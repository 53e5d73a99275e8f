//! Checking a repository's integrity (`vtool check`).
//!
//! Three levels, each a superset of the work of the one before:
//!
//! * **structure** (always): `config` parses; every key, index and snapshot object is named
//!   by the BLAKE3 of its bytes; every index decodes; every pack an index lists exists with
//!   the indexed size. Packs that no index lists are *unreferenced*: an interrupted backup
//!   leaves them, so they are reported as a note, not a problem. With the restore identity
//!   it also authenticates every snapshot, loads every tree reachable from it (each checked
//!   against the Merkle hash recorded above it) and makes sure every data blob a file needs
//!   is indexed and its pack exists.
//! * **packs** ([`CheckOptions::packs`], no key needed): re-hash the stored bytes of every
//!   pack and compare with its name; catches bit rot and tampering on a host that cannot
//!   decrypt anything.
//! * **read data** ([`CheckOptions::read_data`], needs the identity): decrypt every indexed
//!   pack and check every blob against its keyed id, and the index against the pack's
//!   trailer. A damaged pack is read again blob by blob (age authenticates 64 KiB chunks),
//!   so only the blobs that are really lost are reported.
//!
//! [`Subset`] limits the two expensive levels to a slice of the packs: `n/t` checks the packs
//! whose first id byte modulo `t` is `n - 1`; `PCT%` checks a different slice of
//! `ceil(100 / PCT)` each run, so daily runs cover the whole repository in that many days.
//! Which slice ran last is kept in the repository as small JSON objects `check/<blake3>`
//! (one new object per run, never overwritten; the newest by `time` wins):
//!
//! ```json
//! {"kind": "vtool-check-state", "version": 1, "time": "2026-01-02T03:04:05.6Z",
//!  "mode": "read-data", "slices": 10, "slice": 3, "packs_checked": 42, "problems": 0,
//!  "previous": "check/<blake3 of the previous state>"}
//! ```
//!
//! `mode` is `packs` or `read-data` (each has its own rotation), `slice` is 1-based. The
//! state only schedules work: it is not authenticated, and a tampered state can at worst
//! make a run repeat a slice.
//!
//! Every [`Problem`] names the object, the pack and blob where known, and, when the identity
//! is given, every snapshot and path the damage reaches (found by walking the trees once
//! more, only when there is something to attribute).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::str::FromStr;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vtool_snapshot::age::x25519::Identity;
use vtool_snapshot::index::{decode_index, MasterIndex};
use vtool_snapshot::keys::RestoreKey;
use vtool_snapshot::pack::{blob_slice, pack_name, parse_pack_name, read_trailer};
use vtool_snapshot::reader::BlobReader;
use vtool_snapshot::repofile::{BlobKind, IndexFile, Node, NodeKind, PackedBlob, Snapshot};
use vtool_snapshot::{blob, crypto, Id, Repository};
use vtool_transfer::{Backend, BackendError, ObjectInfo};

/// Why a check could not run (as opposed to the [`Problem`]s it found).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read the repository")]
    Backend(#[source] BackendError),
    #[error("cannot open the repository")]
    Open(#[source] vtool_snapshot::Error),
    #[error("cannot unlock the repository with this identity")]
    Unlock(#[source] vtool_snapshot::Error),
    #[error("--read-data decrypts packs and needs the restore identity (--identity)")]
    NeedIdentity,
    #[error("invalid subset {spec:?}: {reason}")]
    Subset { spec: String, reason: String },
    #[error("a check thread failed: {0}")]
    Internal(String),
}

impl From<BackendError> for CheckError {
    fn from(e: BackendError) -> Self {
        CheckError::Backend(e)
    }
}

/// A slice of the packs for the expensive levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// Packs whose first id byte modulo `t` is `n - 1` (`1 <= n <= t <= 256`).
    Slice { n: u32, t: u32 },
    /// A rotating slice of `ceil(100 / pct)`, remembered in `check/` objects.
    Percent(f64),
}

impl Subset {
    /// Number of slices the packs are cut into.
    pub fn slices(&self) -> u32 {
        match *self {
            Subset::Slice { t, .. } => t,
            Subset::Percent(p) => (100.0 / p).ceil() as u32,
        }
    }
}

impl FromStr for Subset {
    type Err = CheckError;

    fn from_str(spec: &str) -> Result<Self, CheckError> {
        let bad = |reason: &str| CheckError::Subset {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if let Some(p) = spec.trim().strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| bad("expected a percentage such as 10%"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad("the percentage must be above 0 and at most 100"));
            }
            if (100.0 / p).ceil() > 256.0 {
                return Err(bad("at most 256 slices: use at least 0.4%"));
            }
            return Ok(Subset::Percent(p));
        }
        let (n, t) = spec
            .split_once('/')
            .ok_or_else(|| bad("expected PCT% (e.g. 10%) or n/t (e.g. 3/7)"))?;
        let n: u32 = n.trim().parse().map_err(|_| bad("n is not a number"))?;
        let t: u32 = t.trim().parse().map_err(|_| bad("t is not a number"))?;
        if t == 0 || t > 256 || n == 0 || n > t {
            return Err(bad("need 1 <= n <= t <= 256"));
        }
        Ok(Subset::Slice { n, t })
    }
}

impl fmt::Display for Subset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subset::Slice { n, t } => write!(f, "{n}/{t}"),
            Subset::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What to check beyond the structure.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Re-hash every pack's stored bytes (no key needed).
    pub packs: bool,
    /// Decrypt every pack and check every blob (needs the identity).
    pub read_data: bool,
    /// Only a slice of the packs for `packs` and `read_data`.
    pub subset: Option<Subset>,
}

/// Receives progress of the pack-reading levels.
pub trait CheckProgress: Sync {
    fn start(&self, _what: &str, _bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
}

/// Progress sink that ignores everything.
pub struct NoCheckProgress;
impl CheckProgress for NoCheckProgress {}

/// What kind of damage a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// `config` is missing, malformed or absurd.
    Config,
    /// A key object is damaged, or there is none.
    Key,
    /// An index object is damaged (name does not match its hash, does not decode, …).
    Index,
    /// A snapshot object is damaged (name does not match its hash, malformed).
    Snapshot,
    /// A snapshot fails authentication with the chunk key (altered or forged).
    SnapshotAuth,
    /// A pack listed in an index does not exist.
    PackMissing,
    /// A pack's stored size differs from the index (truncated or grown).
    PackSize,
    /// A pack's stored bytes do not hash to its name.
    PackHash,
    /// A pack cannot be decrypted at all.
    PackUnreadable,
    /// The index and the pack's own trailer disagree.
    PackTrailer,
    /// A blob is damaged: it does not decrypt, decode or match its id.
    Blob,
    /// A file needs a blob that no index lists.
    BlobMissing,
    /// A tree cannot be loaded or fails its Merkle check.
    Tree,
    /// A file's chunks do not add up to its size.
    File,
    /// A `check/` state object does not match its content hash. It only schedules
    /// `--subset` runs, but its damage is damage of the storage like any other.
    CheckState,
}

/// A snapshot and a path inside it that a problem damages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DamagedPath {
    /// Short snapshot id (8 hex digits).
    pub snapshot: String,
    /// Path inside the snapshot (`/` for the root tree; directories end in `/`).
    pub path: String,
}

/// One thing wrong with the repository.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The damaged object, e.g. `packs/ab/ab12…`, `index/…`, `snapshots/…`, `config`.
    pub object: String,
    /// Full pack id, when the problem is in or about a pack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    /// Full blob id, when one blob is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    pub message: String,
    /// Snapshots and paths this damages (needs the identity to find out).
    pub damaged: Vec<DamagedPath>,
}

/// A pack no index lists (left by an interrupted backup; harmless).
#[derive(Debug, Clone, Serialize)]
pub struct Unreferenced {
    pub object: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckCounts {
    pub keys: u64,
    pub indexes: u64,
    pub snapshots: u64,
    /// Snapshots whose authentication was checked and passed (identity only).
    pub snapshots_authenticated: u64,
    pub packs_indexed: u64,
    pub packs_present: u64,
    pub packs_unreferenced: u64,
    /// Packs whose stored bytes were re-hashed (`packs` or `read_data`).
    pub packs_hashed: u64,
    /// Packs decrypted (`read_data`).
    pub packs_read: u64,
    pub bytes_read: u64,
    pub blobs_checked: u64,
    pub trees_checked: u64,
    pub files_checked: u64,
    pub problems: u64,
}

/// Which slice a subset run checked.
#[derive(Debug, Clone, Serialize)]
pub struct SubsetRun {
    /// 1-based slice number.
    pub slice: u32,
    pub slices: u32,
    /// The state object written for this run (rotating percentages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_object: Option<String>,
    /// The state object the slice was chosen from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// True when no problem was found.
    pub ok: bool,
    /// `structure`, `packs` or `read-data`.
    pub level: String,
    /// Whether the identity was used (snapshots authenticated, trees walked).
    pub with_identity: bool,
    pub counts: CheckCounts,
    pub problems: Vec<Problem>,
    pub unreferenced: Vec<Unreferenced>,
    pub notes: Vec<String>,
    /// Temporary files of unfinished writes (a note, never a problem: the next backup or
    /// copy removes the stale ones). `None` when they could not be listed.
    pub temp_files: Option<vtool_transfer::TempSurvey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetRun>,
    /// Packs re-hashed or read by this run.
    #[serde(skip)]
    pub checked_packs: Vec<Id>,
}

/// Check the repository at `backend`. Problems found are in the report; `Err` means the
/// check itself could not run (unreadable backend, wrong identity, bad options).
pub fn check(
    backend: Box<dyn Backend>,
    identity: Option<Identity>,
    opts: &CheckOptions,
    progress: &dyn CheckProgress,
) -> Result<CheckReport, CheckError> {
    if opts.read_data && identity.is_none() {
        return Err(CheckError::NeedIdentity);
    }
    let backend: Arc<dyn Backend> = Arc::from(backend);
    let mut c = Checker {
        backend: backend.clone(),
        report: CheckReport {
            level: if opts.read_data {
                "read-data"
            } else if opts.packs {
                "packs"
            } else {
                "structure"
            }
            .into(),
            with_identity: identity.is_some(),
            ..Default::default()
        },
        indexed: HashMap::new(),
        present: HashMap::new(),
        master: MasterIndex::default(),
        snapshots: Vec::new(),
        blob_problems: HashMap::new(),
        tree_problems: HashMap::new(),
        read_packs: HashSet::new(),
    };

    let repo = match Repository::open(Box::new(Shared(backend.clone()))) {
        Ok(r) => Some(r),
        Err(vtool_snapshot::Error::NotARepository(loc)) => {
            return Err(CheckError::Open(vtool_snapshot::Error::NotARepository(loc)))
        }
        Err(vtool_snapshot::Error::Backend(e)) => return Err(CheckError::Backend(e)),
        Err(e) => {
            c.problem(ProblemKind::Config, "config", None, None, e.to_string());
            None
        }
    };
    c.check_keys()?;
    c.check_indexes()?;
    c.check_snapshots()?;
    c.check_states()?;
    c.check_pack_structure()?;
    match vtool_transfer::survey_temp(backend.as_ref()) {
        Ok(t) => c.report.temp_files = Some(t),
        Err(e) => c
            .report
            .notes
            .push(format!("could not list temporary files: {e}")),
    }

    let key = match (&repo, identity) {
        (Some(repo), Some(identity)) => Some(repo.unlock(identity).map_err(CheckError::Unlock)?),
        (None, Some(_)) => {
            c.report
                .notes
                .push("the config is damaged, so nothing was checked with the identity".into());
            None
        }
        _ => None,
    };
    let authenticated = match (&repo, &key) {
        (Some(repo), Some(key)) => c.check_trees(repo, key),
        _ => Vec::new(),
    };

    if opts.packs || opts.read_data {
        let slice = c.choose_slice(opts)?;
        let read_key = if opts.read_data { key.as_ref() } else { None };
        c.check_pack_data(slice, read_key, progress)?;
        if let (Some(Subset::Percent(_)), Some((n, t))) = (opts.subset, slice) {
            let previous = c.report.subset.as_ref().and_then(|s| s.previous.clone());
            let state = CheckState {
                kind: STATE_KIND.into(),
                version: 1,
                time: vtool_snapshot::now_rfc3339(),
                mode: c.report.level.clone(),
                slices: t,
                slice: n,
                packs_checked: c.report.checked_packs.len() as u64,
                problems: c.report.problems.len() as u64,
                previous,
            };
            match save_state(backend.as_ref(), &state) {
                Ok(name) => {
                    if let Some(s) = c.report.subset.as_mut() {
                        s.state_object = Some(name);
                    }
                }
                Err(e) => c.report.notes.push(format!(
                    "could not record which slice was checked ({e}); the next run checks slice {n}/{t} again"
                )),
            }
        }
    }

    if let (Some(repo), Some(key)) = (&repo, &key) {
        c.attribute(repo, key, &authenticated);
    }
    Ok(c.finish())
}

const STATE_KIND: &str = "vtool-check-state";

/// One `check/<blake3>` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckState {
    kind: String,
    version: u32,
    time: String,
    mode: String,
    slices: u32,
    slice: u32,
    packs_checked: u64,
    problems: u64,
    previous: Option<String>,
}

fn save_state(backend: &dyn Backend, state: &CheckState) -> Result<String, String> {
    let data = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    let name = format!("check/{}", Id::hash(&data));
    match backend.put(&name, &data) {
        Ok(()) | Err(BackendError::AlreadyExists(_)) => Ok(name),
        Err(e) => Err(e.to_string()),
    }
}

/// The newest state object of `mode`, if any.
fn newest_state(
    backend: &dyn Backend,
    mode: &str,
) -> Result<Option<(String, CheckState)>, CheckError> {
    let objects = backend.list("check")?;
    let states = objects
        .par_iter()
        .filter(|o| o.size < 64 * 1024)
        .map(|o| -> Result<Option<(String, CheckState)>, CheckError> {
            let data = match backend.get(&o.name) {
                Ok(d) => d,
                Err(BackendError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if o.name != format!("check/{}", Id::hash(&data)) {
                return Ok(None);
            }
            Ok(serde_json::from_slice::<CheckState>(&data)
                .ok()
                .filter(|s| s.kind == STATE_KIND && s.mode == mode)
                .map(|s| (o.name.clone(), s)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(states
        .into_iter()
        .flatten()
        .max_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0))))
}

/// Forwards to a shared backend, so `Repository::open` can own a handle while the check
/// keeps using the backend when the config is damaged.
struct Shared(Arc<dyn Backend>);

impl Backend for Shared {
    fn location(&self) -> String {
        self.0.location()
    }
    fn put(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.0.put(name, data)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        self.0.get(name)
    }
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        self.0.get_range(name, offset, len)
    }
    fn stat(&self, name: &str) -> Result<Option<u64>, BackendError> {
        self.0.stat(name)
    }
    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.0.list(dir)
    }
    fn delete(&self, name: &str) -> Result<(), BackendError> {
        self.0.delete(name)
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), BackendError> {
        self.0.rename(from, to)
    }
    fn list_temp(&self) -> Result<Vec<vtool_transfer::TempFile>, BackendError> {
        self.0.list_temp()
    }
    fn remove_temp(&self, name: &str) -> Result<(), BackendError> {
        self.0.remove_temp(name)
    }
}

/// A pack as the indexes describe it.
struct IndexedInfo {
    size: u64,
    index: String,
    blobs: Vec<PackedBlob>,
}

struct Checker {
    backend: Arc<dyn Backend>,
    report: CheckReport,
    /// Packs listed by the good indexes.
    indexed: HashMap<Id, IndexedInfo>,
    /// Packs present, with their stored sizes.
    present: HashMap<Id, u64>,
    master: MasterIndex,
    /// Snapshots whose objects are intact.
    snapshots: Vec<(Id, Snapshot)>,
    /// Problem per blob id (missing or damaged blobs), so each blob is reported once.
    blob_problems: HashMap<Id, usize>,
    /// Problem per tree id that failed to load.
    tree_problems: HashMap<Id, usize>,
    /// Packs decrypted by this run (their blob problems are exact).
    read_packs: HashSet<Id>,
}

/// Read an object, `None` when it vanished since it was listed.
fn get_opt(backend: &dyn Backend, name: &str) -> Result<Option<Vec<u8>>, CheckError> {
    match backend.get(name) {
        Ok(d) => Ok(Some(d)),
        Err(BackendError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

impl Checker {
    fn problem(
        &mut self,
        kind: ProblemKind,
        object: impl Into<String>,
        pack: Option<Id>,
        blob: Option<Id>,
        message: String,
    ) -> usize {
        self.report.problems.push(Problem {
            kind,
            object: object.into(),
            pack: pack.map(|p| p.to_hex()),
            blob: blob.map(|b| b.to_hex()),
            message,
            damaged: Vec::new(),
        });
        self.report.problems.len() - 1
    }

    /// Fetch every object of `dir` in parallel, checking its name is its BLAKE3.
    /// Returns (name, bytes, name matches) for the objects still present.
    #[allow(clippy::type_complexity)]
    fn fetch_named(&self, dir: &str) -> Result<Vec<(String, Vec<u8>, bool)>, CheckError> {
        let mut objects = self.backend.list(dir)?;
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        let backend = self.backend.as_ref();
        let fetched = objects
            .par_iter()
            .map(|o| -> Result<_, CheckError> {
                Ok(get_opt(backend, &o.name)?.map(|d| {
                    let ok = o.name == format!("{dir}/{}", Id::hash(&d));
                    (o.name.clone(), d, ok)
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(fetched.into_iter().flatten().collect())
    }

    fn check_keys(&mut self) -> Result<(), CheckError> {
        let keys = self.fetch_named("keys")?;
        self.report.counts.keys = keys.len() as u64;
        if keys.is_empty() {
            self.problem(
                ProblemKind::Key,
                "keys",
                None,
                None,
                "the repository has no key object: nothing can be restored from it".into(),
            );
        }
        for (name, _, ok) in keys {
            if !ok {
                self.problem(
                    ProblemKind::Key,
                    name,
                    None,
                    None,
                    "key object does not match its content hash (damaged)".into(),
                );
            }
        }
        Ok(())
    }

    /// A damaged state is skipped by `--subset` (the rotation restarts from an older one),
    /// so nothing else would ever notice it.
    fn check_states(&mut self) -> Result<(), CheckError> {
        for (name, _, ok) in self.fetch_named("check")? {
            if !ok {
                self.problem(
                    ProblemKind::CheckState,
                    name,
                    None,
                    None,
                    "check state object does not match its content hash (damaged); it only \
                     records which --subset slice ran last: delete it"
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn check_indexes(&mut self) -> Result<(), CheckError> {
        let indexes = self.fetch_named("index")?;
        self.report.counts.indexes = indexes.len() as u64;
        let decoded: Vec<_> = indexes
            .into_par_iter()
            .map(|(name, data, ok)| {
                let file = decode_index(&name, &data).map_err(|e| e.to_string());
                (name, ok, file)
            })
            .collect();
        for (name, ok, file) in decoded {
            let file: IndexFile = match (ok, file) {
                (false, _) => {
                    self.problem(
                        ProblemKind::Index,
                        name,
                        None,
                        None,
                        "index object does not match its content hash (damaged or planted); \
                         backup and restore refuse to load the index while it is there"
                            .into(),
                    );
                    continue;
                }
                (true, Err(e)) => {
                    self.problem(ProblemKind::Index, name, None, None, e);
                    continue;
                }
                (true, Ok(f)) => f,
            };
            for pack in &file.packs {
                match self.indexed.get(&pack.id) {
                    Some(prev) if prev.size != pack.size => {
                        let message = format!(
                            "{} lists it with {} bytes, {} with {}",
                            prev.index, prev.size, name, pack.size
                        );
                        self.problem(
                            ProblemKind::Index,
                            name.clone(),
                            Some(pack.id),
                            None,
                            message,
                        );
                    }
                    Some(_) => {}
                    None => {
                        self.indexed.insert(
                            pack.id,
                            IndexedInfo {
                                size: pack.size,
                                index: name.clone(),
                                blobs: pack.blobs.clone(),
                            },
                        );
                    }
                }
            }
            self.master.add_file(&file);
        }
        self.report.counts.packs_indexed = self.indexed.len() as u64;
        Ok(())
    }

    fn check_snapshots(&mut self) -> Result<(), CheckError> {
        let snaps = self.fetch_named("snapshots")?;
        self.report.counts.snapshots = snaps.len() as u64;
        for (name, data, ok) in snaps {
            if !ok {
                self.problem(
                    ProblemKind::Snapshot,
                    name,
                    None,
                    None,
                    "snapshot object does not match its content hash (damaged)".into(),
                );
                continue;
            }
            match serde_json::from_slice::<Snapshot>(&data) {
                Ok(s) => self.snapshots.push((Id::hash(&data), s)),
                Err(e) => {
                    self.problem(
                        ProblemKind::Snapshot,
                        name,
                        None,
                        None,
                        format!("snapshot object is malformed: {e}"),
                    );
                }
            }
        }
        self.snapshots
            .sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        // The root tree's id is in the plaintext snapshot: its index entry can be checked
        // without a key (this catches a lost index even without the identity).
        let roots: Vec<(Id, Id)> = self.snapshots.iter().map(|(id, s)| (*id, s.tree)).collect();
        for (snap, tree) in roots {
            let message = match self.master.get(&tree) {
                Some(loc) if loc.blob.kind == BlobKind::Tree => continue,
                Some(_) => "the snapshot's root tree is indexed as a data blob",
                None => "the snapshot's root tree is in no index (lost index or pack)",
            };
            let damaged = DamagedPath {
                snapshot: snap.short(),
                path: "/".into(),
            };
            let p = match self.tree_problems.get(&tree) {
                Some(&p) => p,
                None => {
                    let p = self.problem(
                        ProblemKind::Tree,
                        format!("snapshots/{snap}"),
                        None,
                        Some(tree),
                        message.into(),
                    );
                    self.tree_problems.insert(tree, p);
                    p
                }
            };
            self.report.problems[p].damaged.push(damaged);
        }
        Ok(())
    }

    fn check_pack_structure(&mut self) -> Result<(), CheckError> {
        for obj in self.backend.list("packs")? {
            match parse_pack_name(&obj.name) {
                Some(id) => {
                    self.present.insert(id, obj.size);
                }
                None => self
                    .report
                    .notes
                    .push(format!("{} is not a pack name; vtool ignores it", obj.name)),
            }
        }
        self.report.counts.packs_present = self.present.len() as u64;
        let mut found = Vec::new();
        for (id, info) in &self.indexed {
            match self.present.get(id) {
                None => found.push((
                    ProblemKind::PackMissing,
                    *id,
                    format!("listed in {} but missing", info.index),
                )),
                Some(&size) if size != info.size => found.push((
                    ProblemKind::PackSize,
                    *id,
                    format!(
                        "{} bytes, {} lists {} ({})",
                        size,
                        info.index,
                        info.size,
                        if size < info.size {
                            "truncated"
                        } else {
                            "grown"
                        }
                    ),
                )),
                Some(_) => {}
            }
        }
        found.sort_by_key(|f| f.1);
        for (kind, id, message) in found {
            self.problem(kind, pack_name(&id), Some(id), None, message);
        }
        let mut unreferenced: Vec<_> = self
            .present
            .iter()
            .filter(|(id, _)| !self.indexed.contains_key(id))
            .map(|(id, &size)| Unreferenced {
                object: pack_name(id),
                size,
            })
            .collect();
        unreferenced.sort_by(|a, b| a.object.cmp(&b.object));
        self.report.counts.packs_unreferenced = unreferenced.len() as u64;
        self.report.unreferenced = unreferenced;
        Ok(())
    }

    /// Authenticate every snapshot and walk its trees; returns the authenticated ones.
    fn check_trees(&mut self, repo: &Repository, key: &RestoreKey) -> Vec<(Id, Snapshot)> {
        let snapshots = std::mem::take(&mut self.snapshots);
        let mut authenticated = Vec::new();
        let master = std::mem::take(&mut self.master);
        {
            let reader = BlobReader::new(repo, key, &master);
            let mut visited = HashSet::new();
            for (id, snap) in &snapshots {
                if let Err(e) = repo.verify_snapshot(snap, &key.chunk_key) {
                    self.problem(
                        ProblemKind::SnapshotAuth,
                        format!("snapshots/{id}"),
                        None,
                        None,
                        e.to_string(),
                    );
                    continue;
                }
                self.report.counts.snapshots_authenticated += 1;
                authenticated.push((*id, snap.clone()));
                let short = id.short();
                self.walk_tree(
                    &reader,
                    &master,
                    &short,
                    &snap.tree,
                    &snap.fingerprint,
                    "",
                    &mut visited,
                );
            }
        }
        self.master = master;
        self.snapshots = snapshots;
        authenticated
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_tree(
        &mut self,
        reader: &BlobReader,
        master: &MasterIndex,
        snap: &str,
        tree_id: &Id,
        merkle: &Id,
        rel: &str,
        visited: &mut HashSet<Id>,
    ) {
        if !visited.insert(*tree_id) {
            return;
        }
        let tree = match reader.tree(tree_id, merkle) {
            Ok(t) => t,
            Err(e) => {
                visited.remove(tree_id);
                let damaged = DamagedPath {
                    snapshot: snap.to_string(),
                    path: if rel.is_empty() {
                        "/".into()
                    } else {
                        format!("{rel}/")
                    },
                };
                let p = match self.tree_problems.get(tree_id) {
                    Some(&p) => p,
                    None => {
                        let pack = master.get(tree_id).map(|l| l.pack);
                        let object = pack
                            .map(|p| pack_name(&p))
                            .unwrap_or_else(|| "index".into());
                        let p = self.problem(
                            ProblemKind::Tree,
                            object,
                            pack,
                            Some(*tree_id),
                            format!("tree cannot be loaded: {e}"),
                        );
                        self.tree_problems.insert(*tree_id, p);
                        p
                    }
                };
                self.report.problems[p].damaged.push(damaged);
                return;
            }
        };
        self.report.counts.trees_checked += 1;
        for node in &tree.nodes {
            let path = join(rel, &node.name);
            match node.kind {
                NodeKind::Dir => {
                    if let (Some(sub), Some(m)) = (node.subtree, node.merkle) {
                        self.walk_tree(reader, master, snap, &sub, &m, &path, visited);
                    }
                }
                NodeKind::File => self.check_file(master, node),
                NodeKind::Symlink => {}
            }
        }
    }

    fn check_file(&mut self, master: &MasterIndex, node: &Node) {
        self.report.counts.files_checked += 1;
        let mut total = 0u64;
        let mut complete = true;
        for c in &node.chunks {
            match master.get(c) {
                Some(loc) if loc.blob.kind == BlobKind::Data => {
                    total += u64::from(loc.blob.raw_length);
                }
                Some(loc) => {
                    complete = false;
                    if !self.blob_problems.contains_key(c) {
                        let p = self.problem(
                            ProblemKind::Blob,
                            pack_name(&loc.pack),
                            Some(loc.pack),
                            Some(*c),
                            "a file needs this blob as data, the index lists it as a tree".into(),
                        );
                        self.blob_problems.insert(*c, p);
                    }
                }
                None => {
                    complete = false;
                    if !self.blob_problems.contains_key(c) {
                        let p = self.problem(
                            ProblemKind::BlobMissing,
                            "index",
                            None,
                            Some(*c),
                            "a file needs this blob but no index lists it (lost index or pack)"
                                .into(),
                        );
                        self.blob_problems.insert(*c, p);
                    }
                }
            }
        }
        if complete && total != node.size {
            self.problem(
                ProblemKind::File,
                "snapshots",
                None,
                None,
                format!(
                    "file {:?}: chunks add up to {total} bytes, the tree says {}",
                    node.name, node.size
                ),
            );
        }
    }

    /// Pick the slice of packs to re-hash or read, reading the rotation state if needed.
    fn choose_slice(&mut self, opts: &CheckOptions) -> Result<Option<(u32, u32)>, CheckError> {
        let Some(subset) = opts.subset else {
            return Ok(None);
        };
        let t = subset.slices();
        let (n, previous) = match subset {
            Subset::Slice { n, .. } => (n, None),
            Subset::Percent(_) => match newest_state(self.backend.as_ref(), &self.report.level)? {
                Some((name, s)) if s.slices == t && s.slice >= 1 && s.slice <= t => {
                    (s.slice % t + 1, Some(name))
                }
                Some((name, _)) => (1, Some(name)),
                None => (1, None),
            },
        };
        self.report.subset = Some(SubsetRun {
            slice: n,
            slices: t,
            state_object: None,
            previous,
        });
        Ok(Some((n, t)))
    }

    /// Re-hash (and with a key, decrypt and check) the packs of the chosen slice.
    fn check_pack_data(
        &mut self,
        slice: Option<(u32, u32)>,
        key: Option<&RestoreKey>,
        progress: &dyn CheckProgress,
    ) -> Result<(), CheckError> {
        let in_slice = |id: &Id| slice.is_none_or(|(n, t)| u32::from(id.0[0]) % t == n - 1);
        let mut selected: Vec<(Id, u64)> = self
            .present
            .iter()
            .filter(|(id, _)| in_slice(id))
            .map(|(id, &size)| (*id, size))
            .collect();
        selected.sort();
        let bytes: u64 = selected.iter().map(|(_, s)| s).sum();
        progress.start(
            if key.is_some() {
                "reading packs"
            } else {
                "hashing packs"
            },
            bytes,
        );
        let backend = self.backend.as_ref();
        let indexed = &self.indexed;
        let pool = vtool_snapshot::reader::pack_fetch_pool()
            .map_err(|e| CheckError::Internal(e.to_string()))?;
        let results = pool.install(|| selected
            .par_iter()
            .map(|(id, _)| -> Result<PackOutcome, CheckError> {
                let name = pack_name(id);
                let Some(stored) = get_opt(backend, &name)? else {
                    return Ok(PackOutcome::default());
                };
                let mut out = PackOutcome {
                    bytes: stored.len() as u64,
                    hashed: true,
                    ..Default::default()
                };
                let actual = Id::from(blake3::Hasher::new().update_rayon(&stored).finalize());
                if actual != *id {
                    out.found.push(Found {
                        kind: ProblemKind::PackHash,
                        blob: None,
                        message: format!(
                            "stored bytes hash to {}, not to the pack's name (bit rot or tampering)",
                            actual.short()
                        ),
                    });
                }
                if let (Some(key), Some(info)) = (key, indexed.get(id)) {
                    read_pack(key, id, &stored, &info.blobs, &mut out);
                }
                progress.advance(stored.len() as u64);
                Ok(out)
            })
            .collect::<Result<Vec<_>, _>>())?;
        for ((id, _), out) in selected.iter().zip(results) {
            if out.hashed {
                self.report.counts.packs_hashed += 1;
                self.report.checked_packs.push(*id);
            }
            if out.read {
                self.report.counts.packs_read += 1;
                self.read_packs.insert(*id);
            }
            self.report.counts.bytes_read += out.bytes;
            self.report.counts.blobs_checked += out.blobs_checked;
            for f in out.found {
                let p = self.problem(f.kind, pack_name(id), Some(*id), f.blob, f.message);
                if let Some(b) = f.blob {
                    self.blob_problems.entry(b).or_insert(p);
                }
            }
        }
        Ok(())
    }

    /// Name the snapshots and paths each blob or pack problem damages.
    fn attribute(&mut self, repo: &Repository, key: &RestoreKey, snapshots: &[(Id, Snapshot)]) {
        let mut by_blob: HashMap<Id, Vec<usize>> = HashMap::new();
        let mut by_pack: HashMap<Id, Vec<usize>> = HashMap::new();
        for (i, p) in self.report.problems.iter().enumerate() {
            let id = |s: &Option<String>| s.as_deref().and_then(Id::from_hex);
            let precise = |p: &Problem| id(&p.pack).is_some_and(|pk| self.read_packs.contains(&pk));
            match p.kind {
                // Tree problems already carry the directories they cut off; a trailer
                // disagreement loses no data.
                ProblemKind::Tree | ProblemKind::PackTrailer => continue,
                // The pack was decrypted: its blob problems say exactly what is lost.
                ProblemKind::PackHash if precise(p) => continue,
                _ => {}
            }
            match (id(&p.blob), id(&p.pack)) {
                (Some(b), _) => by_blob.entry(b).or_default().push(i),
                (None, Some(pk)) => by_pack.entry(pk).or_default().push(i),
                _ => {}
            }
        }
        if by_blob.is_empty() && by_pack.is_empty() {
            return;
        }
        let mut found: HashMap<usize, BTreeSet<DamagedPath>> = HashMap::new();
        {
            let reader = BlobReader::new(repo, key, &self.master);
            let mut a = Attribution {
                reader: &reader,
                by_blob: &by_blob,
                by_pack: &by_pack,
                clean: HashSet::new(),
                found: &mut found,
            };
            for (id, snap) in snapshots {
                a.walk(&id.short(), &snap.tree, &snap.fingerprint, "");
            }
        }
        for (i, paths) in found {
            let d = &mut self.report.problems[i].damaged;
            d.extend(paths);
            d.sort();
            d.dedup();
        }
    }

    fn finish(mut self) -> CheckReport {
        let r = &mut self.report;
        r.problems
            .sort_by(|a, b| (a.kind, &a.object, &a.blob).cmp(&(b.kind, &b.object, &b.blob)));
        for p in &mut r.problems {
            p.damaged.sort();
            p.damaged.dedup();
        }
        r.checked_packs.sort();
        r.counts.problems = r.problems.len() as u64;
        r.ok = r.problems.is_empty();
        self.report
    }
}

struct Found {
    kind: ProblemKind,
    blob: Option<Id>,
    message: String,
}

#[derive(Default)]
struct PackOutcome {
    bytes: u64,
    hashed: bool,
    read: bool,
    blobs_checked: u64,
    found: Vec<Found>,
}

/// Decode a blob's stored bytes and check them against its keyed id.
fn check_blob(key: &RestoreKey, stored: &[u8], b: &PackedBlob) -> Result<(), String> {
    let raw = blob::decode(stored, b.raw_length, b.compressed).map_err(|e| e.to_string())?;
    if key.chunk_key.blob_id(&raw) != b.id {
        return Err("its content does not match its id".into());
    }
    Ok(())
}

type PackStream<'a> = vtool_snapshot::age::stream::StreamReader<Cursor<&'a [u8]>>;

/// Decrypt one pack and check every indexed blob; a pack that does not decrypt whole is
/// read blob by blob so that only the blobs really lost are reported.
fn read_pack(
    key: &RestoreKey,
    id: &Id,
    stored: &[u8],
    blobs: &[PackedBlob],
    out: &mut PackOutcome,
) {
    let what = format!("pack {}", id.short());
    let plain = match crypto::decrypt(&key.identity, stored, &what) {
        Ok(p) => p,
        Err(vtool_snapshot::Error::WrongKey(e)) => {
            out.found.push(Found {
                kind: ProblemKind::PackUnreadable,
                blob: None,
                message: e,
            });
            return;
        }
        Err(_) => {
            read_pack_damaged(key, stored, &what, blobs, out);
            return;
        }
    };
    out.read = true;
    match read_trailer(&plain) {
        Ok(trailer) => {
            let in_trailer: HashSet<(Id, u64, u32)> =
                trailer.iter().map(|b| (b.id, b.offset, b.length)).collect();
            for b in blobs {
                if !in_trailer.contains(&(b.id, b.offset, b.length)) {
                    out.found.push(Found {
                        kind: ProblemKind::PackTrailer,
                        blob: Some(b.id),
                        message: "the index places this blob where the pack's trailer does not"
                            .into(),
                    });
                }
            }
        }
        Err(e) => out.found.push(Found {
            kind: ProblemKind::PackTrailer,
            blob: None,
            message: e.to_string(),
        }),
    }
    for b in blobs {
        out.blobs_checked += 1;
        let result = blob_slice(&plain, b)
            .map_err(|e| e.to_string())
            .and_then(|s| check_blob(key, s, b));
        if let Err(message) = result {
            out.found.push(Found {
                kind: ProblemKind::Blob,
                blob: Some(b.id),
                message,
            });
        }
    }
}

fn read_pack_damaged(
    key: &RestoreKey,
    stored: &[u8],
    what: &str,
    blobs: &[PackedBlob],
    out: &mut PackOutcome,
) {
    let mut sorted: Vec<&PackedBlob> = blobs.iter().collect();
    sorted.sort_by_key(|b| b.offset);
    let mut reader: Option<PackStream> = None;
    for b in sorted {
        out.blobs_checked += 1;
        if reader.is_none() {
            match crypto::stream_reader(&key.identity, Cursor::new(stored), what) {
                Ok(r) => reader = Some(r),
                Err(e) => {
                    out.found.push(Found {
                        kind: ProblemKind::PackUnreadable,
                        blob: None,
                        message: format!("the pack does not decrypt: {e}"),
                    });
                    return;
                }
            }
        }
        out.read = true;
        let Some(r) = reader.as_mut() else {
            return;
        };
        // The plaintext is shorter than the stored bytes: refuse hostile lengths before
        // allocating.
        let fits = b
            .offset
            .checked_add(u64::from(b.length))
            .is_some_and(|end| end <= stored.len() as u64);
        let data = if fits {
            let mut buf = vec![0u8; b.length as usize];
            r.seek(SeekFrom::Start(b.offset))
                .and_then(|_| r.read_exact(&mut buf))
                .map(|_| buf)
                .map_err(|e| format!("encrypted data is damaged ({e})"))
        } else {
            Err("the index places it outside the pack".into())
        };
        let result = data.and_then(|d| check_blob(key, &d, b));
        if let Err(message) = result {
            // A failed age reader cannot be reused: start a fresh one for the next blob.
            reader = None;
            out.found.push(Found {
                kind: ProblemKind::Blob,
                blob: Some(b.id),
                message,
            });
        }
    }
}

/// Finds the snapshots and paths reached by damaged blobs and packs.
struct Attribution<'a, 'r> {
    reader: &'a BlobReader<'r>,
    by_blob: &'a HashMap<Id, Vec<usize>>,
    by_pack: &'a HashMap<Id, Vec<usize>>,
    /// Trees with nothing damaged below them.
    clean: HashSet<Id>,
    found: &'a mut HashMap<usize, BTreeSet<DamagedPath>>,
}

impl Attribution<'_, '_> {
    fn hit(&mut self, blob: &Id, snap: &str, path: String) -> bool {
        let mut problems: Vec<usize> = self.by_blob.get(blob).cloned().unwrap_or_default();
        if let Some(loc) = self.reader.index.get(blob) {
            problems.extend(self.by_pack.get(&loc.pack).into_iter().flatten());
        }
        for &p in &problems {
            self.found.entry(p).or_default().insert(DamagedPath {
                snapshot: snap.to_string(),
                path: path.clone(),
            });
        }
        !problems.is_empty()
    }

    /// Returns whether anything at or below this tree is damaged.
    fn walk(&mut self, snap: &str, tree_id: &Id, merkle: &Id, rel: &str) -> bool {
        if self.clean.contains(tree_id) {
            return false;
        }
        let dir_path = if rel.is_empty() {
            "/".to_string()
        } else {
            format!("{rel}/")
        };
        if self.hit(tree_id, snap, dir_path) {
            return true;
        }
        let Ok(tree) = self.reader.tree(tree_id, merkle) else {
            // Reported as a tree problem by the structure walk.
            return true;
        };
        let mut damaged = false;
        for node in &tree.nodes {
            let path = join(rel, &node.name);
            match node.kind {
                NodeKind::Dir => {
                    if let (Some(sub), Some(m)) = (node.subtree, node.merkle) {
                        damaged |= self.walk(snap, &sub, &m, &path);
                    }
                }
                NodeKind::File => {
                    let mut hit = false;
                    for c in &node.chunks {
                        hit |= self.hit(c, snap, path.clone());
                    }
                    damaged |= hit;
                }
                NodeKind::Symlink => {}
            }
        }
        if !damaged {
            self.clean.insert(*tree_id);
        }
        damaged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subsets() {
        assert_eq!(
            "3/7".parse::<Subset>().ok(),
            Some(Subset::Slice { n: 3, t: 7 })
        );
        assert_eq!("10%".parse::<Subset>().ok(), Some(Subset::Percent(10.0)));
        assert_eq!(Subset::Percent(30.0).slices(), 4);
        for bad in ["0/3", "4/3", "1/0", "1/257", "0%", "101%", "x", "0.1%", "%"] {
            assert!(bad.parse::<Subset>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn pack_names() {
        let id = Id::hash(b"x");
        assert_eq!(parse_pack_name(&pack_name(&id)), Some(id));
        let hex = id.to_hex();
        assert_eq!(parse_pack_name(&format!("packs/zz/{hex}")), None);
        assert_eq!(parse_pack_name("packs/ab/short"), None);
    }
}
