//! The chain side of the gate: the old signer proven offline on every beacon node, and
//! finality past everything it signed.

use std::collections::BTreeMap;

use vtool_snapshot::repofile::{CheckStatus, EpochLiveness, GateCheck, KeyEvidence};
use vtool_validator::beacon::BeaconClient;
use vtool_validator::liveness::{
    watch, LivenessEvent, LivenessMode, LivenessOptions, LivenessReport,
};

use super::check;
use super::keys::list;

/// Each node's genesis validators root, or `None` when it could not be read.
pub(super) fn genesis_roots(nodes: &[BeaconClient]) -> Vec<(String, Option<String>)> {
    nodes
        .iter()
        .map(|n| {
            let root = n.genesis().ok().map(|g| g.genesis_validators_root);
            (n.url().to_string(), root)
        })
        .collect()
}

pub(super) struct Watched {
    pub check: GateCheck,
    pub report: Option<LivenessReport>,
}

/// Watch `epochs` completed epochs; pass only when every key was offline on every node for
/// all of them.
pub(super) fn offline_check(
    nodes: &[BeaconClient],
    pubkeys: &[String],
    epochs: u64,
    keys: &mut BTreeMap<String, KeyEvidence>,
    progress: &mut dyn FnMut(&LivenessEvent),
) -> Watched {
    let mut warnings = Vec::new();
    if nodes.len() == 1 {
        warnings.push(
            "only one beacon node: a node that misses attestations would make a live signer look offline; give two or more --beacon"
                .into(),
        );
    }
    if nodes.is_empty() {
        return Watched {
            check: check(
                "offline",
                CheckStatus::Unknown,
                "no --beacon node given: the old signer cannot be proven offline",
                Vec::new(),
            ),
            report: None,
        };
    }
    let opts = LivenessOptions {
        nodes: nodes.to_vec(),
        pubkeys: pubkeys.to_vec(),
        epochs,
        mode: LivenessMode::Offline,
        until_offline: false,
        timeout: None,
    };
    let report = match watch(&opts, progress) {
        Ok(r) => r,
        Err(e) => {
            let mut c = check(
                "offline",
                CheckStatus::Unknown,
                &format!("the liveness watch could not run: {e}"),
                Vec::new(),
            );
            c.warnings = warnings;
            return Watched {
                check: c,
                report: None,
            };
        }
    };
    let by_index: BTreeMap<u64, &str> = report
        .keys
        .iter()
        .filter_map(|k| k.index.map(|i| (i, k.pubkey.as_str())))
        .collect();
    for k in &report.keys {
        let Some(e) = keys.get_mut(&k.pubkey) else {
            continue;
        };
        e.index = k.index;
        e.status = k.status.clone();
        for r in &k.reasons {
            e.problems.push(match r.epoch {
                Some(epoch) => format!("{} in epoch {epoch}: {}", r.node, r.reason),
                None => format!("{}: {}", r.node, r.reason),
            });
        }
    }
    for o in &report.observations {
        for (index, pubkey) in &by_index {
            if let Some(e) = keys.get_mut(*pubkey) {
                e.liveness.push(EpochLiveness {
                    epoch: o.epoch,
                    node: o.node.clone(),
                    live: o.error.is_none().then(|| o.live_indices.contains(index)),
                });
            }
        }
    }
    let unproven: Vec<String> = report
        .keys
        .iter()
        .filter(|k| !k.proven)
        .map(|k| k.pubkey.clone())
        .collect();
    let evidence = vec![format!(
        "epochs {}..{} watched on {} node(s); last epoch a key was seen live: {}",
        report
            .first_epoch
            .map(|e| e.to_string())
            .unwrap_or("-".into()),
        report
            .last_epoch
            .map(|e| e.to_string())
            .unwrap_or("-".into()),
        nodes.len(),
        report
            .last_live_epoch
            .map(|e| e.to_string())
            .unwrap_or_else(|| "none".into())
    )];
    let mut c = if report.proven && unproven.is_empty() {
        check(
            "offline",
            CheckStatus::Pass,
            &format!(
                "all {} key(s) offline on every node for {epochs} consecutive epoch(s)",
                pubkeys.len()
            ),
            evidence,
        )
    } else {
        check(
            "offline",
            CheckStatus::Fail,
            &format!(
                "{} key(s) not proven offline: {}",
                unproven.len(),
                list(&unproven)
            ),
            evidence,
        )
    };
    c.warnings = warnings;
    Watched {
        check: c,
        report: Some(report),
    }
}

pub(super) struct Finality {
    pub check: GateCheck,
    pub finalized_epoch: Option<u64>,
}

/// The lowest finalized epoch over the nodes must be above the highest attestation target
/// in the interchange and the last epoch any key was seen live: only then can no fork
/// revive a vote the new host's slashing protection does not know.
pub(super) fn finality_check(
    nodes: &[BeaconClient],
    max_target_epoch: Option<u64>,
    last_live_epoch: Option<u64>,
) -> Finality {
    let mut evidence = Vec::new();
    let mut lowest: Option<u64> = None;
    let mut unreadable = Vec::new();
    for n in nodes {
        match n.finality() {
            Ok(f) => {
                evidence.push(format!(
                    "{}: finalized epoch {}",
                    n.url(),
                    f.finalized.epoch
                ));
                lowest = Some(lowest.map_or(f.finalized.epoch, |l| l.min(f.finalized.epoch)));
            }
            Err(e) => unreadable.push(format!("{}: {e}", n.url())),
        }
    }
    let must_pass = max_target_epoch.max(last_live_epoch);
    evidence.push(format!(
        "highest target epoch in the interchange: {}; last live epoch: {}",
        max_target_epoch
            .map(|e| e.to_string())
            .unwrap_or("none".into()),
        last_live_epoch
            .map(|e| e.to_string())
            .unwrap_or("none seen".into())
    ));
    let (status, summary) = match (lowest, unreadable.is_empty()) {
        (None, _) | (_, false) => (
            CheckStatus::Unknown,
            format!(
                "finality could not be read from every node: {}",
                unreadable.join("; ")
            ),
        ),
        (Some(f), true) if must_pass.is_none_or(|m| f > m) => (
            CheckStatus::Pass,
            format!("finalized epoch {f} is past everything the old signer signed"),
        ),
        (Some(f), true) => (
            CheckStatus::Fail,
            format!(
                "finalized epoch {f} is not past epoch {}; wait for finality and run the gate again",
                must_pass.unwrap_or_default()
            ),
        ),
    };
    Finality {
        check: check("finality", status, &summary, evidence),
        finalized_epoch: lowest,
    }
}
