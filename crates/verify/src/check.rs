//! Checking a repository's integrity (`vtool check`).
//!
//! Three levels, each a superset of the work of the one before:
//!
//! * **structure** (always): `config` parses; every key, index, snapshot, drill record and
//!   check state object is named by the BLAKE3 of its bytes; every index decodes; every pack
//!   an index lists exists with the indexed size. Packs that no index lists are
//!   *unreferenced*: an interrupted backup leaves them, so they are reported as a note, not a
//!   problem. With the restore identity it also authenticates the config, every snapshot and
//!   every drill record, loads every tree reachable from a snapshot (each checked
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
use vtool_snapshot::repofile::{
    BlobKind, ChunkerParams, IndexFile, Node, NodeKind, PackedBlob, Snapshot, SnapshotSummary,
};
use vtool_snapshot::sealed::{Sealed, SealedKind};
use vtool_snapshot::tree::{TreeBudget, MAX_DEPTH};
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
    /// A drill record is damaged (name does not match its hash, malformed).
    Drill,
    /// A drill record fails authentication (altered or forged): its outcome is not to be
    /// trusted.
    DrillAuth,
    /// A check state object does not match its hash or is malformed.
    CheckState,
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
    pub drills: u64,
    /// Drill records whose authentication was checked and passed (identity only).
    pub drills_authenticated: u64,
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
        (Some(repo), Some(identity)) => {
            Some(repo.recover_key(identity).map_err(CheckError::Unlock)?)
        }
        (None, Some(_)) => {
            c.report
                .notes
                .push("the config is damaged, so nothing was checked with the identity".into());
            None
        }
        _ => None,
    };
    if let Some(repo) = &repo {
        c.check_config(repo, key.as_ref());
    }
    c.check_drills(key.as_ref())?;
    let authenticated = match (&repo, &key) {
        (Some(repo), Some(key)) => c.check_trees(repo, key),
        _ => Vec::new(),
    };

    if opts.packs || opts.read_data {
        let slice = c.choose_slice(opts)?;
        let read_key = match (&repo, &key) {
            (Some(repo), Some(key)) if opts.read_data => Some((key, &repo.config().chunker)),
            _ => None,
        };
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
    snapshots: Vec<(Id, Sealed<Snapshot>)>,
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

/// What a tree expands to, counted as a snapshot's summary counts, and how many levels of
/// trees nest below it.
#[derive(Debug, Clone, Copy, Default)]
struct Expanse {
    files: u64,
    dirs: u64,
    bytes: u64,
    height: usize,
}

impl Expanse {
    fn file(size: u64) -> Self {
        Expanse {
            files: 1,
            bytes: size,
            ..Default::default()
        }
    }

    /// The tree as the entry of a directory in its parent.
    fn under_dir(self) -> Self {
        Expanse {
            dirs: self.dirs.saturating_add(1),
            height: self.height + 1,
            ..self
        }
    }

    fn plus(self, o: Self) -> Self {
        Expanse {
            files: self.files.saturating_add(o.files),
            dirs: self.dirs.saturating_add(o.dirs),
            bytes: self.bytes.saturating_add(o.bytes),
            height: self.height.max(o.height),
        }
    }
}

/// The state of the structure walk over every snapshot's trees.
struct TreeWalk<'a, 'r> {
    reader: &'a BlobReader<'r>,
    master: &'a MasterIndex,
    max_chunk: u32,
    /// Every tree loaded so far and what it expands to: each is checked once, even when a
    /// (forged) tree lists the same subtree many times.
    expanse: HashMap<Id, Option<Expanse>>,
    /// The current snapshot nests deeper than the format allows.
    too_deep: bool,
}

/// Why restore would refuse a snapshot whose trees expand to `e`, if it would.
fn beyond_summary(too_deep: bool, e: Option<Expanse>, summary: &SnapshotSummary) -> Option<String> {
    if too_deep || e.is_some_and(|e| e.height > MAX_DEPTH) {
        return Some(vtool_snapshot::tree::too_deep());
    }
    let e = e?;
    vtool_snapshot::tree::exceeds_summary([e.files, e.dirs, e.bytes], summary)
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

    /// Authenticate the config with the chunk key: its chunker, pack and zstd parameters
    /// come from an object a storage host could rewrite. Without a key, say it was not.
    fn check_config(&mut self, repo: &Repository, key: Option<&RestoreKey>) {
        match key {
            Some(key) => {
                if let Err(e) = repo.authenticate_config(&key.chunk_key, key.format) {
                    self.problem(ProblemKind::Config, "config", None, None, e.to_string());
                } else if !repo.config_is_sealed() {
                    self.report.notes.push(
                        "the config is format 1, which carries no MAC: it could not be authenticated".into(),
                    );
                }
            }
            None => self.report.notes.push(
                "the config could not be authenticated without a key (give --identity)".into(),
            ),
        }
    }

    /// Drill records: damaged ones always, forged ones with a key (a forged record could
    /// claim a drill passed).
    fn check_drills(&mut self, key: Option<&RestoreKey>) -> Result<(), CheckError> {
        let listing = crate::list_drills(self.backend.as_ref(), key.map(|k| &k.chunk_key))
            .map_err(|e| match e {
                vtool_snapshot::Error::Backend(b) => CheckError::Backend(b),
                other => CheckError::Internal(other.to_string()),
            })?;
        self.report.counts.drills = (listing.drills.len() + listing.invalid.len()) as u64;
        for bad in listing.invalid {
            self.problem(
                ProblemKind::Drill,
                bad.object,
                None,
                None,
                format!("drill record is damaged: {}", bad.reason),
            );
        }
        for d in listing.drills {
            match d.authenticity {
                crate::Authenticity::Authentic => self.report.counts.drills_authenticated += 1,
                crate::Authenticity::Forged => {
                    self.problem(
                        ProblemKind::DrillAuth,
                        d.name,
                        None,
                        None,
                        "drill record authentication failed: it was altered or forged by someone without the keys; do not trust its outcome".into(),
                    );
                }
                crate::Authenticity::NotChecked => {}
            }
        }
        Ok(())
    }

    /// Check state objects only schedule work, but a damaged one is still damage.
    fn check_states(&mut self) -> Result<(), CheckError> {
        for (name, data, ok) in self.fetch_named("check")? {
            let why = if !ok {
                "does not match its content hash (damaged)".to_string()
            } else if let Err(e) = serde_json::from_slice::<CheckState>(&data) {
                format!("is malformed: {e}")
            } else {
                continue;
            };
            self.problem(
                ProblemKind::CheckState,
                name,
                None,
                None,
                format!("check state object {why}"),
            );
        }
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
            match Sealed::parse(SealedKind::Snapshot, &data) {
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
            let message = match self.master.locate(&tree, BlobKind::Tree) {
                Ok(_) => continue,
                Err(_) if self.master.get(&tree).is_some() => {
                    "the snapshot's root tree is indexed as a data blob"
                }
                Err(_) => "the snapshot's root tree is in no index (lost index or pack)",
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
            let mut walk = TreeWalk {
                reader: &reader,
                master: &master,
                max_chunk: repo.config().chunker.max_size,
                expanse: HashMap::new(),
                too_deep: false,
            };
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
                authenticated.push((*id, Snapshot::clone(snap)));
                let short = id.short();
                walk.too_deep = false;
                let expanse =
                    self.walk_tree(&mut walk, &short, &snap.tree, &snap.fingerprint, "", 0);
                if let Some(why) = beyond_summary(walk.too_deep, expanse, &snap.summary) {
                    let p = self.problem(
                        ProblemKind::Tree,
                        format!("snapshots/{id}"),
                        None,
                        Some(snap.tree),
                        format!("{why}; restore refuses the snapshot"),
                    );
                    self.report.problems[p].damaged.push(DamagedPath {
                        snapshot: short,
                        path: "/".into(),
                    });
                }
            }
        }
        self.master = master;
        self.snapshots = snapshots;
        authenticated
    }

    /// Check a tree at `depth` and everything below it, each tree once, and return what it
    /// expands to (`None` when something below could not be loaded or nests too deep).
    fn walk_tree(
        &mut self,
        w: &mut TreeWalk,
        snap: &str,
        tree_id: &Id,
        merkle: &Id,
        rel: &str,
        depth: usize,
    ) -> Option<Expanse> {
        if let Some(e) = w.expanse.get(tree_id) {
            return *e;
        }
        if depth > MAX_DEPTH {
            // Not loaded: a forged chain of trees must not exhaust the stack.
            w.too_deep = true;
            return None;
        }
        let tree = match w.reader.tree(tree_id, merkle) {
            Ok(t) => t,
            Err(e) => {
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
                        let pack = w.master.get(tree_id).map(|l| l.pack);
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
                // Not remembered: every path that reaches it is named.
                return None;
            }
        };
        self.report.counts.trees_checked += 1;
        let mut total = Some(Expanse::default());
        for node in &tree.nodes {
            let path = join(rel, &node.name);
            let below = match node.kind {
                NodeKind::Dir => match (node.subtree, node.merkle) {
                    (Some(sub), Some(m)) => self
                        .walk_tree(w, snap, &sub, &m, &path, depth + 1)
                        .map(|e| e.under_dir()),
                    _ => None,
                },
                NodeKind::File => {
                    self.check_file(w.master, w.max_chunk, node);
                    Some(Expanse::file(node.size))
                }
                NodeKind::Symlink => Some(Expanse::default()),
            };
            total = total.zip(below).map(|(a, b)| a.plus(b));
        }
        w.expanse.insert(*tree_id, total);
        total
    }

    fn check_file(&mut self, master: &MasterIndex, max_chunk: u32, node: &Node) {
        self.report.counts.files_checked += 1;
        let mut total = 0u64;
        let mut complete = true;
        for c in &node.chunks {
            let mut lengths: Vec<u32> = master
                .copies(c)
                .filter(|l| l.blob.kind == BlobKind::Data)
                .map(|l| l.blob.raw_length)
                .collect();
            lengths.sort_unstable();
            lengths.dedup();
            let possible: Vec<u32> = lengths
                .iter()
                .copied()
                .filter(|&l| l <= max_chunk)
                .collect();
            if let [one] = possible[..] {
                total += u64::from(one);
            } else {
                complete = false;
            }
            if self.blob_problems.contains_key(c) || (lengths.len() == 1 && possible.len() == 1) {
                continue;
            }
            let p = match (master.get(c), lengths.is_empty()) {
                (None, _) => self.problem(
                    ProblemKind::BlobMissing,
                    "index",
                    None,
                    Some(*c),
                    "a file needs this blob but no index lists it (lost index or pack)".into(),
                ),
                (Some(loc), true) => self.problem(
                    ProblemKind::Blob,
                    pack_name(&loc.pack),
                    Some(loc.pack),
                    Some(*c),
                    "a file needs this blob as data, the index lists it as a tree".into(),
                ),
                (Some(_), false) => self.problem(
                    ProblemKind::Index,
                    "index",
                    None,
                    Some(*c),
                    format!(
                        "the indexes list copies of this chunk with lengths {lengths:?} (at most \
                         {max_chunk} is possible): an entry was planted or damaged; restore \
                         reads the chunk to tell which copy is genuine"
                    ),
                ),
            };
            self.blob_problems.insert(*c, p);
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
        key: Option<(&RestoreKey, &ChunkerParams)>,
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
                if let (Some((key, chunker)), Some(info)) = (key, indexed.get(id)) {
                    read_pack(key, chunker, id, &stored, &info.blobs, &mut out);
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

    /// Name the snapshots and paths each blob or pack problem damages. A blob is damaged
    /// only when every copy of it is: a bad copy beside an intact one (an entry planted by
    /// someone without the keys) damages nothing, and its problem says so.
    fn attribute(&mut self, repo: &Repository, key: &RestoreKey, snapshots: &[(Id, Snapshot)]) {
        let mut by_blob: HashMap<Id, Vec<(Option<Id>, usize)>> = HashMap::new();
        let mut by_pack: HashMap<Id, Vec<usize>> = HashMap::new();
        for (i, p) in self.report.problems.iter().enumerate() {
            let id = |s: &Option<String>| s.as_deref().and_then(Id::from_hex);
            let precise = |p: &Problem| id(&p.pack).is_some_and(|pk| self.read_packs.contains(&pk));
            match p.kind {
                // Tree problems already carry the directories they cut off; a trailer
                // disagreement loses no data.
                ProblemKind::Tree | ProblemKind::PackTrailer => continue,
                // Index entries disagreeing on a blob: restore reads it to find out.
                ProblemKind::Index if p.blob.is_some() => continue,
                // The pack was decrypted: its blob problems say exactly what is lost.
                ProblemKind::PackHash if precise(p) => continue,
                _ => {}
            }
            match (id(&p.blob), id(&p.pack)) {
                (Some(b), pack) => by_blob.entry(b).or_default().push((pack, i)),
                (None, Some(pk)) => by_pack.entry(pk).or_default().push(i),
                _ => {}
            }
        }
        if by_blob.is_empty() && by_pack.is_empty() {
            return;
        }
        let mut found: HashMap<usize, BTreeSet<DamagedPath>> = HashMap::new();
        let mut spared = HashSet::new();
        {
            let reader = BlobReader::new(repo, key, &self.master);
            let mut a = Attribution {
                reader: &reader,
                by_blob: &by_blob,
                by_pack: &by_pack,
                clean: HashSet::new(),
                found: &mut found,
                spared: &mut spared,
            };
            for (id, snap) in snapshots {
                let mut budget = TreeBudget::new(&snap.summary);
                a.walk(
                    &id.short(),
                    &snap.tree,
                    &snap.fingerprint,
                    "",
                    &mut budget,
                    0,
                );
            }
        }
        for i in spared {
            if !found.contains_key(&i) {
                self.report.problems[i]
                    .message
                    .push_str("; another listed copy shows no damage, and restores use it");
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
fn check_blob(
    key: &RestoreKey,
    chunker: &ChunkerParams,
    stored: &[u8],
    b: &PackedBlob,
) -> Result<(), String> {
    let raw = blob::decode(stored, b, chunker).map_err(|e| e.to_string())?;
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
    chunker: &ChunkerParams,
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
            read_pack_damaged(key, chunker, stored, &what, blobs, out);
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
            .and_then(|s| check_blob(key, chunker, s, b));
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
    chunker: &ChunkerParams,
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
        let result = data.and_then(|d| check_blob(key, chunker, &d, b));
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
    /// Problems per blob, with the pack of the copy concerned (`None`: every copy).
    by_blob: &'a HashMap<Id, Vec<(Option<Id>, usize)>>,
    by_pack: &'a HashMap<Id, Vec<usize>>,
    /// Trees with nothing damaged below them.
    clean: HashSet<Id>,
    found: &'a mut HashMap<usize, BTreeSet<DamagedPath>>,
    /// Problems of a bad copy whose blob has another copy without problems.
    spared: &'a mut HashSet<usize>,
}

impl Attribution<'_, '_> {
    fn hit(&mut self, blob: &Id, snap: &str, path: String) -> bool {
        let of_blob = self
            .by_blob
            .get(blob)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let of_copy = |pack: Option<Id>| of_blob.iter().filter(move |(pk, _)| *pk == pack);
        // Problems of every copy at once (no index lists the blob), then of each copy.
        let mut problems: Vec<usize> = of_copy(None).map(|&(_, p)| p).collect();
        let mut intact_copy = false;
        for loc in self.reader.index.copies(blob) {
            let before = problems.len();
            problems.extend(self.by_pack.get(&loc.pack).into_iter().flatten());
            problems.extend(of_copy(Some(loc.pack)).map(|&(_, p)| p));
            intact_copy |= problems.len() == before;
        }
        if intact_copy && of_copy(None).next().is_none() {
            self.spared.extend(problems);
            return false;
        }
        for &p in &problems {
            self.found.entry(p).or_default().insert(DamagedPath {
                snapshot: snap.to_string(),
                path: path.clone(),
            });
        }
        !problems.is_empty()
    }

    /// Returns whether anything at or below this tree, at `depth`, is damaged. The walk
    /// stays within the snapshot's authenticated totals (the structure walk reports a
    /// snapshot beyond them).
    fn walk(
        &mut self,
        snap: &str,
        tree_id: &Id,
        merkle: &Id,
        rel: &str,
        budget: &mut TreeBudget,
        depth: usize,
    ) -> bool {
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
        if budget.enter(&tree, depth).is_err() {
            return true;
        }
        let mut damaged = false;
        for node in &tree.nodes {
            let path = join(rel, &node.name);
            match node.kind {
                NodeKind::Dir => {
                    if let (Some(sub), Some(m)) = (node.subtree, node.merkle) {
                        damaged |= self.walk(snap, &sub, &m, &path, budget, depth + 1);
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
