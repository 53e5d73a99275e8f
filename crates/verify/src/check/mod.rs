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
//!
//! This module runs the phases in order; each level lives in its own file ([`structure`],
//! [`trees`], [`packs`]), as do the [`subset`] rotation, the [`attribution`] of damage and
//! the [`report`] types.

mod attribution;
mod packs;
mod record;
mod report;
mod structure;
mod subset;
mod trees;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use vtool_snapshot::age::x25519::Identity;
use vtool_snapshot::index::MasterIndex;
use vtool_snapshot::repofile::{PackedBlob, Snapshot};
use vtool_snapshot::sealed::Sealed;
use vtool_snapshot::{Id, Progress, Repository};
use vtool_transfer::{Backend, BackendError};

pub use record::RecordCheck;
pub use report::{
    CheckCounts, CheckReport, DamagedPath, Problem, ProblemKind, SubsetRun, Unreferenced,
};
pub use subset::Subset;

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
    #[error("the check ran but its record could not be stored: {0}")]
    Record(String),
}

impl From<BackendError> for CheckError {
    fn from(e: BackendError) -> Self {
        CheckError::Backend(e)
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
    /// Store a sealed record of the outcome at the checked location (`checks/<blake3>`).
    pub record: Option<RecordCheck>,
}

/// Check the repository at `backend`. Problems found are in the report; `Err` means the
/// check itself could not run (unreadable backend, wrong identity, bad options).
pub fn check(
    backend: Box<dyn Backend>,
    identity: Option<Identity>,
    opts: &CheckOptions,
    progress: &dyn Progress,
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

    // The repository owns one handle; the check keeps its own to go on when the config is
    // damaged and no repository opens.
    let repo = match Repository::open(Box::new(backend.clone())) {
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
    let key = match &repo {
        Some(repo) if !c.check_config(repo, key.as_ref()) => None,
        _ => key,
    };
    c.check_records(key.as_ref())?;
    let authenticated = match (&repo, &key) {
        (Some(repo), Some(key)) => c.check_trees(repo, key),
        _ => Vec::new(),
    };

    if opts.packs || opts.read_data {
        let slice = c.choose_slice(opts)?;
        let read_key = match (&repo, &key) {
            (Some(repo), Some(key)) if opts.read_data => {
                Some((key, &repo.config().chunker, repo.pack_layout()))
            }
            _ => None,
        };
        c.check_pack_data(slice, read_key, progress)?;
        c.record_slice(opts, slice);
    }

    if let (Some(repo), Some(key)) = (&repo, &key) {
        c.attribute(repo, key, &authenticated);
    }
    let checked = opts
        .record
        .as_ref()
        .map(|r| c.authentic_snapshots(&r.key))
        .unwrap_or_default();
    let mut report = c.finish();
    if let Some(record) = &opts.record {
        report.record = Some(
            Checker::record(backend.as_ref(), &report, &checked, record)
                .map_err(|e| CheckError::Record(e.to_string()))?,
        );
    }
    Ok(report)
}

/// A pack as the indexes describe it.
struct IndexedInfo {
    size: u64,
    index: String,
    blobs: Vec<PackedBlob>,
}

/// The state of one check run, filled in phase by phase.
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
