//! Sealed records in the repository: drill records (`drills/`), check records (`checks/`)
//! and gate reports (`reports/`), each authenticated with a key derived from the chunk key,
//! so a storage host (which holds no key) can neither forge a passing record nor alter a
//! failed one. Listing needs a key only to authenticate.

use serde::de::DeserializeOwned;
use serde::Serialize;
use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::{CheckRecord, DrillRecord, GateReport};
use vtool_snapshot::sealed::{list_sealed, seal, DamagedObject};
use vtool_snapshot::time::OffsetDateTime;
use vtool_snapshot::FileType;
use vtool_transfer::{Backend, BackendError};

pub const DRILL_KIND: &str = "vtool-drill";
pub const CHECK_KIND: &str = "vtool-check";
pub const GATE_KIND: &str = "vtool-gate-report";
pub const OVERRIDE_KIND: &str = "vtool-gate-override";
pub const MIGRATION_KIND: &str = "vtool-migration-batch";

/// A kind of sealed record.
pub trait Record: Serialize + DeserializeOwned + Send {
    const FILE_TYPE: FileType;
    /// The values its `kind` field may take.
    const KINDS: &'static [&'static str];
    /// Anything far larger is not one of ours.
    const MAX_SIZE: u64;
    fn kind(&self) -> &str;
    fn time(&self) -> OffsetDateTime;
}

impl Record for DrillRecord {
    const FILE_TYPE: FileType = FileType::DrillRecord;
    const KINDS: &'static [&'static str] = &[DRILL_KIND];
    const MAX_SIZE: u64 = 1 << 20;
    fn kind(&self) -> &str {
        &self.kind
    }
    fn time(&self) -> OffsetDateTime {
        self.time
    }
}

impl Record for CheckRecord {
    const FILE_TYPE: FileType = FileType::CheckRecord;
    const KINDS: &'static [&'static str] = &[CHECK_KIND];
    /// It lists every snapshot: 70 bytes each.
    const MAX_SIZE: u64 = 64 << 20;
    fn kind(&self) -> &str {
        &self.kind
    }
    fn time(&self) -> OffsetDateTime {
        self.time
    }
}

impl Record for GateReport {
    const FILE_TYPE: FileType = FileType::Report;
    const KINDS: &'static [&'static str] = &[GATE_KIND, OVERRIDE_KIND, MIGRATION_KIND];
    /// Per key and epoch evidence: about 1 KiB per key.
    const MAX_SIZE: u64 = 64 << 20;
    fn kind(&self) -> &str {
        &self.kind
    }
    fn time(&self) -> OffsetDateTime {
        self.time
    }
}

/// Seal `record` and store it. Returns the object's name.
pub fn save_record<T: Record>(
    backend: &dyn Backend,
    record: &T,
    key: &ChunkKey,
) -> Result<String, vtool_snapshot::Error> {
    let kind = T::FILE_TYPE
        .sealed()
        .ok_or_else(|| vtool_snapshot::Error::Internal("records are sealed".into()))?;
    let data = seal(kind, record, key)?;
    let (_, name) = T::FILE_TYPE.name_of(&data);
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
pub struct Listed<T> {
    pub name: String,
    pub authenticity: Authenticity,
    #[serde(flatten)]
    pub record: T,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listing<T> {
    /// Newest first.
    pub records: Vec<Listed<T>>,
    /// Objects that are not valid records, with the reason.
    pub invalid: Vec<DamagedObject>,
}

pub type DrillListing = Listing<DrillRecord>;
pub type ListedDrill = Listed<DrillRecord>;

impl<T> Listing<T> {
    /// Anything a gate must not trust: forged records or invalid objects.
    pub fn has_problems(&self) -> bool {
        !self.invalid.is_empty()
            || self
                .records
                .iter()
                .any(|d| d.authenticity == Authenticity::Forged)
    }

    /// The records that authenticated, newest first.
    pub fn authentic(&self) -> impl Iterator<Item = &T> {
        self.records
            .iter()
            .filter(|r| r.authenticity == Authenticity::Authentic)
            .map(|r| &r.record)
    }
}

/// Every record of kind `T`, newest first, authenticated when `key` is given.
pub fn list_records<T: Record>(
    backend: &dyn Backend,
    key: Option<&ChunkKey>,
) -> Result<Listing<T>, vtool_snapshot::Error> {
    let kind = T::FILE_TYPE
        .sealed()
        .ok_or_else(|| vtool_snapshot::Error::Internal("records are sealed".into()))?;
    let read = list_sealed::<T>(backend, T::FILE_TYPE, T::MAX_SIZE)?;
    let mut listing = Listing {
        records: Vec::new(),
        invalid: read.damaged,
    };
    for (id, sealed) in read.objects {
        let name = T::FILE_TYPE.name(&id);
        if !T::KINDS.contains(&sealed.kind()) {
            listing.invalid.push(DamagedObject {
                object: name,
                reason: format!("not a {}", kind.noun()),
            });
            continue;
        }
        let authenticity = match key {
            None => Authenticity::NotChecked,
            Some(k) if sealed.verify(kind, k) => Authenticity::Authentic,
            Some(_) => Authenticity::Forged,
        };
        listing.records.push(Listed {
            name,
            authenticity,
            record: sealed.into_value(),
        });
    }
    listing.records.sort_by(|a, b| {
        b.record
            .time()
            .cmp(&a.record.time())
            .then_with(|| a.name.cmp(&b.name))
    });
    listing.invalid.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(listing)
}

/// Every drill record, newest first, authenticated when `key` is given.
pub fn list_drills(
    backend: &dyn Backend,
    key: Option<&ChunkKey>,
) -> Result<DrillListing, vtool_snapshot::Error> {
    list_records(backend, key)
}
