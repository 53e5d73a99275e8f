//! Every structure vtool writes to a repository or its cache, as plain serde types.
//! `doc/FORMAT.md` is the normative description; keep the two in step.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Id;

/// Version of the repository format written by this build.
pub const FORMAT_VERSION: u32 = 3;

/// `config`: written once by `init`; from format 2 on a sealed object (see [`crate::sealed`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    pub version: u32,
    /// Random repository id; names the local cache directory.
    pub id: Id,
    pub created: String,
    pub chunker: ChunkerParams,
    /// Target size of a pack's plaintext in bytes.
    pub pack_size: u64,
    /// zstd level for blobs that compress.
    pub zstd_level: i32,
    /// age recipients every pack and key object is encrypted to.
    pub recipients: Vec<String>,
    /// Object stores: whether the server refused a second `If-None-Match: *` PUT of one name
    /// when `init` tried (AWS does, Garage does not); absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional_put: Option<bool>,
}

/// FastCDC (2020) parameters; fixed for a repository so chunks dedup across hosts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

/// `keys/<blake3>`: age-encrypted to the recipients; holds the secret the identity holder
/// needs besides the age identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyObject {
    pub repo_id: Id,
    /// Key of the keyed BLAKE3 that names chunks (hex).
    pub chunk_key: String,
    /// Repository format the key was made for (absent in format 1): from 2 on, a key holder
    /// refuses an unsealed config, so a storage host cannot swap in an old-style one.
    #[serde(default = "format_one")]
    pub format: u32,
}

fn format_one() -> u32 {
    1
}

/// The backup key file handed to backup hosts: it can add data but read nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupKeyFile {
    /// Always `"vtool-backup-key"`; guards against passing the wrong file.
    pub kind: String,
    /// The repository format the key was made for (as [`KeyObject::format`]).
    pub version: u32,
    pub repo_id: Id,
    pub recipients: Vec<String>,
    pub chunk_key: String,
}

/// What a blob holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Data,
    Tree,
}

/// One blob inside a pack; offsets are into the pack's decrypted plaintext.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackedBlob {
    pub id: Id,
    pub kind: BlobKind,
    pub offset: u64,
    /// Stored length (compressed or raw).
    pub length: u32,
    /// Length of the chunk before compression.
    pub raw_length: u32,
    pub compressed: bool,
}

/// `index/<blake3>`: plaintext JSON, zstd-compressed. Lists which blobs each pack holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub version: u32,
    pub packs: Vec<IndexedPack>,
    /// Set by `repair index` (RFC 3339 UTC): rebuilt from pack trailers. It also keeps the
    /// rebuilt file's name apart from a damaged original with the same listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedPack {
    /// The pack's name: BLAKE3 of its stored (encrypted) bytes.
    pub id: Id,
    /// Stored size in bytes.
    pub size: u64,
    pub blobs: Vec<PackedBlob>,
}

/// The trailer at the end of every pack's plaintext (followed by its length as u32 LE),
/// so indexes can be rebuilt from packs alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackTrailer {
    pub blobs: Vec<PackedBlob>,
}

/// Kind of a tree entry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// One entry of a directory (a tree blob is a JSON [`Tree`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// File size in bytes (0 for directories and symlinks).
    pub size: u64,
    /// Files: plain BLAKE3 of the whole content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Id>,
    /// Files: chunk ids in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<Id>,
    /// Directories: blob id of the child tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Directories: Merkle hash of the child tree (see [`crate::merkle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merkle: Option<Id>,
    /// Symlinks: the link target (UTF-8; other targets are refused at backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A directory listing, entries sorted by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// `snapshots/<blake3>`: the body of a sealed object (see [`crate::sealed`]), written last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    /// RFC 3339 UTC. Compared as a time, never as text: the text drops trailing zeros of
    /// the fraction, so it does not sort.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub hostname: String,
    pub username: String,
    /// Absolute source paths; each is an entry of the root tree named by its last component.
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Blob id of the root tree.
    pub tree: Id,
    /// Merkle root of the snapshot's content: the fingerprint people compare.
    pub fingerprint: Id,
    pub summary: SnapshotSummary,
    /// Free-form labels added by higher layers (client profile, software version, …).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The `refs/<id>` object listing every blob the snapshot needs (format 3), so prune
    /// knows what is used without the identity. The seal covers it, and the refs object is
    /// named by its hash, so neither can be altered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<Id>,
    /// Keyed fingerprints of the validator keys and slashing-protection databases the
    /// snapshot holds (see [`crate::keys::ChunkKey::held_fingerprint`]), for forget's key
    /// guard. Keyed, so the storage host cannot tell which validators a node runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Id>,
}

