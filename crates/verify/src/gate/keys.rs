//! The keys: the snapshot holds a keystore for every migrating pubkey, and a recent passed
//! drill of that fingerprint decrypted it.

use std::collections::BTreeMap;

use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::{CheckStatus, DrillRecord, GateCheck, KeyEvidence, Snapshot};

use super::check;

pub(super) fn keys_check(
    snap: &Snapshot,
    key: &ChunkKey,
    drills: &[(String, DrillRecord)],
    keys: &mut BTreeMap<String, KeyEvidence>,
) -> GateCheck {
    if snap.holds.is_empty() {
        return check(
            "keys",
            CheckStatus::Unknown,
            "the snapshot records no keystores (made by an older vtool, or without keys); back up again",
            Vec::new(),
        );
    }
    let (mut missing, mut unproven) = (Vec::new(), Vec::new());
    for (pubkey, e) in keys.iter_mut() {
        e.in_snapshot = snap
            .holds
            .contains(&key.held_fingerprint(&format!("keystore:{pubkey}")));
        e.proven_by_drill = drills
            .iter()
            .find(|(_, d)| d.proven_keys.iter().any(|p| p == pubkey))
            .and_then(|(name, _)| vtool_snapshot::FileType::DrillRecord.id_of(name));
        if !e.in_snapshot {
            e.problems.push("no keystore for it in the snapshot".into());
            missing.push(pubkey.clone());
        } else if e.proven_by_drill.is_none() {
            e.problems.push(
                "its keystore was not decrypted by a passed drill of this fingerprint".into(),
            );
            unproven.push(pubkey.clone());
        }
    }
    let total = keys.len();
    let mut evidence = Vec::new();
    if !missing.is_empty() {
        evidence.push(format!("not in the snapshot: {}", list(&missing)));
    }
    if !unproven.is_empty() {
        evidence.push(format!(
            "not proven by a drill: {} (run `vtool drill --prove-keys DIR`)",
            list(&unproven)
        ));
    }
    if missing.is_empty() && unproven.is_empty() {
        check(
            "keys",
            CheckStatus::Pass,
            &format!("all {total} keystore(s) are in the snapshot and were decrypted by a drill"),
            evidence,
        )
    } else {
        check(
            "keys",
            CheckStatus::Fail,
            &format!(
                "{} of {total} key(s) missing from the snapshot, {} not proven",
                missing.len(),
                unproven.len()
            ),
            evidence,
        )
    }
}

/// The first few of many keys, for one line.
pub(super) fn list(keys: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .map(|k| short(k))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    s
}

/// `0xa1b2c3d4…e5f6`: enough of a pubkey to find it in a list.
pub(super) fn short(pubkey: &str) -> String {
    match (
        pubkey.get(..10),
        pubkey.get(pubkey.len().saturating_sub(4)..),
    ) {
        (Some(head), Some(tail)) if pubkey.len() > 16 => format!("{head}…{tail}"),
        _ => pubkey.to_string(),
    }
}
