//! Drill records in the repository: `drills/<blake3>` objects, authenticated with a key
//! derived from the chunk key, so a storage host (which holds no key) can neither forge a
//! passing drill nor alter a failed one. Listing needs a key only to authenticate.

use serde::Serialize;
use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::DrillRecord;
use vtool_snapshot::sealed::{list_sealed, seal, DamagedObject, SealedKind};
use vtool_snapshot::FileType;
use vtool_transfer::{Backend, BackendError};

pub const DRILL_KIND: &str = "vtool-drill";
/// Records are a few KiB; anything far larger is not one of ours.
const MAX_RECORD_SIZE: u64 = 1 << 20;

/// Seal `record` and store it. Returns the object's name.
pub fn save_record(
    backend: &dyn Backend,
    record: &DrillRecord,
    key: &ChunkKey,
) -> Result<String, vtool_snapshot::Error> {
    let data = seal(SealedKind::DrillRecord, record, key)?;
    let (_, name) = FileType::DrillRecord.name_of(&data);
    // Named by its hash: one already there holds these very bytes.
    match backend.put(&name, &data) {
        Ok(()) | Err(BackendError::AlreadyExists(_)) => Ok(name),
        Err(e) => Err(e.into()),
    }
}

/// Whether a listed record could be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Authenticity {
    /// Written by a holder of the repository's keys.
    Authentic,
    /// The MAC does not match: altered or forged. Never trust its outcome.
    Forged,
    /// No key was given to check it.
    NotChecked,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListedDrill {
    pub name: String,
    pub authenticity: Authenticity,
    #[serde(flatten)]
    pub record: DrillRecord,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillListing {
    /// Newest first.
    pub drills: Vec<ListedDrill>,
    /// Objects under `drills/` that are not valid records, with the reason.
    pub invalid: Vec<DamagedObject>,
}

impl DrillListing {
    /// Anything a gate must not trust: forged records or invalid objects.
    pub fn has_problems(&self) -> bool {
        !self.invalid.is_empty()
            || self
                .drills
                .iter()
                .any(|d| d.authenticity == Authenticity::Forged)
    }
}

/// Every drill record, newest first, authenticated when `key` is given.
pub fn list_drills(
    backend: &dyn Backend,
    key: Option<&ChunkKey>,
) -> Result<DrillListing, vtool_snapshot::Error> {
    let read = list_sealed::<DrillRecord>(backend, FileType::DrillRecord, MAX_RECORD_SIZE)?;
    let mut listing = DrillListing {
        drills: Vec::new(),
        invalid: read.damaged,
    };
    for (id, sealed) in read.objects {
        let name = FileType::DrillRecord.name(&id);
        if sealed.kind != DRILL_KIND {
            listing.invalid.push(DamagedObject {
                object: name,
                reason: "not a drill record".into(),
            });
            continue;
        }
        let authenticity = match key {
            None => Authenticity::NotChecked,
            Some(k) if sealed.verify(SealedKind::DrillRecord, k) => Authenticity::Authentic,
            Some(_) => Authenticity::Forged,
        };
        listing.drills.push(ListedDrill {
            name,
            authenticity,
            record: sealed.into_value(),
        });
    }
    listing.drills.sort_by(|a, b| {
        b.record
            .time
            .cmp(&a.record.time)
            .then_with(|| a.name.cmp(&b.name))
    });
    listing.invalid.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(listing)
}
