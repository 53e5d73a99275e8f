//! A gate report as the evidence a custody claim needs to move held keys: the file
//! `vtool gate --report FILE` wrote, byte for byte the sealed object, authenticated with the
//! repository's chunk key, passed (its `offline` check too), fresh, and for exactly the
//! claimed keys.

use std::collections::BTreeSet;
use std::time::Duration;

use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::{CheckStatus, GateReport};
use vtool_snapshot::sealed::{Sealed, SealedKind};
use vtool_snapshot::time::OffsetDateTime;
use vtool_snapshot::FileType;
use vtool_validator::custody::Evidence;

use crate::records::GATE_KIND;

/// How much a report's clock may run ahead of ours.
const CLOCK_SKEW: vtool_snapshot::time::Duration = vtool_snapshot::time::Duration::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("not a sealed gate report: {0}")]
    NotAReport(String),
    #[error("the report does not authenticate with this repository's key: altered, forged, or from another repository")]
    Forged,
    #[error("the report is a {0}, not a gate report")]
    Kind(String),
    #[error("the gate did not pass")]
    Failed,
    #[error("its offline check did not pass: nothing proves the previous holder stopped signing")]
    NotOffline,
    #[error("the report is {age}s old, more than --evidence-max-age ({max}s); run the gate again")]
    Stale { age: i64, max: u64 },
    #[error("the report is dated {0}, in the future")]
    Future(String),
    #[error("the report is for other keys: {unproven} claimed key(s) not in it, {unclaimed} of its key(s) not claimed")]
    Keys { unproven: usize, unclaimed: usize },
}

/// The custody evidence in `bytes` for claiming `pubkeys` (`0x…` lowercase).
pub fn custody_evidence(
    bytes: &[u8],
    key: &ChunkKey,
    pubkeys: &[String],
    max_age: Duration,
) -> Result<Evidence, EvidenceError> {
    let sealed = Sealed::<GateReport>::parse(SealedKind::Report, bytes)
        .map_err(EvidenceError::NotAReport)?;
    if !sealed.verify(SealedKind::Report, key) {
        return Err(EvidenceError::Forged);
    }
    let report = sealed.into_value();
    if report.kind != GATE_KIND {
        return Err(EvidenceError::Kind(report.kind));
    }
    if !report.passed {
        return Err(EvidenceError::Failed);
    }
    let offline = report
        .checks
        .iter()
        .any(|c| c.name == "offline" && c.status == CheckStatus::Pass);
    if !offline {
        return Err(EvidenceError::NotOffline);
    }
    let age = OffsetDateTime::now_utc() - report.time;
    if age < -CLOCK_SKEW {
        return Err(EvidenceError::Future(vtool_snapshot::format_time(report.time)));
    }
    if age > max_age {
        return Err(EvidenceError::Stale {
            age: age.whole_seconds(),
            max: max_age.as_secs(),
        });
    }
    let claimed: BTreeSet<&String> = pubkeys.iter().collect();
    let proven: BTreeSet<&String> = report.pubkeys.iter().collect();
    if claimed != proven {
        return Err(EvidenceError::Keys {
            unproven: claimed.difference(&proven).count(),
            unclaimed: proven.difference(&claimed).count(),
        });
    }
    Ok(Evidence {
        report_id: FileType::Report.name_of(bytes).0.to_hex(),
        pubkeys: report.pubkeys,
        passed_offline: offline,
        time: report.time,
    })
}
