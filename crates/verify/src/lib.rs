//! Proving that data matches a snapshot.
//!
//! [`compare`] walks a directory on disk next to a snapshot's trees, recomputes the Merkle
//! fingerprint from what is on disk and lists every difference. It backs
//! `vtool restore --verify` (prove a restore bit for bit) and `vtool diff` (is the live
//! directory on the new server exactly what we backed up?).
//!
//! [`check()`] checks a whole repository (`vtool check`): its structure (every object named
//! by its hash, every indexed pack present with its size, unreferenced packs noted), with
//! the restore identity every snapshot authenticated and every tree walked; `packs`
//! re-hashes stored packs without any key; `read_data` decrypts packs and checks every
//! blob. [`Subset`] spreads the expensive levels over several runs, remembered in
//! `check/<blake3>` state objects. Every [`Problem`] names the damaged object, pack, blob
//! and, with the identity, the snapshots and paths it reaches.
//!
//! [`drill()`] restores a snapshot into a scratch directory, proves it with [`compare`], runs
//! boot commands (`sqlite3 {dir}/slashing.sqlite 'PRAGMA integrity_check'`) against it and
//! stores an authenticated [`DrillRecord`](vtool_snapshot::repofile::DrillRecord) that
//! [`list_drills`] reads back. [`checksums()`] prints manifests for `sha256sum -c` and
//! `b3sum -c`.
//!
//! ```no_run
//! # fn demo(repo: &vtool_snapshot::Repository, key: &vtool_snapshot::keys::RestoreKey) -> Result<(), Box<dyn std::error::Error>> {
//! let index = repo.load_index(None)?;
//! let reader = vtool_snapshot::reader::BlobReader::new(repo, key, &index);
//! let (_, snap) = repo.find_snapshot("latest", Some(&key.chunk_key))?;
//! let result = vtool_verify::compare(&reader, &snap, std::path::Path::new("/tmp/restored"))?;
//! assert!(result.fingerprint_matches && result.differences.is_empty());
//! # Ok(()) }
//! ```

mod boot;
mod check;
mod checksums;
mod compare;
mod disk;
mod drill;
pub mod gate;
mod keystores;
pub mod migrate;
mod records;

pub use boot::{expect_pattern, why_failed, BootCommand};
pub use checksums::{checksums, manifest_line, Checksum, ChecksumFormat, ChecksumReport};
pub use drill::{drill, DrillError, DrillOptions, DrillRun, KeepDir, ProveKeys};
pub use records::{
    list_drills, list_records, save_record, Authenticity, DrillListing, Listed, ListedDrill,
    Listing, Record, CHECK_KIND, DRILL_KIND, GATE_KIND, MIGRATION_KIND, OVERRIDE_KIND,
};

pub use check::{
    check, CheckCounts, CheckError, CheckOptions, CheckReport, DamagedPath, Problem, ProblemKind,
    RecordCheck, Subset, SubsetRun, Unreferenced,
};
pub use compare::{compare, Comparison, Difference, DifferenceKind};
pub use disk::disk_fingerprint;
pub use keystores::{snapshot_keystores, SnapshotKeystore};