/// Label marking a snapshot that is not a consistent backup (value `"true"`).
pub const INCOMPLETE_LABEL: &str = "incomplete";

impl Snapshot {
    /// Labelled [`INCOMPLETE_LABEL`]: kept, listed, but never picked as `latest`.
    pub fn is_incomplete(&self) -> bool {
        self.labels
            .get(INCOMPLETE_LABEL)
            .is_some_and(|v| v == "true")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SnapshotSummary {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub bytes_read: u64,
    pub bytes_added_stored: u64,
    pub warnings: u64,
    pub duration_secs: f64,
}

/// One row of the local files cache (`<cache>/<repo id>/files`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedFile {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub content: Id,
    pub chunks: Vec<Id>,
}

/// `check/<blake3>`: plaintext JSON, one per `vtool check --subset PCT%` run, never
/// overwritten. It only schedules which slice of the packs the next run checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckState {
    /// Always `"vtool-check-state"`.
    pub kind: String,
    pub version: u32,
    /// Written once the slice was checked, RFC 3339 UTC; the newest state of a mode wins
    /// (compared as a time).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// `packs` or `read-data`: each has its own rotation.
    pub mode: String,
    pub slices: u32,
    /// 1-based.
    pub slice: u32,
    pub packs_checked: u64,
    pub problems: u64,
    /// The state object this run's slice was chosen from.
    pub previous: Option<String>,
}

/// `drills/<blake3>`: the body of a sealed object, one per restore-and-boot drill, never
/// overwritten.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrillRecord {
    /// Always `"vtool-drill"`.
    pub kind: String,
    pub version: u32,
    /// The snapshot object drilled and its fingerprint.
    pub snapshot: Id,
    pub fingerprint: Id,
    /// Start of the drill, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub hostname: String,
    /// Directory restored into.
    pub target: String,
    pub duration_secs: f64,
    pub restore: DrillRestore,
    /// The fingerprint recomputed from the restored files matched the snapshot's.
    pub verified: bool,
    pub commands: Vec<DrillCommand>,
    pub passed: bool,
    /// Why the drill failed, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub vtool_version: String,
    /// Validator public keys (0x…) whose restored EIP-2335 keystores decrypted with their
    /// passwords during the drill (`vtool drill --prove-keys`); the gate's proof of keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proven_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DrillRestore {
    pub files: u64,
    pub bytes: u64,
    pub duration_secs: f64,
    /// Paths (relative to the target) that could not be restored correctly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
}

/// One boot command of a drill.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DrillCommand {
    /// As given, with `{dir}` unexpanded.
    pub command: String,
    /// `None` when it did not run (an earlier step failed) or was killed.
    pub exit_code: Option<i32>,
    pub ran: bool,
    pub timed_out: bool,
    pub duration_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_matched: Option<bool>,
    /// The last few KiB of its standard output and error, interleaved.
    pub output_tail: String,
    pub passed: bool,
}

/// `writers/<random id>`: a backup announces itself here before it reads the index, so a
/// prune knows which backups may still reference what it condemns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WriterRecord {
    /// Always `"vtool-writer"`.
    pub kind: String,
    pub version: u32,
    pub hostname: String,
    pub pid: u32,
    /// By the writer's clock; only used to tell a stale writer (see `doc/FORMAT.md`).
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
}

/// `ends/<writer id>`: created once, by whichever comes first: the backup, just before it
/// writes its snapshot, or a prune declaring the writer stale. The backup writes its
/// snapshot only if it created this object itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WriterEnd {
    /// Always `"vtool-writer-end"`.
    pub kind: String,
    pub version: u32,
    pub outcome: WriterOutcome,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub hostname: String,
    /// Finished: the snapshot about to be written and its refs object, which a prune keeps
    /// alive even if the snapshot never arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<Id>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WriterOutcome {
    /// The backup got here first and writes its snapshot next.
    Finished,
    /// A prune declared the writer stale; it will write no snapshot.
    Stale,
}

