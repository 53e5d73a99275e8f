//! Reader threads: each takes the next changed file, reads and chunks it (resuming an
//! appended file after its unchanged prefix) and sends bounded batches of chunks and file
//! events down the pipeline.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::Sender;
use vtool_transfer::page_cache::DropBehind;

use super::resume::{resume, Resume};
use super::scan::{ctime_ns, mtime_ns};
use crate::chunker::{ChunkError, Chunker};
use crate::repofile::ChunkerParams;
use crate::Id;

/// Bytes of chunks a reader collects before it sends a batch.
const BATCH_BYTES: usize = 2 << 20;
/// Reading, whole-file hashing and chunking is serial per file; two readers keep both cores
/// busy while the other stages wait on each other.
pub(super) const READERS: usize = 2;

pub(super) enum Item {
    Chunk {
        file: usize,
        data: Vec<u8>,
    },
    /// Chunks of an appended file's unchanged prefix, already in the repository.
    Known {
        file: usize,
        ids: Vec<Id>,
        bytes: u64,
    },
    Event(FileEvent),
}

pub(super) struct ReadJob {
    pub(super) file: usize,
    pub(super) path: PathBuf,
    /// Size, mtime and ctime seen by the scan; any difference after reading means the
    /// file changed under us.
    pub(super) stamp: (u64, i64, i64),
    pub(super) resume: Option<Resume>,
}

/// The end of reading one file.
pub(super) enum FileEvent {
    Done {
        file: usize,
        size: u64,
        content: Id,
        changed: bool,
    },
    Failed {
        file: usize,
        message: String,
    },
}

/// A reader thread: take the next job's file, read and chunk it into bounded batches, until
/// none is left. A file is read by one reader, so its chunks arrive in order.
pub(super) fn read_files(
    jobs: &[ReadJob],
    next: &AtomicUsize,
    params: ChunkerParams,
    drop_pages: bool,
    tx: Sender<Vec<Item>>,
) {
    let mut chunker = Chunker::new(params);
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
        let item = match read_one(
            &mut chunker,
            job,
            drop_pages,
            &mut batch,
            &mut batch_bytes,
            &tx,
        ) {
            Ok(Some(item)) => item,
            Ok(None) => return, // the consumer stopped
            Err(message) => FileEvent::Failed {
                file: job.file,
                message,
            },
        };
        batch.push(Item::Event(item));
        if batch_bytes >= BATCH_BYTES || batch.len() >= 4096 {
            batch_bytes = 0;
            if tx.send(std::mem::take(&mut batch)).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
}

/// Read one file. `Ok(None)` means the consumer hung up; `Err` is a per-file problem.
fn read_one(
    chunker: &mut Chunker,
    job: &ReadJob,
    drop_pages: bool,
    batch: &mut Vec<Item>,
    batch_bytes: &mut usize,
    tx: &Sender<Vec<Item>>,
) -> std::result::Result<Option<FileEvent>, String> {
    let mut file = std::fs::File::open(&job.path).map_err(|e| e.to_string())?;
    let resumed = match &job.resume {
        Some(r) => resume(chunker, &mut file, r).map_err(|e| format!("read failed: {e}"))?,
        None => None,
    };
    let (hasher, skipped) = match (resumed, &job.resume) {
        (Some(hasher), Some(r)) => {
            batch.push(Item::Known {
                file: job.file,
                ids: r.kept.clone(),
                bytes: r.last_start,
            });
            (hasher, r.last_start)
        }
        _ => (blake3::Hasher::new(), 0),
    };
    let source = DropBehind::new(&file, skipped, drop_pages);
    let result = chunker.chunk_from(hasher, source, |data| {
        batch.push(Item::Chunk {
            file: job.file,
            data: data.to_vec(),
        });
        *batch_bytes += data.len();
        if *batch_bytes >= BATCH_BYTES {
            *batch_bytes = 0;
            tx.send(std::mem::take(batch)).map_err(|_| ())?;
        }
        Ok::<(), ()>(())
    });
    let (size, hash) = match result {
        Ok(v) => v,
        Err(ChunkError::Io(e)) => {
            // Chunks already queued for this file stay harmless: the file is left out.
            return Err(format!("read failed: {e}"));
        }
        Err(ChunkError::Emit(())) => return Ok(None),
    };
    let size = skipped + size;
    let after = file.metadata().map_err(|e| e.to_string())?;
    let now = (after.len(), mtime_ns(&after), ctime_ns(&after));
    Ok(Some(FileEvent::Done {
        file: job.file,
        size,
        content: hash.into(),
        changed: now != job.stamp || size != job.stamp.0,
    }))
}
