//! Trash: what `forget` and `prune` marked for deletion, pending until a later prune
//! deletes it (after the grace period, once every writer it waits for has ended) or
//! `prune --undo` takes it back. See `doc/FORMAT.md`, "Forget and prune".

use std::collections::HashSet;

use time::OffsetDateTime;
use vtool_transfer::{Backend, BackendError};

use crate::keys::ChunkKey;
use crate::repofile::{TrashRecord, WaitingRecord};
use crate::sealed::{list_sealed, seal, SealedKind};
use crate::{writers, FileType, Id, Result};

/// Trash and waiting records are small lists of ids.
const MAX_SIZE: u64 = 64 << 20;

/// One pending trash record and, once written, the writers it waits for.
#[derive(Debug, Clone)]
pub struct PendingTrash {
    pub id: Id,
    pub record: TrashRecord,
    pub waiting: Option<WaitingRecord>,
}

/// Every pending trash record that authenticates with the chunk key. Records that do not
/// are not the work of a key holder and are ignored (and listed, for the report).
#[derive(Debug, Clone, Default)]
pub struct Trash {
    pub pending: Vec<PendingTrash>,
    /// Trash or waiting objects that are damaged or do not authenticate.
    pub rejected: Vec<String>,
}

impl Trash {
    pub fn load(backend: &dyn Backend, key: &ChunkKey) -> Result<Trash> {
        let mut trash = Trash::default();
        let records = list_sealed::<TrashRecord>(backend, FileType::Trash, MAX_SIZE)?;
        trash
            .rejected
            .extend(records.damaged.into_iter().map(|d| d.object));
        let waits = list_sealed::<WaitingRecord>(backend, FileType::Waiting, MAX_SIZE)?;
        trash
            .rejected
            .extend(waits.damaged.into_iter().map(|d| d.object));
        let mut waiting = std::collections::HashMap::new();
        for (_, w) in waits.objects {
            if !w.verify(SealedKind::Waiting, key) {
                trash.rejected.push(FileType::Waiting.name(&w.trash));
                continue;
            }
            let w = w.into_value();
            waiting.insert(w.trash, w);
        }
        for (id, t) in records.objects {
            if !t.verify(SealedKind::Trash, key) || t.kind != "vtool-trash" {
                trash.rejected.push(FileType::Trash.name(&id));
                continue;
            }
            trash.pending.push(PendingTrash {
                id,
                record: t.into_value(),
                waiting: waiting.remove(&id),
            });
        }
        trash.pending.sort_by_key(|t| t.record.time);
        Ok(trash)
    }

    /// Snapshots marked by forget: hidden from listings, restorable until purged.
    pub fn snapshots(&self) -> HashSet<Id> {
        union(&self.pending, |t| &t.snapshots)
    }

    /// Packs marked by prune: backups no longer deduplicate against them.
    pub fn packs(&self) -> HashSet<Id> {
        union(&self.pending, |t| &t.packs)
    }

    /// Index files superseded by a prune.
    pub fn indexes(&self) -> HashSet<Id> {
        union(&self.pending, |t| &t.indexes)
    }
}

/// One list of every record of `pending` together (`field` picks which).
pub fn union(pending: &[PendingTrash], field: impl Fn(&TrashRecord) -> &Vec<Id>) -> HashSet<Id> {
    pending
        .iter()
        .flat_map(|t| field(&t.record).iter().copied())
        .collect()
}

/// The snapshots any parseable trash record names, without a key (listings need none).
pub fn listed_snapshots(backend: &dyn Backend) -> Result<HashSet<Id>> {
    let records = list_sealed::<TrashRecord>(backend, FileType::Trash, MAX_SIZE)?;
    Ok(records
        .objects
        .iter()
        .flat_map(|(_, t)| t.snapshots.iter().copied())
        .collect())
}

/// Write a trash record, then the writers it waits for (every writer not ended once the
/// record is visible: a writer that starts later reads the record before the index).
pub fn put(backend: &dyn Backend, key: &ChunkKey, record: &TrashRecord) -> Result<PendingTrash> {
    let data = seal(SealedKind::Trash, record, key)?;
    let id = match FileType::Trash.store(backend, &data) {
        Ok(id) => id,
        Err(BackendError::AlreadyExists(_)) => Id::hash(&data),
        Err(e) => return Err(e.into()),
    };
    let waiting = put_waiting(backend, key, &id)?;
    Ok(PendingTrash {
        id,
        record: record.clone(),
        waiting: Some(waiting),
    })
}

/// Write the waiting record of trash `id` (also how a prune completes a trash record
/// whose writer was killed before writing it).
pub fn put_waiting(backend: &dyn Backend, key: &ChunkKey, id: &Id) -> Result<WaitingRecord> {
    let running: Vec<Id> = writers::list(backend)?
        .into_iter()
        .filter(|w| !w.ended())
        .map(|w| w.id)
        .collect();
    let waiting = WaitingRecord {
        kind: "vtool-waiting".into(),
        version: 1,
        trash: *id,
        time: OffsetDateTime::now_utc(),
        writers: running,
    };
    let data = seal(SealedKind::Waiting, &waiting, key)?;
    match backend.put(&FileType::Waiting.name(id), &data) {
        // Already there: another run wrote it first, and the stored one is what counts
        // (every later load reads it).
        Ok(()) | Err(BackendError::AlreadyExists(_)) => Ok(waiting),
        Err(e) => Err(e.into()),
    }
}

/// Remove a trash record's objects, waiting record first: a trash record without one is
/// completed by the next prune, never acted on.
pub fn remove(backend: &dyn Backend, id: &Id) -> Result<()> {
    for name in [FileType::Waiting.name(id), FileType::Trash.name(id)] {
        match backend.delete(&name) {
            Ok(()) | Err(BackendError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