/// `trash/<blake3>`: the body of a sealed object. What `forget` and `prune` mark for
/// deletion; deleted only by a later prune, after the grace period and once every backup
/// that might still use it has ended (see `doc/FORMAT.md`, "Forget and prune").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrashRecord {
    /// Always `"vtool-trash"`.
    pub kind: String,
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub hostname: String,
    /// `forget` or `prune`.
    pub by: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Id>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packs: Vec<Id>,
    /// Index files superseded by new ones that list their packs but the condemned ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Id>,
}

/// `waiting/<trash id>`: the body of a sealed object, written right after its trash record:
/// the writers that had not ended then. The trash is deleted only once all of them have.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaitingRecord {
    /// Always `"vtool-waiting"`.
    pub kind: String,
    pub version: u32,
    pub trash: Id,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub writers: Vec<Id>,
}

/// `checks/<blake3>`: the body of a sealed object, one per `vtool check` run that held a key,
/// stored at the location it checked. The gate's proof that a copy was verified recently.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckRecord {
    /// Always `"vtool-check"`.
    pub kind: String,
    pub version: u32,
    /// When the check finished.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub hostname: String,
    /// The repository location as checked (a canonical local path or the URL); a record
    /// vouches only for the location it names.
    pub location: String,
    /// `structure`, `packs` or `read-data`.
    pub level: String,
    /// The `--subset` slice (`n/t`) when only part of the packs was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    pub packs_checked: u64,
    pub problems: u64,
    pub passed: bool,
    /// Every snapshot object present when the check ran.
    pub snapshots: Vec<Id>,
    pub vtool_version: String,
}

/// `reports/<blake3>`: the body of a sealed object: a `vtool gate` verdict with its evidence,
/// or a `vtool restore --no-gate` override. Never overwritten.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateReport {
    /// `"vtool-gate-report"`, `"vtool-gate-override"` or `"vtool-migration-batch"`.
    pub kind: String,
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub hostname: String,
    pub vtool_version: String,
    /// Every check passed (always false for an override).
    pub passed: bool,
    pub snapshot: Option<Id>,
    pub fingerprint: Option<Id>,
    /// The migrating validator keys (0x…, lowercase).
    pub pubkeys: Vec<String>,
    pub inputs: GateInputs,
    pub checks: Vec<GateCheck>,
    /// Per key, the evidence behind the checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyEvidence>,
    /// The lowest finalized epoch over the beacon nodes, read after the liveness watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalized_epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interchange: Option<InterchangeEvidence>,
    /// An override: what was done without a gate, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_of: Option<String>,
    /// A migration batch's report: which batch (1-based) of how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<(u32, u32)>,
    /// The custody fencing token the new host holds the batch's keys under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody_token: Option<i64>,
}

/// What a gate was asked, as given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GateInputs {
    pub repo: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_repos: Vec<String>,
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slashing: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub beacons: Vec<String>,
    pub copies: u32,
    pub max_age_secs: u64,
    pub epochs: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_versions: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Could not be decided; counts as a failure.
    Unknown,
}

/// One of the gate's checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateCheck {
    /// `backup`, `drill`, `copies`, `keys`, `slashing`, `offline`, `finality`, `software`.
    pub name: String,
    pub status: CheckStatus,
    /// One line: why it passed or what is missing.
    pub summary: String,
    /// The facts it rests on, one per line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Worth knowing, not failing (a single beacon node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How long it took (for `offline`, mostly waiting for epochs to complete).
    #[serde(default)]
    pub duration_secs: f64,
}

/// What the gate knew about one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyEvidence {
    pub pubkey: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The snapshot holds a keystore for it.
    pub in_snapshot: bool,
    /// The drill record that decrypted its keystore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proven_by_drill: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slashing: Option<SlashingRange>,
    /// Each watched epoch on each node: `Some(is_live)`, or `None` when it could not be seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub liveness: Vec<EpochLiveness>,
    /// Why this key fails the gate, if it does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A key's slashing-protection history in the interchange.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SlashingRange {
    pub blocks: u64,
    pub attestations: u64,
    pub min_slot: Option<u64>,
    pub max_slot: Option<u64>,
    pub min_source_epoch: Option<u64>,
    pub max_source_epoch: Option<u64>,
    pub min_target_epoch: Option<u64>,
    pub max_target_epoch: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochLiveness {
    pub epoch: u64,
    pub node: String,
    pub live: Option<bool>,
}

/// The slashing-protection interchange the gate read, named by the hash of its exact bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InterchangeEvidence {
    pub blake3: String,
    pub format_version: String,
    pub genesis_validators_root: String,
}
