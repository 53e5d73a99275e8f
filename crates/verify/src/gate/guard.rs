//! The restore guard: validator keystores go onto a host (outside a drill's scratch
//! directory) only when a passing gate report for every one of those keys is recent, or
//! when the operator overrides it, which is recorded in the repository for all to see.

use std::collections::BTreeSet;
use std::time::Duration;

use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::{GateInputs, GateReport};
use vtool_snapshot::time::OffsetDateTime;
use vtool_snapshot::{Id, Repository};

use crate::records::{list_records, save_record, GATE_KIND, OVERRIDE_KIND};

/// Whether keystores for `pubkeys` may be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardDecision {
    /// Every key has a passing, authenticated gate report within the age limit.
    Allowed {
        /// The reports relied on, newest first.
        reports: Vec<String>,
    },
    /// These keys have none.
    Refused { missing: Vec<String> },
}

/// Decide for `pubkeys` (`0x…` lowercase) from the reports stored in `repo`.
pub fn restore_guard(
    repo: &Repository,
    key: &ChunkKey,
    pubkeys: &[String],
    max_age: Duration,
) -> Result<GuardDecision, vtool_snapshot::Error> {
    let fresh = super::backup::Freshness::new(max_age);
    let listing = list_records::<GateReport>(repo.backend(), Some(key))?;
    let mut missing: BTreeSet<&String> = pubkeys.iter().collect();
    let mut reports = Vec::new();
    for listed in &listing.records {
        let r = &listed.record;
        let usable = listed.authenticity == crate::Authenticity::Authentic
            && r.kind == GATE_KIND
            && r.passed
            && fresh.fresh(r.time);
        if !usable {
            continue;
        }
        let before = missing.len();
        missing.retain(|p| !r.pubkeys.contains(p));
        if missing.len() < before {
            reports.push(listed.name.clone());
        }
    }
    Ok(if missing.is_empty() {
        GuardDecision::Allowed { reports }
    } else {
        GuardDecision::Refused {
            missing: missing.into_iter().cloned().collect(),
        }
    })
}

/// Store the record of a restore that went past the guard (`--no-gate`): who restored which
/// keys of which snapshot, and where to. Returns the object's name.
pub fn record_override(
    repo: &Repository,
    key: &ChunkKey,
    snapshot: (Id, Id),
    pubkeys: &[String],
    what: &str,
) -> Result<String, vtool_snapshot::Error> {
    let (snapshot_id, fingerprint) = snapshot;
    let report = GateReport {
        kind: OVERRIDE_KIND.into(),
        version: 1,
        time: OffsetDateTime::now_utc(),
        hostname: vtool_snapshot::hostname(),
        vtool_version: env!("CARGO_PKG_VERSION").into(),
        passed: false,
        snapshot: Some(snapshot_id),
        fingerprint: Some(fingerprint),
        pubkeys: pubkeys.to_vec(),
        inputs: GateInputs::default(),
        checks: Vec::new(),
        keys: Vec::new(),
        finalized_epoch: None,
        interchange: None,
        override_of: Some(what.into()),
        batch: None,
        custody_token: None,
    };
    save_record(repo.backend(), &report, key)
}
