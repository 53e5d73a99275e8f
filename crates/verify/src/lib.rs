//! Proving that data matches a snapshot.
//!
//! [`compare`] walks a directory on disk next to a snapshot's trees, recomputes the Merkle
//! fingerprint from what is on disk and lists every difference. It backs
//! `vtool restore --verify` (prove a restore bit for bit) and `vtool diff` (is the live
//! directory on the new server exactly what we backed up?).
//!
//! ```no_run
//! # fn demo(repo: &vtool_snapshot::Repository, key: &vtool_snapshot::keys::RestoreKey) -> Result<(), Box<dyn std::error::Error>> {
//! let index = repo.load_index(None)?;
//! let reader = vtool_snapshot::reader::BlobReader::new(repo, key, &index);
//! let (_, snap) = repo.find_snapshot("latest")?;
//! let result = vtool_verify::compare(&reader, &snap, std::path::Path::new("/tmp/restored"))?;
//! assert!(result.fingerprint_matches && result.differences.is_empty());
//! # Ok(()) }
//! ```

mod compare;
mod disk;

pub use compare::{compare, Comparison, Difference, DifferenceKind};
pub use disk::disk_fingerprint;
