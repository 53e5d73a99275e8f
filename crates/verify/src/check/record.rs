//! The check record: a sealed `checks/<blake3>` object saying that this location was checked,
//! when, at which level and with what outcome, so `vtool gate` can require a recent passed
//! `check --packs` of every copy without re-reading terabytes itself.

use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::CheckRecord;
use vtool_snapshot::sealed::SealedKind;
use vtool_transfer::Backend;

use super::{CheckReport, Checker};
use crate::records::{save_record, CHECK_KIND};

/// Where and with which key to record a check.
#[derive(Clone)]
pub struct RecordCheck {
    /// The key that seals the record (from the backup key or the identity).
    pub key: ChunkKey,
    /// The location as the gate will be given it (a canonical local path or the URL).
    pub location: String,
}

impl std::fmt::Debug for RecordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCheck")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// Seal and store the record of the finished `report`. A snapshot counts as checked only
    /// if its object was intact and authenticates with the record's key.
    pub(super) fn record(
        backend: &dyn Backend,
        report: &CheckReport,
        snapshots: &[vtool_snapshot::Id],
        record: &RecordCheck,
    ) -> Result<String, vtool_snapshot::Error> {
        let value = CheckRecord {
            kind: CHECK_KIND.into(),
            version: 1,
            time: vtool_snapshot::time::OffsetDateTime::now_utc(),
            hostname: vtool_snapshot::hostname(),
            location: record.location.clone(),
            level: report.level.clone(),
            subset: report
                .subset
                .as_ref()
                .map(|s| format!("{}/{}", s.slice, s.slices)),
            packs_checked: report.checked_packs.len() as u64,
            problems: report.counts.problems,
            passed: report.ok,
            snapshots: snapshots.to_vec(),
            vtool_version: env!("CARGO_PKG_VERSION").into(),
        };
        save_record(backend, &value, &record.key)
    }

    /// The intact snapshots that authenticate with `key`.
    pub(super) fn authentic_snapshots(&self, key: &ChunkKey) -> Vec<vtool_snapshot::Id> {
        self.snapshots
            .iter()
            .filter(|(_, s)| s.verify(SealedKind::Snapshot, key))
            .map(|(id, _)| *id)
            .collect()
    }
}
