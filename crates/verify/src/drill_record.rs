//! Drill records in the repository: `drills/<blake3>` objects, authenticated with a key
//! derived from the chunk key, so a storage host (which holds no key) can neither forge a
//! passing drill nor alter a failed one. Listing needs a key only to authenticate.

use rayon::prelude::*;
use serde::Serialize;
use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::DrillRecord;
use vtool_snapshot::Id;
use vtool_transfer::{Backend, BackendError};

pub const DRILL_KIND: &str = "vtool-drill";
const DRILL_MAC_CONTEXT: &str = "vtool 2026-11 drill record authentication";
/// Records are a few KiB; anything far larger is not one of ours.
const MAX_RECORD_SIZE: u64 = 1 << 20;

fn mac(record: &DrillRecord, key: &ChunkKey) -> String {
    let mut unsigned = record.clone();
    unsigned.mac.clear();
    // Serializing plain serde types into memory cannot fail.
    let bytes = serde_json::to_vec(&unsigned).unwrap_or_default();
    key.mac(DRILL_MAC_CONTEXT, &bytes)
}

/// Authenticate `record` and store it. Returns the object's name.
pub fn save_record(
    backend: &dyn Backend,
    record: &mut DrillRecord,
    key: &ChunkKey,
) -> Result<String, BackendError> {
    record.mac = mac(record, key);
    let data = serde_json::to_vec_pretty(record).unwrap_or_default();
    let name = format!("drills/{}", Id::hash(&data));
    match backend.put(&name, &data) {
        Ok(()) | Err(BackendError::AlreadyExists(_)) => Ok(name),
        Err(e) => Err(e),
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
    pub invalid: Vec<String>,
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
) -> Result<DrillListing, BackendError> {
    let objects = backend.list("drills")?;
    let read = objects
        .par_iter()
        .map(|o| -> Result<Result<ListedDrill, String>, BackendError> {
            if o.size > MAX_RECORD_SIZE {
                return Ok(Err(format!("{}: {} bytes is too large", o.name, o.size)));
            }
            let data = match backend.get(&o.name) {
                Ok(d) => d,
                Err(BackendError::NotFound(_)) => {
                    return Ok(Err(format!("{}: vanished while listing", o.name)))
                }
                Err(e) => return Err(e),
            };
            if o.name != format!("drills/{}", Id::hash(&data)) {
                return Ok(Err(format!("{}: does not match its content hash", o.name)));
            }
            let record: DrillRecord = match serde_json::from_slice(&data) {
                Ok(r) => r,
                Err(e) => return Ok(Err(format!("{}: malformed: {e}", o.name))),
            };
            if record.kind != DRILL_KIND {
                return Ok(Err(format!("{}: not a drill record", o.name)));
            }
            let authenticity = match key {
                None => Authenticity::NotChecked,
                Some(k) if mac(&record, k) == record.mac => Authenticity::Authentic,
                Some(_) => Authenticity::Forged,
            };
            Ok(Ok(ListedDrill {
                name: o.name.clone(),
                authenticity,
                record,
            }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut listing = DrillListing::default();
    for r in read {
        match r {
            Ok(d) => listing.drills.push(d),
            Err(why) => listing.invalid.push(why),
        }
    }
    listing.drills.sort_by(|a, b| {
        b.record
            .time
            .cmp(&a.record.time)
            .then_with(|| a.name.cmp(&b.name))
    });
    listing.invalid.sort();
    Ok(listing)
}
