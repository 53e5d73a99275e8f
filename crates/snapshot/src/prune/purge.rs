//! Phase 1 of a prune: carry out trash records that are due.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;
use vtool_transfer::Backend;

use super::retain;
use super::state::{prefix, read_index, State};
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
        // Housekeeping on storage that may refuse deletes: a refusal here is reported by
        // the deletions that matter.
        if done && writers::remove(backend, &w.id).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
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
    if let Some(retained) = retain::due_after(t.record.time, backend.retention_days()) {
        if now < retained {
            return Ok(Some(format!(
                "its objects are retained by the store's Object Lock until about {}",
                crate::format_time(retained)
            )));
        }
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
    let leaving = trash::union(&due_trash, |t| &t.snapshots);
    let used = state.used(backend, &leaving)?;
    let purged_indexes = trash::union(&due_trash, |t| &t.indexes);
    let purged_packs = trash::union(&due_trash, |t| &t.packs);
    let keep = still_needed(backend, state, &used, &purged_packs, &purged_indexes)?;
    drop(used);
    let keep_ids: HashSet<Id> = keep.iter().map(|(id, _)| *id).collect();
    let surviving_listing: HashSet<Id> = state
        .index_files
        .iter()
        .filter(|(id, _)| !purged_indexes.contains(id))
        .flat_map(|(_, packs)| packs.iter().copied())
        .collect();
    let relist: Vec<IndexedPack> = keep
        .into_iter()
        .filter_map(|(_, listing)| listing)
        .filter(|p| !surviving_listing.contains(&p.id))
        .collect();
    let keep = keep_ids;
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
    let doomed: Vec<&Id> = purged_packs.iter().filter(|p| !keep.contains(p)).collect();
    let bytes: u64 = doomed.iter().filter_map(|p| state.present.get(p)).sum();
    progress.stage("deleting trash", doomed.len() as u64, bytes);
    for t in &due_trash {
        let done = summary(t, state, &keep);
        // Snapshots first, packs last: an undo racing this run can only bring back
        // snapshots whose data is still complete. Each group is one batch where the store
        // batches deletes.
        let mut snapshots: Vec<String> = Vec::new();
        for s in &t.record.snapshots {
            snapshots.push(FileType::Snapshot.name(s));
            if let Some(r) = state
                .snapshots
                .iter()
                .find(|(id, _)| id == s)
                .and_then(|(_, s)| s.refs)
            {
                if !still_named.contains(&r) {
                    snapshots.push(FileType::Refs.name(&r));
                }
            }
        }
        let indexes: Vec<String> = t
            .record
            .indexes
            .iter()
            .map(|i| FileType::Index.name(i))
            .collect();
        let gone: Vec<&Id> = t
            .record
            .packs
            .iter()
            .filter(|p| !keep.contains(p))
            .collect();
        let packs: Vec<String> = gone.iter().map(|p| FileType::Pack.name(p)).collect();
        for group in [snapshots, indexes, packs] {
            if let Err(e) = backend.delete_many(&group) {
                let first = group.first().map_or("", String::as_str);
                report
                    .refused
                    .push(format!("{first} (one of {}): {e}", group.len()));
                return Ok(());
            }
        }
        progress.advance(gone.iter().filter_map(|p| state.present.get(p)).sum());
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

/// The condemned packs that must stay: those holding a needed blob that has no copy in a
/// pack this purge leaves in place and a surviving index lists, with their exact listing
/// (`None` when it cannot be read: such a pack stays, unlisted, for check to report).
/// Prefixes only choose candidates; the decision is made on full ids read again.
fn still_needed(
    backend: &dyn Backend,
    state: &mut State,
    used: &HashSet<u64>,
    purged_packs: &HashSet<Id>,
    purged_indexes: &HashSet<Id>,
) -> Result<Vec<(Id, Option<IndexedPack>)>> {
    let mut candidates: HashMap<Id, Option<IndexedPack>> = HashMap::new();
    let mut unlisted: Vec<Id> = Vec::new();
    for p in purged_packs {
        if !state.present.contains_key(p) {
            continue;
        }
        match state.packs.get(p) {
            Some(e) if !e.blobs.iter().any(|(b, _)| used.contains(b)) => {}
            Some(_) => {
                candidates.insert(*p, None);
            }
            None => unlisted.push(*p),
        }
    }
    let files: Vec<Id> = state
        .index_files
        .iter()
        .filter(|(_, packs)| packs.iter().any(|p| candidates.contains_key(p)))
        .map(|(id, _)| *id)
        .collect();
    for f in files {
        let Ok(file) = read_index(backend, &f) else {
            continue;
        };
        for p in file.packs {
            if let Some(c @ None) = candidates.get_mut(&p.id) {
                *c = Some(p);
            }
        }
    }
    for p in unlisted {
        // Never indexed (a backup killed, or one still running when it was condemned, that
        // has since written its snapshot): the plaintext trailer says what it holds.
        let size = state.present[&p];
        let listing = trailer_of(backend, &p, size).map(|blobs| IndexedPack { id: p, size, blobs });
        candidates.insert(p, listing);
    }
    let mut needed: HashSet<Id> = HashSet::new();
    for c in candidates.values().flatten() {
        needed.extend(
            c.blobs
                .iter()
                .filter(|b| used.contains(&prefix(&b.id)))
                .map(|b| b.id),
        );
    }
    // Copies that outlive this purge, looked for in the index files whose packs share a
    // prefix with a needed blob.
    let needed_prefixes: HashSet<u64> = needed.iter().map(prefix).collect();
    let survives = |p: &Id| !purged_packs.contains(p) && state.present.contains_key(p);
    let files: Vec<Id> = state
        .index_files
        .iter()
        .filter(|(id, packs)| {
            !purged_indexes.contains(id)
                && packs.iter().any(|p| {
                    survives(p)
                        && state.packs.get(p).is_some_and(|e| {
                            e.blobs.iter().any(|(b, _)| needed_prefixes.contains(b))
                        })
                })
        })
        .map(|(id, _)| *id)
        .collect();
    let mut safe: HashSet<Id> = HashSet::new();
    for f in files {
        let Ok(file) = read_index(backend, &f) else {
            continue;
        };
        for p in file.packs.iter().filter(|p| survives(&p.id)) {
            safe.extend(
                p.blobs
                    .iter()
                    .filter(|b| needed.contains(&b.id))
                    .map(|b| b.id),
            );
        }
    }
    let mut keep = Vec::new();
    for (id, listing) in candidates {
        match listing {
            None => {
                state.notes.push(format!(
                    "{} is condemned but what it holds cannot be read; kept",
                    FileType::Pack.name(&id)
                ));
                keep.push((id, None));
            }
            Some(l) => {
                if l.blobs
                    .iter()
                    .any(|b| needed.contains(&b.id) && !safe.contains(&b.id))
                {
                    keep.push((id, Some(l)));
                }
            }
        }
    }
    Ok(keep)
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
    // read_trailer takes the whole tail: the trailer, then its length.
    read_trailer(&backend.get_range(&name, start, len + 4).ok()?).ok()
}
