//! Phase 2 of a prune: put unused packs in the trash, and repack mostly unused ones by
//! copying their used blobs, still sealed, into new packs.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use super::state::{prefix, read_index, State};
use super::{MaxUnused, PruneOptions, PruneReport};
use crate::keys::ChunkKey;
use crate::pack::{blob_slice, read_trailer, PackWriter};
use crate::repofile::{BlobKind, IndexFile, IndexedPack, PackedBlob, TrashRecord, FORMAT_VERSION};
use crate::{trash, FileType, Id, Progress, Repository, Result};

/// Packs per index file, as a backup writes them.
const PACKS_PER_INDEX: usize = 64;

pub(super) fn condemn(
    repo: &Repository,
    key: &ChunkKey,
    state: &mut State,
    opts: &PruneOptions,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<()> {
    let backend = repo.backend();
    let trashed_snapshots = state.trash.snapshots();
    let mut used = state.used(backend, &trashed_snapshots)?;
    let condemned_before = state.trash.packs();
    let trashed_indexes = state.trash.indexes();

    // The packs in play: present and not condemned yet.
    let mut candidates: Vec<(Id, u64)> = state
        .present
        .iter()
        .filter(|(id, _)| !condemned_before.contains(id))
        .map(|(id, size)| (*id, *size))
        .collect();
    candidates.sort();
    // Each used blob belongs to one copy: the one in the pack that is most used, so
    // duplicates (two backups storing the same blob) count as unused elsewhere. Taking
    // blobs out of the used set as they are owned also frees its memory as we go.
    let mut by_use: Vec<(Id, f64)> = candidates
        .iter()
        .filter_map(|(id, size)| {
            let e = state.packs.get(id)?;
            let used_bytes: u64 = e
                .blobs
                .iter()
                .filter(|(b, _)| used.contains(b))
                .map(|(_, l)| u64::from(*l))
                .sum();
            Some((*id, used_bytes as f64 / (*size).max(1) as f64))
        })
        .collect();
    by_use.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // Owned bytes per indexed pack; the owned prefixes of packs only partly owned.
    let mut owned: HashMap<Id, u64> = HashMap::new();
    let mut owned_blobs: HashMap<Id, HashSet<u64>> = HashMap::new();
    for (id, _) in &by_use {
        let e = &state.packs[id];
        let mut mine = Vec::new();
        let mut bytes = 0u64;
        for (b, l) in e.blobs.iter() {
            if used.remove(b) {
                mine.push(*b);
                bytes += u64::from(*l);
            }
        }
        if !mine.is_empty() && mine.len() < e.blobs.len() {
            owned_blobs.insert(*id, mine.into_iter().collect());
        }
        owned.insert(*id, bytes);
    }
    drop(used);

    let mut condemned: Vec<Id> = Vec::new();
    let mut partly: Vec<(Id, u64, u64)> = Vec::new(); // id, size, owned bytes
    let (mut total_used, mut total_unused) = (0u64, 0u64);
    for (id, size) in &candidates {
        report.packs += 1;
        report.pack_bytes += size;
        match owned.get(id) {
            // None: never indexed, a backup killed before its index (or still running;
            // then the purge finds its blobs needed and keeps the pack).
            None | Some(0) => {
                condemned.push(*id);
                report.condemned_bytes += size;
                total_unused += size;
            }
            Some(&mine) => {
                total_used += mine;
                total_unused += size.saturating_sub(mine);
                partly.push((*id, *size, mine));
            }
        }
    }
    report.condemned_packs = condemned.len();
    report.used_bytes = total_used;
    report.unused_bytes = total_unused;

    // Repack the emptiest packs until the unused space left is within the limit.
    let limit = match opts.max_unused {
        MaxUnused::Percent(p) => (total_used as f64 * p / 100.0) as u64,
        MaxUnused::Bytes(b) => b,
        MaxUnused::Unlimited => u64::MAX,
    };
    let mut unused_left: u64 = partly.iter().map(|(_, s, m)| s - m.min(s)).sum();
    partly.sort_by(|a, b| {
        let fa = (a.1 - a.2.min(a.1)) as f64 / a.1.max(1) as f64;
        let fb = (b.1 - b.2.min(b.1)) as f64 / b.1.max(1) as f64;
        fb.total_cmp(&fa).then(a.0.cmp(&b.0))
    });
    let mut repack: Vec<Id> = Vec::new();
    let mut budget = opts.max_repack.unwrap_or(u64::MAX);
    for (id, size, mine) in &partly {
        if unused_left <= limit {
            break;
        }
        let unused = size - mine.min(size);
        if unused == 0 || *mine > budget {
            continue;
        }
        budget -= mine;
        unused_left -= unused;
        report.repacked_bytes += mine;
        repack.push(*id);
    }
    report.repacked_packs = repack.len();
    report.unused_after = unused_left;
    if opts.dry_run || (condemned.is_empty() && repack.is_empty()) {
        return Ok(());
    }

    // New packs first, then the index files that list them and replace the old ones,
    // then the trash record: a kill at any point leaves duplicates at worst.
    progress.stage("repacking", repack.len() as u64, report.repacked_bytes);
    let mut new_packs: Vec<IndexedPack> = Vec::new();
    let mut writers: HashMap<BlobKind, PackWriter> = HashMap::new();
    let layout = repo.pack_layout();
    let pack_size = repo.config().pack_size;
    let flush = |w: PackWriter, out: &mut Vec<IndexedPack>| -> Result<()> {
        let pack = w.finish()?;
        match backend.put(&FileType::Pack.name(&pack.id), &pack.bytes) {
            Ok(()) | Err(vtool_transfer::BackendError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        out.push(IndexedPack {
            id: pack.id,
            size: pack.bytes.len() as u64,
            blobs: pack.blobs,
        });
        Ok(())
    };
    let mut unreadable: HashSet<Id> = HashSet::new();
    for id in &repack {
        let stored = backend.get(&FileType::Pack.name(id))?;
        // Never copy damage into a new pack: a pack that is not what its name says stays
        // where it is, for check to report.
        if Id::from(blake3::Hasher::new().update_rayon(&stored).finalize()) != *id {
            unreadable.insert(*id);
            state.notes.push(format!(
                "{} does not match its hash; not repacked",
                FileType::Pack.name(id)
            ));
            continue;
        }
        // The exact blobs, from the pack's own (plaintext, hashed) trailer.
        let mut mine = owned_blobs.remove(id).unwrap_or_default();
        let mut blobs: Vec<PackedBlob> = read_trailer(&stored)?
            .into_iter()
            .filter(|b| mine.remove(&prefix(&b.id)))
            .collect();
        blobs.sort_by_key(|b| b.offset);
        for b in blobs {
            let w = match writers.entry(b.kind) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(PackWriter::new(
                    layout,
                    &[],
                    pack_size as usize + (1 << 20),
                )?),
            };
            w.add_sealed(&b, blob_slice(&stored, &b)?)?;
            if w.len() >= pack_size {
                if let Some(full) = writers.remove(&b.kind) {
                    flush(full, &mut new_packs)?;
                }
            }
        }
        progress.advance(stored.len() as u64);
    }
    for (_, w) in writers.drain() {
        if !w.is_empty() {
            flush(w, &mut new_packs)?;
        }
    }
    report.new_packs = new_packs.len();
    report.written_bytes = new_packs.iter().map(|p| p.size).sum();

    let gone: HashSet<Id> = condemned
        .iter()
        .chain(repack.iter().filter(|id| !unreadable.contains(id)))
        .copied()
        .collect();
    let mut superseded: Vec<Id> = Vec::new();
    let mut carried: Vec<IndexedPack> = new_packs;
    let mut carried_ids: HashSet<Id> = carried.iter().map(|p| p.id).collect();
    for (id, packs) in &state.index_files {
        if trashed_indexes.contains(id) || !packs.iter().any(|p| gone.contains(p)) {
            continue;
        }
        // Re-read for the full entries of the packs that stay.
        let file = read_index(backend, id).map_err(crate::Error::Corrupt)?;
        superseded.push(*id);
        for p in file.packs {
            if !gone.contains(&p.id) && carried_ids.insert(p.id) {
                carried.push(p);
            }
        }
    }
    for group in carried.chunks(PACKS_PER_INDEX) {
        repo.save_index(&IndexFile {
            version: FORMAT_VERSION,
            packs: group.to_vec(),
            rebuilt: None,
        })?;
    }
    let mut packs: Vec<Id> = gone.into_iter().collect();
    packs.sort();
    superseded.sort();
    let record = TrashRecord {
        kind: "vtool-trash".into(),
        version: 1,
        time: OffsetDateTime::now_utc(),
        hostname: crate::hostname(),
        by: "prune".into(),
        snapshots: Vec::new(),
        packs,
        indexes: superseded,
    };
    report.trash = Some(trash::put(backend, key, &record)?.id);
    Ok(())
}
