//! `forget`: apply retention rules per group of host and paths, guard the validator keys,
//! and put the snapshots to remove in the trash. Nothing is deleted here: a later `prune`
//! deletes what the trash holds once its grace period is over, and `prune --undo` takes it
//! back until then.

mod policy;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use time::OffsetDateTime;

pub use policy::{apply, Candidate, KeepPolicy, KeepReason, Verdict};

use crate::keys::ChunkKey;
use crate::repofile::{Snapshot, TrashRecord};
use crate::{trash, Error, Id, Repository, Result};

/// A group: host name and sorted paths.
type GroupKey = (String, Vec<String>);

/// What `forget` should do.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    pub policy: KeepPolicy,
    /// Only snapshots of these hosts (all when empty).
    pub hosts: Vec<String>,
    /// Only snapshots carrying one of these tags (all when empty).
    pub tags: Vec<String>,
    /// Only snapshots backing up one of these paths (all when empty).
    pub paths: Vec<String>,
    /// Let the rules remove the last snapshot that holds a validator key or slashing DB.
    pub allow_losing_keys: bool,
    /// Decide, but write nothing.
    pub dry_run: bool,
}

/// One group of snapshots (same host and paths) and what happens to each.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetGroup {
    pub hostname: String,
    pub paths: Vec<String>,
    /// Newest first.
    pub kept: Vec<Verdict>,
    pub removed: Vec<Verdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub groups: Vec<ForgetGroup>,
    /// The trash record written (none on a dry run or when nothing goes).
    pub trash: Option<Id>,
    pub dry_run: bool,
    /// Snapshots the rules would have removed but the key guard kept.
    pub guarded: usize,
    /// Keys and slashing DBs no remaining snapshot holds (with `allow_losing_keys`).
    pub holdings_lost: usize,
    /// Snapshot objects left alone because they are damaged or do not authenticate.
    pub skipped: Vec<String>,
}

impl ForgetReport {
    pub fn removed(&self) -> usize {
        self.groups.iter().map(|g| g.removed.len()).sum()
    }
}

/// Apply the retention rules and trash what they remove.
pub fn forget(repo: &Repository, key: &ChunkKey, opts: &ForgetOptions) -> Result<ForgetReport> {
    if opts.policy.is_empty() {
        return Err(Error::Usage(
            "no retention rule given, which would forget every snapshot; pass --keep-last, --keep-daily, … (see `vtool forget --help`)".into(),
        ));
    }
    let listing = repo.snapshots()?;
    let mut skipped: Vec<String> = listing.damaged.iter().map(|d| d.object.clone()).collect();
    let mut live: Vec<(Id, Snapshot)> = Vec::new();
    for (id, sealed) in listing.objects {
        if repo.verify_snapshot(&sealed, key).is_ok() {
            live.push((id, sealed.into_value()));
        } else {
            skipped.push(crate::FileType::Snapshot.name(&id));
        }
    }
    let selected = |s: &Snapshot| {
        (opts.hosts.is_empty() || opts.hosts.contains(&s.hostname))
            && (opts.tags.is_empty() || s.tags.iter().any(|t| opts.tags.contains(t)))
            && (opts.paths.is_empty() || s.paths.iter().any(|p| opts.paths.contains(p)))
    };
    let mut groups: BTreeMap<GroupKey, Vec<Candidate>> = BTreeMap::new();
    for (id, s) in live.iter().filter(|(_, s)| selected(s)) {
        let mut paths = s.paths.clone();
        paths.sort();
        groups
            .entry((s.hostname.clone(), paths))
            .or_default()
            .push(Candidate {
                id: *id,
                time: s.time,
                tags: s.tags.clone(),
            });
    }
    let mut verdicts: Vec<(GroupKey, Vec<Verdict>)> = groups
        .into_iter()
        .map(|(g, c)| {
            let v = apply(&opts.policy, &c);
            (g, v)
        })
        .collect();

    let (guarded, holdings_lost) = guard(&live, &mut verdicts, opts.allow_losing_keys);

    let mut report = ForgetReport {
        groups: Vec::new(),
        trash: None,
        dry_run: opts.dry_run,
        guarded,
        holdings_lost,
        skipped,
    };
    let mut removed_ids = Vec::new();
    for ((hostname, paths), v) in verdicts {
        let (kept, removed): (Vec<_>, Vec<_>) = v.into_iter().partition(|v| !v.reasons.is_empty());
        removed_ids.extend(removed.iter().map(|v| v.id));
        report.groups.push(ForgetGroup {
            hostname,
            paths,
            kept,
            removed,
        });
    }
    if !opts.dry_run && !removed_ids.is_empty() {
        removed_ids.sort();
        let record = TrashRecord {
            kind: "vtool-trash".into(),
            version: 1,
            time: OffsetDateTime::now_utc(),
            hostname: crate::hostname(),
            by: "forget".into(),
            snapshots: removed_ids,
            packs: Vec::new(),
            indexes: Vec::new(),
        };
        report.trash = Some(trash::put(repo.backend(), key, &record)?.id);
    }
    Ok(report)
}

/// Keep the newest snapshot of each holding (validator key, slashing DB) when the rules
/// would remove it: the newest copy of a slashing DB is the only safe one, and a key that
/// left the node stays restorable. Snapshots outside the filters always stay. Returns how
/// many snapshots the guard kept and, with `allow`, how many holdings no remaining
/// snapshot holds any more.
fn guard(
    live: &[(Id, Snapshot)],
    verdicts: &mut [(GroupKey, Vec<Verdict>)],
    allow: bool,
) -> (usize, usize) {
    let removed: HashSet<Id> = verdicts
        .iter()
        .flat_map(|(_, v)| v.iter().filter(|v| v.reasons.is_empty()).map(|v| v.id))
        .collect();
    // The newest snapshot holding each fingerprint, over the whole repository.
    let mut newest: HashMap<Id, (OffsetDateTime, Id)> = HashMap::new();
    for (id, s) in live {
        for h in &s.holds {
            let e = newest.entry(*h).or_insert((s.time, *id));
            if (s.time, *id) > *e {
                *e = (s.time, *id);
            }
        }
    }
    if allow {
        let survives: HashSet<Id> = live
            .iter()
            .filter(|(id, _)| !removed.contains(id))
            .flat_map(|(_, s)| s.holds.iter().copied())
            .collect();
        return (0, newest.keys().filter(|h| !survives.contains(h)).count());
    }
    let keep: HashSet<Id> = newest
        .values()
        .map(|(_, holder)| *holder)
        .filter(|holder| removed.contains(holder))
        .collect();
    for (_, v) in verdicts.iter_mut() {
        for v in v.iter_mut() {
            if keep.contains(&v.id) {
                v.reasons.push(KeepReason::HoldsKey);
            }
        }
    }
    (keep.len(), 0)
}
