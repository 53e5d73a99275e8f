//! What a check found: the report, its counts and every problem with what it damages.

use serde::Serialize;
use vtool_snapshot::Id;

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
    /// A check record or gate report is damaged (name does not match its hash, malformed).
    Record,
    /// A check record or gate report fails authentication (altered or forged).
    RecordAuth,
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
    /// A snapshot's refs object is missing or damaged, or (checked with the identity)
    /// omits blobs the snapshot needs, which a prune would then delete.
    Refs,
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
    /// The sealed record of this run (`checks/<blake3>`), when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}
