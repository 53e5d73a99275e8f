//! Slashing protection: the interchange the new host will import covers every migrating key,
//! is for the chain the beacon nodes follow, is format version 5 and holds nothing slashable.

use std::collections::BTreeMap;
use std::path::Path;

use vtool_snapshot::repofile::{
    CheckStatus, GateCheck, InterchangeEvidence, KeyEvidence, SlashingRange,
};
use vtool_validator::slashing::{summarize, Interchange};

use super::check;
use super::keys::list;

/// What the slashing check found, for the finality check and the report.
pub(super) struct SlashingFacts {
    pub check: GateCheck,
    pub evidence: Option<InterchangeEvidence>,
    /// The highest attestation target epoch over the migrating keys.
    pub max_target_epoch: Option<u64>,
}

/// `chain_roots`: each beacon node's genesis validators root (`0x…`), as far as known.
pub(super) fn slashing_check(
    path: Option<&Path>,
    chain_roots: &[(String, Option<String>)],
    keys: &mut BTreeMap<String, KeyEvidence>,
) -> SlashingFacts {
    let fail = |status, summary: String, evidence| SlashingFacts {
        check: check("slashing", status, &summary, evidence),
        evidence: None,
        max_target_epoch: None,
    };
    let Some(path) = path else {
        return fail(
            CheckStatus::Unknown,
            "no --slashing interchange given: the new host's slashing protection is unproven"
                .into(),
            Vec::new(),
        );
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                CheckStatus::Unknown,
                format!("cannot read {}: {e}", path.display()),
                Vec::new(),
            )
        }
    };
    // The hash of the exact bytes the new host will import, never of a re-serialization.
    let blake3 = blake3::hash(&bytes).to_hex().to_string();
    let parsed = std::str::from_utf8(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|text| Interchange::from_json_str(text).map_err(|e| e.to_string()));
    let interchange = match parsed {
        Ok(i) => i,
        Err(e) => {
            let status = if e.contains("interchange_format_version") {
                CheckStatus::Fail
            } else {
                CheckStatus::Unknown
            };
            return fail(status, format!("{}: {e}", path.display()), Vec::new());
        }
    };
    let root = interchange.metadata.genesis_validators_root.to_string();
    let evidence_obj = InterchangeEvidence {
        blake3: blake3.clone(),
        format_version: interchange.metadata.interchange_format_version.clone(),
        genesis_validators_root: root.clone(),
    };
    let mut evidence = vec![
        format!("{} (blake3 {blake3})", path.display()),
        format!("genesis validators root {root}"),
    ];
    let mut problems = Vec::new();

    let mut wrong_chain = Vec::new();
    let mut unknown_chain = Vec::new();
    for (node, node_root) in chain_roots {
        match node_root {
            Some(r) if *r == root => {}
            Some(r) => wrong_chain.push(format!("{node} follows {r}")),
            None => unknown_chain.push(node.clone()),
        }
    }
    if chain_roots.is_empty() {
        unknown_chain.push("no beacon node given".into());
    }
    if !wrong_chain.is_empty() {
        problems.push(format!(
            "validators root mismatch: the interchange is for {root}, {}",
            wrong_chain.join(", ")
        ));
    }

    let summary = summarize(&interchange);
    let mut ranges: BTreeMap<String, SlashingRange> = BTreeMap::new();
    for v in &interchange.data {
        let r = ranges.entry(v.pubkey.to_string()).or_default();
        r.blocks += v.signed_blocks.len() as u64;
        r.attestations += v.signed_attestations.len() as u64;
        for b in &v.signed_blocks {
            widen(&mut r.min_slot, &mut r.max_slot, b.slot);
        }
        for a in &v.signed_attestations {
            widen(
                &mut r.min_source_epoch,
                &mut r.max_source_epoch,
                a.source_epoch,
            );
            widen(
                &mut r.min_target_epoch,
                &mut r.max_target_epoch,
                a.target_epoch,
            );
        }
    }
    let slashable: BTreeMap<String, String> = summary
        .keys
        .iter()
        .filter(|k| !k.slashable.is_empty())
        .map(|k| {
            let what = k
                .slashable
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            (k.pubkey.to_string(), what)
        })
        .collect();
    let mut uncovered = Vec::new();
    let mut max_target_epoch = None;
    for (pubkey, e) in keys.iter_mut() {
        match ranges.get(pubkey) {
            Some(r) => {
                e.slashing = Some(r.clone());
                max_target_epoch = max_target_epoch.max(r.max_target_epoch);
            }
            None => {
                e.problems
                    .push("not in the slashing-protection interchange".into());
                uncovered.push(pubkey.clone());
            }
        }
        if let Some(what) = slashable.get(pubkey) {
            e.problems
                .push(format!("slashable data in the interchange: {what}"));
        }
    }
    if !uncovered.is_empty() {
        problems.push(format!(
            "{} key(s) missing from the interchange: {}",
            uncovered.len(),
            list(&uncovered)
        ));
    }
    if !slashable.is_empty() {
        let keys: Vec<String> = slashable.keys().cloned().collect();
        problems.push(format!(
            "slashable data for {} key(s): {}",
            keys.len(),
            list(&keys)
        ));
    }
    if let Some(t) = max_target_epoch {
        evidence.push(format!("highest attestation target epoch {t}"));
    }
    let (status, summary) = if !problems.is_empty() {
        (CheckStatus::Fail, problems.join("; "))
    } else if !unknown_chain.is_empty() {
        (
            CheckStatus::Unknown,
            format!(
                "cannot compare the validators root with the chain: {}",
                unknown_chain.join(", ")
            ),
        )
    } else {
        (
            CheckStatus::Pass,
            format!(
                "version 5, covers all {} key(s), nothing slashable, same chain as every beacon node",
                keys.len()
            ),
        )
    };
    SlashingFacts {
        check: check("slashing", status, &summary, evidence),
        evidence: Some(evidence_obj),
        max_target_epoch,
    }
}

fn widen(min: &mut Option<u64>, max: &mut Option<u64>, v: u64) {
    *min = Some(min.map_or(v, |m| m.min(v)));
    *max = Some(max.map_or(v, |m| m.max(v)));
}
