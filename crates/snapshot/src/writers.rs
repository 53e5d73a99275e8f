//! Writer records: how a prune learns which backups may still reference what it is about
//! to delete, without ever blocking them.
//!
//! A backup creates `writers/<id>` before it reads the index. Just before it writes its
//! snapshot it creates `ends/<id>` naming the snapshot and its refs. A prune that waits too
//! long for a writer (a crashed or suspended backup) creates that same `ends/<id>` as
//! `stale`. Objects are created once and never overwritten, so exactly one of the two
//! succeeds: either the prune learns the refs it must keep, or the backup learns it was
//! given up on and writes no snapshot. Clocks only decide *when* a writer counts as stale,
//! never whether deleting is safe.

use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use vtool_transfer::{Backend, BackendError};

use crate::repofile::{WriterEnd, WriterOutcome, WriterRecord};
use crate::{Error, FileType, Id, Result};

/// Writer records and end markers are a few hundred bytes; anything larger is damage.
const MAX_SIZE: u64 = 64 * 1024;

/// A backup that announced itself.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    pub id: Id,
}

impl Writer {
    /// Create `writers/<random id>`; call before reading the index.
    pub fn announce(backend: &dyn Backend) -> Result<Writer> {
        let id = Id(rand::random());
        let record = WriterRecord {
            kind: "vtool-writer".into(),
            version: 1,
            hostname: crate::hostname(),
            pid: std::process::id(),
            started: OffsetDateTime::now_utc(),
        };
        put_json(backend, &FileType::Writer.name(&id), &record)?;
        Ok(Writer { id })
    }

    /// Claim the end of this writer for the snapshot about to be written. Fails with
    /// [`Error::Stale`] when a prune declared the writer stale first: the snapshot must then
    /// not be written, since what it references may be gone.
    pub fn finish(&self, backend: &dyn Backend, snapshot: Id, refs: Id) -> Result<()> {
        let end = WriterEnd {
            snapshot: Some(snapshot),
            refs: Some(refs),
            ..end_marker(
                WriterOutcome::Finished,
                OffsetDateTime::now_utc(),
                crate::hostname(),
            )
        };
        match put_json(backend, &FileType::WriterEnd.name(&self.id), &end) {
            Err(Error::Backend(BackendError::AlreadyExists(_))) => Err(Error::Stale(format!(
                "a prune gave up waiting for this backup (writer {}) and may have removed data it relies on, so no snapshot was written",
                self.id.short()
            ))),
            other => other,
        }
    }
}

/// A writer as a prune sees it.
#[derive(Debug, Clone)]
pub struct WriterState {
    pub id: Id,
    /// `None` when only the end marker is left (the record was cleaned up or damaged).
    pub record: Option<WriterRecord>,
    pub end: Option<WriterEnd>,
}

impl WriterState {
    pub fn ended(&self) -> bool {
        self.end.is_some()
    }
}

/// Every writer of the repository. Unreadable records count as running writers: a prune
/// waits for them rather than guess.
pub fn list(backend: &dyn Backend) -> Result<Vec<WriterState>> {
    let mut states: std::collections::BTreeMap<Id, WriterState> = Default::default();
    for obj in backend.list(FileType::Writer.dir())? {
        let Some(id) = FileType::Writer.id_of(&obj.name) else {
            continue;
        };
        let record = read_json::<WriterRecord>(backend, &obj.name, obj.size)?;
        states.insert(
            id,
            WriterState {
                id,
                record,
                end: None,
            },
        );
    }
    for obj in backend.list(FileType::WriterEnd.dir())? {
        let Some(id) = FileType::WriterEnd.id_of(&obj.name) else {
            continue;
        };
        let end = read_json::<WriterEnd>(backend, &obj.name, obj.size)?;
        let state = states.entry(id).or_insert(WriterState {
            id,
            record: None,
            end: None,
        });
        // An end marker that does not parse still ends the writer: nobody can create it
        // again, and the backup only writes its snapshot after creating it itself.
        state.end = Some(end.unwrap_or_else(|| {
            end_marker(
                WriterOutcome::Stale,
                OffsetDateTime::UNIX_EPOCH,
                String::new(),
            )
        }));
    }
    Ok(states.into_values().collect())
}

/// Declare a writer stale. `Ok(true)` when this call ended it; `Ok(false)` when it had
/// ended already (the backup finished first: read its end marker for the refs).
pub fn declare_stale(backend: &dyn Backend, id: &Id) -> Result<bool> {
    let end = end_marker(
        WriterOutcome::Stale,
        OffsetDateTime::now_utc(),
        crate::hostname(),
    );
    match put_json(backend, &FileType::WriterEnd.name(id), &end) {
        Ok(()) => Ok(true),
        Err(Error::Backend(BackendError::AlreadyExists(_))) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove an ended writer's objects, record first: a writer without a record but with
/// its end is still ended.
pub fn remove(backend: &dyn Backend, id: &Id) -> Result<()> {
    for name in [FileType::Writer.name(id), FileType::WriterEnd.name(id)] {
        match backend.delete(&name) {
            Ok(()) | Err(BackendError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// An end marker naming no snapshot (a finished one adds its snapshot and refs).
fn end_marker(outcome: WriterOutcome, time: OffsetDateTime, hostname: String) -> WriterEnd {
    WriterEnd {
        kind: "vtool-writer-end".into(),
        version: 1,
        outcome,
        time,
        hostname,
        snapshot: None,
        refs: None,
    }
}

fn put_json<T: serde::Serialize>(backend: &dyn Backend, name: &str, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    backend.put(name, &data)?;
    Ok(())
}

/// `Ok(None)` for an object that is too large, does not parse or vanished.
fn read_json<T: DeserializeOwned>(
    backend: &dyn Backend,
    name: &str,
    size: u64,
) -> Result<Option<T>> {
    if size > MAX_SIZE {
        return Ok(None);
    }
    match backend.get(name) {
        Ok(data) => Ok(serde_json::from_slice(&data).ok()),
        Err(BackendError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_backup_and_prune_ends_a_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = vtool_transfer::LocalBackend::create(dir.path()).expect("backend");
        let (snap, refs) = (Id::hash(b"snapshot"), Id::hash(b"refs"));

        // The prune first: the backup learns it and must not write its snapshot.
        let late = Writer::announce(&backend).expect("announce");
        assert!(declare_stale(&backend, &late.id).expect("declare"));
        match late.finish(&backend, snap, refs) {
            Err(Error::Stale(_)) => {}
            other => panic!("a writer declared stale finished: {other:?}"),
        }

        // The backup first: the prune learns its refs instead.
        let done = Writer::announce(&backend).expect("announce");
        done.finish(&backend, snap, refs).expect("finish");
        assert!(!declare_stale(&backend, &done.id).expect("declare"));

        let running = Writer::announce(&backend).expect("announce");
        let states = list(&backend).expect("list");
        let state = |id: &Id| states.iter().find(|s| s.id == *id).expect("listed");
        assert_eq!(
            state(&late.id).end.as_ref().map(|e| e.outcome),
            Some(WriterOutcome::Stale)
        );
        let end = state(&done.id).end.clone().expect("ended");
        assert_eq!(
            (end.outcome, end.snapshot, end.refs),
            (WriterOutcome::Finished, Some(snap), Some(refs))
        );
        assert!(!state(&running.id).ended());
        assert!(state(&running.id).record.is_some());
    }
}
