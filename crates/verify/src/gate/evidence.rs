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
use super::backup::CLOCK_SKEW;

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
        return Err(EvidenceError::Future(vtool_snapshot::format_time(
            report.time,
        )));
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

#[cfg(test)]
mod tests {
    use super::*;
    use vtool_snapshot::repofile::{GateCheck, GateInputs};
    use vtool_snapshot::sealed::seal;

    const HOUR: Duration = Duration::from_secs(3600);

    fn report(age_secs: i64, passed: bool, offline: CheckStatus) -> GateReport {
        GateReport {
            kind: GATE_KIND.into(),
            version: 1,
            time: OffsetDateTime::now_utc() - vtool_snapshot::time::Duration::seconds(age_secs),
            hostname: "gatehost".into(),
            vtool_version: "test".into(),
            passed,
            snapshot: None,
            fingerprint: None,
            pubkeys: vec!["0xaa".into(), "0xbb".into()],
            inputs: GateInputs::default(),
            checks: vec![GateCheck {
                name: "offline".into(),
                status: offline,
                summary: String::new(),
                evidence: Vec::new(),
                warnings: Vec::new(),
                duration_secs: 0.0,
            }],
            keys: Vec::new(),
            finalized_epoch: None,
            interchange: None,
            override_of: None,
            batch: None,
            custody_token: None,
        }
    }

    fn judge(r: &GateReport, key: &ChunkKey, keys: &[&str]) -> Result<Evidence, EvidenceError> {
        let bytes = seal(SealedKind::Report, r, key).expect("seal");
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        custody_evidence(&bytes, key, &keys, HOUR)
    }

    #[test]
    fn only_a_fresh_authentic_passed_offline_report_for_exactly_the_keys_counts() {
        let key = ChunkKey::generate();
        let good = report(60, true, CheckStatus::Pass);
        let e = judge(&good, &key, &["0xbb", "0xaa"]).expect("evidence");
        let bytes = seal(SealedKind::Report, &good, &key).expect("seal");
        assert_eq!(e.report_id, FileType::Report.name_of(&bytes).0.to_hex());
        assert!(e.passed_offline);

        let other_key = ChunkKey::generate();
        let forged = seal(SealedKind::Report, &good, &other_key).expect("seal");
        let keys = ["0xaa".to_string(), "0xbb".to_string()];
        assert!(matches!(
            custody_evidence(&forged, &key, &keys, HOUR),
            Err(EvidenceError::Forged)
        ));
        assert!(matches!(
            custody_evidence(b"{}", &key, &keys, HOUR),
            Err(EvidenceError::NotAReport(_))
        ));
        assert!(matches!(
            judge(
                &report(60, false, CheckStatus::Pass),
                &key,
                &["0xaa", "0xbb"]
            ),
            Err(EvidenceError::Failed)
        ));
        assert!(matches!(
            judge(
                &report(60, true, CheckStatus::Unknown),
                &key,
                &["0xaa", "0xbb"]
            ),
            Err(EvidenceError::NotOffline)
        ));
        assert!(matches!(
            judge(
                &report(7200, true, CheckStatus::Pass),
                &key,
                &["0xaa", "0xbb"]
            ),
            Err(EvidenceError::Stale { max: 3600, .. })
        ));
        assert!(matches!(
            judge(
                &report(-3600, true, CheckStatus::Pass),
                &key,
                &["0xaa", "0xbb"]
            ),
            Err(EvidenceError::Future(_))
        ));
        assert!(matches!(
            judge(&good, &key, &["0xaa"]),
            Err(EvidenceError::Keys {
                unproven: 0,
                unclaimed: 1
            })
        ));
        assert!(matches!(
            judge(&good, &key, &["0xaa", "0xbb", "0xcc"]),
            Err(EvidenceError::Keys {
                unproven: 1,
                unclaimed: 0
            })
        ));
        let mut overridden = good.clone();
        overridden.kind = crate::records::OVERRIDE_KIND.into();
        assert!(matches!(
            judge(&overridden, &key, &["0xaa", "0xbb"]),
            Err(EvidenceError::Kind(_))
        ));
    }
}
