//! The backup proof: the snapshot authenticates and is fresh, a drill of the same fingerprint
//! passed recently, and enough locations hold that fingerprint with a recent passed
//! `check --packs`.

use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::{CheckRecord, CheckStatus, DrillRecord, GateCheck, Snapshot};
use vtool_snapshot::sealed::{Sealed, SealedKind};
use vtool_snapshot::time::OffsetDateTime;
use vtool_snapshot::{Id, Repository};

use super::{check, Location};
use crate::records::list_records;

/// How far ahead of our clock a record's time may be (another host's clock running fast).
pub(super) const CLOCK_SKEW: vtool_snapshot::time::Duration =
    vtool_snapshot::time::Duration::minutes(5);

/// How old evidence may be, measured from `now`: the one rule for the gate's evidence, the
/// restore guard's reports and custody evidence.
pub(crate) struct Freshness {
    pub now: OffsetDateTime,
    pub max_age: std::time::Duration,
}

impl Freshness {
    pub fn new(max_age: std::time::Duration) -> Freshness {
        Freshness {
            now: OffsetDateTime::now_utc(),
            max_age,
        }
    }

    pub fn fresh(&self, t: OffsetDateTime) -> bool {
        let age = self.now - t;
        // A record from the future (a clock ahead) is as suspect as a stale one.
        age >= -CLOCK_SKEW && age <= self.max_age
    }

    fn age(&self, t: OffsetDateTime) -> String {
        let secs = (self.now - t).whole_seconds();
        format!("{} ago", super::human_secs(secs))
    }
}

/// The snapshot itself: authenticated (the caller found it with the key) and fresh.
pub(super) fn snapshot_check(
    id: &Id,
    snap: &Sealed<Snapshot>,
    key: &ChunkKey,
    fresh: &Freshness,
) -> GateCheck {
    let evidence = vec![
        format!("snapshot {id}"),
        format!("fingerprint {}", snap.fingerprint),
        format!(
            "taken {} on {} ({})",
            vtool_snapshot::format_time(snap.time),
            snap.hostname,
            fresh.age(snap.time)
        ),
    ];
    if !snap.verify(SealedKind::Snapshot, key) {
        return check(
            "backup",
            CheckStatus::Fail,
            "the snapshot does not authenticate",
            evidence,
        );
    }
    if snap.is_incomplete() {
        return check(
            "backup",
            CheckStatus::Fail,
            "the snapshot is labelled incomplete (a live pre-copy, not a consistent backup)",
            evidence,
        );
    }
    if !fresh.fresh(snap.time) {
        return check(
            "backup",
            CheckStatus::Fail,
            &format!(
                "the snapshot is older than --max-age ({}); back up again",
                fresh.age(snap.time)
            ),
            evidence,
        );
    }
    check(
        "backup",
        CheckStatus::Pass,
        "the snapshot authenticates and is fresh",
        evidence,
    )
}

/// The passed, authentic drills of this fingerprint within the age limit, newest first.
pub(super) fn fresh_drills(
    repo: &Repository,
    key: &ChunkKey,
    fingerprint: &Id,
    fresh: &Freshness,
) -> Result<Vec<(String, DrillRecord)>, vtool_snapshot::Error> {
    let listing = list_records::<DrillRecord>(repo.backend(), Some(key))?;
    Ok(listing
        .records
        .into_iter()
        .filter(|d| d.authenticity == crate::Authenticity::Authentic)
        .filter(|d| d.record.passed && d.record.fingerprint == *fingerprint)
        .filter(|d| fresh.fresh(d.record.time))
        .map(|d| (d.name, d.record))
        .collect())
}

pub(super) fn drill_check(drills: &[(String, DrillRecord)], fresh: &Freshness) -> GateCheck {
    match drills.first() {
        Some((name, d)) => check(
            "drill",
            CheckStatus::Pass,
            "a drill of this fingerprint passed within --max-age",
            vec![format!(
                "{name}: passed {} on {} ({}), {} files verified",
                vtool_snapshot::format_time(d.time),
                d.hostname,
                fresh.age(d.time),
                d.restore.files
            )],
        ),
        None => check(
            "drill",
            CheckStatus::Fail,
            "no passed, authenticated drill of this fingerprint within --max-age; run `vtool drill` on it",
            Vec::new(),
        ),
    }
}

/// What one location proves: it holds the fingerprint, and a passed full `check --packs`
/// (or `--read-data`) of it, recorded there for this very location, is fresh.
fn location_holds(
    location: &Location,
    key: &ChunkKey,
    fingerprint: &Id,
    fresh: &Freshness,
) -> Result<String, String> {
    let listing = location
        .repo
        .snapshots()
        .map_err(|e| format!("cannot list snapshots: {e}"))?;
    let held: Vec<Id> = listing
        .objects
        .iter()
        .filter(|(_, s)| s.fingerprint == *fingerprint && s.verify(SealedKind::Snapshot, key))
        .map(|(id, _)| *id)
        .collect();
    if held.is_empty() {
        return Err("holds no authenticated snapshot with this fingerprint".into());
    }
    let checks = list_records::<CheckRecord>(location.repo.backend(), Some(key))
        .map_err(|e| format!("cannot list check records: {e}"))?;
    let good = checks.authentic().find(|c| {
        c.passed
            && c.subset.is_none()
            && (c.level == "packs" || c.level == "read-data")
            && c.location == location.name
            && fresh.fresh(c.time)
            && c.snapshots.iter().any(|s| held.contains(s))
    });
    match good {
        Some(c) => Ok(format!(
            "holds snapshot {}; `check --{}` passed {} ({}), {} packs",
            held[0].short(),
            c.level,
            vtool_snapshot::format_time(c.time),
            fresh.age(c.time),
            c.packs_checked
        )),
        None => Err(format!(
            "no passed, authenticated, full `check --packs` of this location within --max-age that covers the snapshot; run `vtool check --repo {} --packs --backup-key KEY`",
            location.name
        )),
    }
}

pub(super) fn copies_check(
    locations: &[Location],
    key: &ChunkKey,
    fingerprint: &Id,
    min_copies: u32,
    fresh: &Freshness,
) -> GateCheck {
    let mut evidence = Vec::new();
    let mut good = 0u32;
    for l in locations {
        match location_holds(l, key, fingerprint, fresh) {
            Ok(e) => {
                good += 1;
                evidence.push(format!("{}: {e}", l.name));
            }
            Err(e) => evidence.push(format!("{}: NOT PROVEN: {e}", l.name)),
        }
    }
    let status = if good >= min_copies {
        CheckStatus::Pass
    } else {
        CheckStatus::Fail
    };
    check(
        "copies",
        status,
        &format!(
            "{good} of {} location(s) proven to hold the fingerprint; {min_copies} required",
            locations.len()
        ),
        evidence,
    )
}
