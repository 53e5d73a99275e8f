//! Phase 1 of a prune: carry out trash records that are due.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;
use vtool_transfer::{Backend, BackendError};

use super::state::State;
use super::{Pending, PruneOptions, PruneReport, Purged};
use crate::pack::read_trailer;
use crate::repofile::{IndexFile, IndexedPack, WriterOutcome, FORMAT_VERSION};
use crate::trash::PendingTrash;
use crate::{trash, writers, FileType, Id, Progress, Repository, Result};

/// Remove the records of writers that ended with their snapshot stored, or stale: nothing
/// depends on them any more (a writer without a record counts as ended). Returns how many.
pub(super) fn remove_ended_writers(backend: &dyn Backend, state: &State) -> Result<usize> {
    let present: HashSet<Id> = state.snapshots.iter().map(|(id, _)| *id).collect();
    let mut removed = 0;
    for w in &state.writers {
        let Some(end) = &w.end else { continue };
        let done = match end.outcome {
            WriterOutcome::Stale => true,
            WriterOutcome::Finished => end.snapshot.is_some_and(|s| present.contains(&s)),
        };
        if done && remove_quietly(|| writers::remove(backend, &w.id)) {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Housekeeping on storage that may refuse deletes: a refusal here is reported by the
/// deletions that matter.
fn remove_quietly(f: impl FnOnce() -> Result<()>) -> bool {
    f().is_ok()
}

/// Whether a trash record may be carried out now, or why not. Stale writers it waits for
/// are declared so here (unless a dry run).
fn due(
    backend: &dyn Backend,
    t: &PendingTrash,
    state: &State,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<Option<String>> {
    let now = OffsetDateTime::now_utc();
    let Some(waiting) = &t.waiting else {
        return Ok(Some("its waiting record is not written yet".into()));
    };
    let ends_at = t.record.time + opts.grace;
    if now < ends_at {
        return Ok(Some(format!(
            "in its grace period until {} (undo with `vtool prune --undo`)",
            crate::format_time(ends_at)
        )));
    }
    let mut running = Vec::new();
    for id in &waiting.writers {
        let Some(w) = state.writers.iter().find(|w| w.id == *id) else {
            continue; // record removed: it ended
        };
        if w.ended() {
            continue;
        }
        let stale = w
            .record
            .as_ref()
            .is_none_or(|r| r.started + opts.writer_timeout < now);
        if stale && !opts.dry_run {
            writers::declare_stale(backend, id)?;
            report.writers_declared_stale += 1;
            // Declared, or it just finished: either way it has ended (a finished one's
            // refs are read below with the snapshots).
            continue;
        }
        running.push(id.short());
    }
    if running.is_empty() {
        Ok(None)
    } else {
        Ok(Some(format!(
            "waiting for backup(s) {} that started before it to end",
            running.join(", ")
        )))
    }
}

pub(super) fn purge(
    repo: &Repository,
    state: &mut State,
    opts: &PruneOptions,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<()> {
    let backend = repo.backend();
    let mut due_trash = Vec::new();
    for t in state.trash.pending.clone() {
        match due(backend, &t, state, opts, report)? {
            None => due_trash.push(t),
            Some(reason) => report.pending.push(Pending {
                trash: t.id,
                reason,
            }),
        }
    }
    if due_trash.is_empty() {
        return Ok(());
    }
    if report.writers_declared_stale > 0 {
        state.writers = writers::list(backend)?;
    }
    let leaving: HashSet<Id> = due_trash
        .iter()
        .flat_map(|t| t.record.snapshots.iter().copied())
        .collect();
    let used = state.used(backend, &leaving)?;
    let purged_indexes: HashSet<Id> = due_trash
        .iter()
        .flat_map(|t| t.record.indexes.iter().copied())
        .collect();
    let purged_packs: HashSet<Id> = due_trash
        .iter()
        .flat_map(|t| t.record.packs.iter().copied())
        .collect();

    // Blobs with a copy that outlives this purge, and what every pack holds.
    let mut safe: HashSet<Id> = HashSet::new();
    let mut listed: HashMap<Id, &IndexedPack> = HashMap::new();
    let mut surviving_listing: HashSet<Id> = HashSet::new();
    for (id, file) in &state.index_files {
        let survives = !purged_indexes.contains(id);
        for p in &file.packs {
            listed.entry(p.id).or_insert(p);
            if survives {
                surviving_listing.insert(p.id);
                if !purged_packs.contains(&p.id) && state.present.contains_key(&p.id) {
                    safe.extend(p.blobs.iter().map(|b| b.id));
                }
            }
        }
    }
    // Condemned packs that hold a needed blob no other copy has stay, listed by a new
    // index if the one listing them goes.
    let mut keep: HashSet<Id> = HashSet::new();
    let mut relist: Vec<IndexedPack> = Vec::new();
    for p in &purged_packs {
        if !state.present.contains_key(p) {
            continue;
        }
        let blobs = match listed.get(p) {
            Some(ip) => (*ip).clone(),
            // Never indexed (a backup killed, or one still running when it was condemned,
            // that has since written its snapshot): the plaintext trailer says.
            None => match trailer_of(backend, p, state.present[p]) {
                Some(blobs) => IndexedPack {
                    id: *p,
                    size: state.present[p],
                    blobs,
                },
                None => {
                    // What it holds cannot be told: it stays, and check reports it.
                    keep.insert(*p);
                    state.notes.push(format!(
                        "{} is condemned but its trailer cannot be read; kept",
                        FileType::Pack.name(p)
                    ));
                    continue;
                }
            },
        };
        if blobs
            .blobs
            .iter()
            .any(|b| used.contains(&b.id) && !safe.contains(&b.id))
        {
            keep.insert(*p);
            if !surviving_listing.contains(p) {
                relist.push(blobs);
            }
        }
    }
    if opts.dry_run {
        for t in &due_trash {
            report.purged.push(summary(t, state, &keep));
        }
        return Ok(());
    }
    if !relist.is_empty() {
        repo.save_index(&IndexFile {
            version: FORMAT_VERSION,
            packs: relist,
            rebuilt: None,
        })?;
    }

    let still_named: HashSet<Id> = state
        .snapshots
        .iter()
        .filter(|(id, _)| !leaving.contains(id))
        .filter_map(|(_, s)| s.refs)
        .chain(
            state
                .writers
                .iter()
                .filter_map(|w| w.end.as_ref().and_then(|e| e.refs)),
        )
        .collect();
    let total: u64 = due_trash.iter().map(|t| t.record.packs.len() as u64).sum();
    progress.stage("deleting trash", total, 0);
    for t in &due_trash {
        let done = summary(t, state, &keep);
        // Snapshots first, packs last: an undo racing this run can only bring back
        // snapshots whose data is still complete.
        let mut names: Vec<String> = Vec::new();
        for s in &t.record.snapshots {
            names.push(FileType::Snapshot.name(s));
            if let Some(r) = state
                .snapshots
                .iter()
                .find(|(id, _)| id == s)
                .and_then(|(_, s)| s.refs)
            {
                if !still_named.contains(&r) {
                    names.push(FileType::Refs.name(&r));
                }
            }
        }
        names.extend(t.record.indexes.iter().map(|i| FileType::Index.name(i)));
        for p in t.record.packs.iter().filter(|p| !keep.contains(p)) {
            names.push(FileType::Pack.name(p));
        }
        for name in names {
            match backend.delete(&name) {
                Ok(()) | Err(BackendError::NotFound(_)) => {}
                Err(e) => {
                    report.refused.push(format!("{name}: {e}"));
                    return Ok(());
                }
            }
            if name.starts_with("packs/") {
                progress.advance(0);
            }
        }
        if let Err(e) = trash::remove(backend, &t.id) {
            report
                .refused
                .push(format!("{}: {e}", FileType::Trash.name(&t.id)));
            return Ok(());
        }
        report.purged.push(done);
    }
    Ok(())
}

fn summary(t: &PendingTrash, state: &State, keep: &HashSet<Id>) -> Purged {
    let packs: Vec<&Id> = t
        .record
        .packs
        .iter()
        .filter(|p| !keep.contains(p))
        .collect();
    Purged {
        trash: t.id,
        snapshots: t.record.snapshots.len(),
        indexes: t.record.indexes.len(),
        packs: packs.len(),
        bytes: packs.iter().filter_map(|p| state.present.get(p)).sum(),
        kept_packs: t.record.packs.len() - packs.len(),
    }
}

/// The blobs a format 3 pack's plaintext trailer lists, read with two ranged reads.
fn trailer_of(
    backend: &dyn Backend,
    id: &Id,
    size: u64,
) -> Option<Vec<crate::repofile::PackedBlob>> {
    let name = FileType::Pack.name(id);
    let tail = backend.get_range(&name, size.checked_sub(4)?, 4).ok()?;
    let len = u64::from(u32::from_le_bytes(tail.as_slice().try_into().ok()?));
    let start = size.checked_sub(4)?.checked_sub(len)?;
    let mut data = backend.get_range(&name, start, len + 4).ok()?;
    // read_trailer takes the whole tail: trailer then its length.
    data.truncate((len + 4) as usize);
    read_trailer(&data).ok()
}
