//! The backup engine.
//!
//! A bounded pipeline: reader threads take the files that changed one at a time, cut them
//! into chunks and hash their content; the rayon pool names chunks (keyed BLAKE3), drops duplicates and
//! compresses the new ones; a packer thread encrypts blobs into packs and an uploader thread
//! stores finished packs (so encryption goes on while a pack is fsynced or sent). Memory is
//! bounded by the channel capacities, not by the data size. Packs are stored before the
//! index files that list them, and the snapshot object is written last.

use std::collections::{BTreeMap, HashSet};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use rayon::prelude::*;
use serde::Serialize;

use crate::blob::{self, EncodedBlob};
use crate::cache::{Cache, FilesCache};
use crate::chunker::{ChunkError, Chunker};
use crate::index::MasterIndex;
use crate::keys::BackupKey;
use crate::pack::{pack_name, FinishedPack, PackWriter};
use crate::repofile::{
    BlobKind, CachedFile, IndexFile, IndexedPack, Node, NodeKind, Snapshot, SnapshotSummary, Tree,
    FORMAT_VERSION,
};
use crate::scan::{scan, Entry, Scan};
use crate::{merkle, tree, Error, Id, Repository, Result};

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    /// Glob patterns matched against the absolute path and the file name.
    pub excludes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Base directory of the local cache; `None` disables it.
    pub cache_base: Option<PathBuf>,
}

/// Something the user should know about, without stopping the backup.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub path: String,
    pub message: String,
}

/// Receives progress while a backup runs. Called from one thread at a time.
pub trait BackupProgress: Sync {
    fn scanned(&self, _files: u64, _bytes_to_read: u64) {}
    fn read(&self, _bytes: u64) {}
    fn warn(&self, _warning: &Warning) {}
}

/// Progress sink that ignores everything.
pub struct NoProgress;
impl BackupProgress for NoProgress {}

/// The outcome of a backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub snapshot_id: Id,
    pub snapshot: Snapshot,
    pub warnings: Vec<Warning>,
    pub files_read: u64,
    pub files_unchanged: u64,
    pub new_blobs: u64,
    /// Stale temporary files of interrupted writers, removed before this backup started.
    pub temp_cleanup: vtool_transfer::TempCleanup,
}

const BATCH_BYTES: usize = 2 << 20;
const PACKS_PER_INDEX: usize = 64;
/// Reading, whole-file hashing and chunking is serial per file; two readers keep both cores
/// busy while the other stages wait on each other.
const READERS: usize = 2;

enum Item {
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

struct ReadJob {
    file: usize,
    path: PathBuf,
    /// Size, mtime and ctime seen by the scan; any difference after reading means the
    /// file changed under us.
    stamp: (u64, i64, i64),
    resume: Option<Resume>,
}

/// A file that grew in place since the last backup (same inode). Chain data is mostly
/// appended to (freezer, static files), so if the old content is still its prefix only the
/// old last chunk onwards is cut and named again: the prefix is only hashed, to prove it
/// unchanged (FastCDC cuts depend only on the bytes since the previous cut, so the old cuts
/// stand; the last one was made by the end of the file).
struct Resume {
    old_size: u64,
    old_content: Id,
    /// Old chunks but the last, reused as they are.
    kept: Vec<Id>,
    /// Where the old last chunk started.
    last_start: u64,
}

impl Resume {
    fn for_file(e: &Entry, c: &CachedFile, index: &MasterIndex) -> Option<Resume> {
        if c.ino != e.ino || c.size >= e.size || c.chunks.len() < 2 {
            return None;
        }
        let mut lengths = Vec::with_capacity(c.chunks.len());
        for id in &c.chunks {
            lengths.push(u64::from(index.get(id)?.blob.raw_length));
        }
        let last_start = c.size.checked_sub(*lengths.last()?)?;
        // A cache row whose chunks do not add up is not trusted.
        if lengths[..lengths.len() - 1].iter().sum::<u64>() != last_start {
            return None;
        }
        Some(Resume {
            old_size: c.size,
            old_content: c.content,
            kept: c.chunks[..c.chunks.len() - 1].to_vec(),
            last_start,
        })
    }
}

/// The end of reading one file.
enum FileEvent {
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

struct NewBlob {
    id: Id,
    blob: EncodedBlob,
}

/// Back up `opts.paths` into `repo`, holding only the backup key.
pub fn backup(
    repo: &Repository,
    key: &BackupKey,
    opts: &BackupOptions,
    progress: &dyn BackupProgress,
) -> Result<BackupReport> {
    let started = Instant::now();
    repo.check_backup_key(key)?;
    // Housekeeping, best effort: a backup never fails over another run's leftovers.
    let temp_cleanup = vtool_transfer::clean_stale_temp(repo.backend());
    let cache = opts
        .cache_base
        .as_ref()
        .and_then(|base| Cache::open(base, &repo.config().id));
    let index = repo.load_index(cache.as_ref())?;
    let old_files = cache.as_ref().map(Cache::load_files).unwrap_or_default();

    let mut scan = scan(&opts.paths, &opts.excludes)?;
    let mut warnings = std::mem::take(&mut scan.warnings);
    warnings.extend(index.damaged.iter().map(|why| Warning {
        path: "repository index".into(),
        message: format!("{why}; ignored (run `vtool check`)"),
    }));
    for w in &warnings {
        progress.warn(w);
    }
    let mut to_read = Vec::new();
    let mut files_unchanged = 0;
    for (i, e) in scan.entries.iter_mut().enumerate() {
        if e.kind != NodeKind::File {
            continue;
        }
        match old_files.get(&e.path_key()) {
            Some(c) if e.matches_cache(c) && c.chunks.iter().all(|id| index.contains(id)) => {
                e.content = Some(c.content);
                e.chunks = c.chunks.clone();
                e.cacheable = true;
                files_unchanged += 1;
            }
            Some(c) => to_read.push((i, Resume::for_file(e, c, &index))),
            None => to_read.push((i, None)),
        }
    }
    let bytes_to_read: u64 = to_read.iter().map(|(i, _)| scan.entries[*i].size).sum();
    progress.scanned(to_read.len() as u64, bytes_to_read);

    let engine = Engine {
        repo,
        key,
        index: &index,
        pending: Mutex::new(HashSet::new()),
        new_packs: Mutex::new(Vec::new()),
        stored_bytes: Mutex::new(0),
    };
    let read = engine.store_contents(&mut scan, to_read, progress, &mut warnings)?;
    let (root_tree, fingerprint, tree_stats) = engine.store_trees(&scan)?;
    engine.write_index(true)?;

    let snapshot = Snapshot {
        version: FORMAT_VERSION,
        time: crate::now_rfc3339(),
        hostname: crate::hostname(),
        username: std::env::var("USER").unwrap_or_default(),
        paths: scan
            .roots
            .iter()
            .map(|&i| scan.entries[i].path.display().to_string())
            .collect(),
        tags: opts.tags.clone(),
        tree: root_tree,
        fingerprint,
        summary: SnapshotSummary {
            files: tree_stats.files,
            dirs: tree_stats.dirs,
            bytes: tree_stats.bytes,
            bytes_read: read.bytes,
            bytes_added_stored: *engine.stored_bytes.lock().map_err(poisoned)?,
            warnings: warnings.len() as u64,
            duration_secs: started.elapsed().as_secs_f64(),
        },
        labels: opts.labels.clone(),
    };
    // The stored copy is returned as is: re-listing every snapshot would cost a read each.
    let (snapshot_id, stored) = repo.save_snapshot(&snapshot, &key.chunk_key)?;
    let snapshot = stored.into_value();

    if let Some(cache) = &cache {
        let files: FilesCache = scan
            .entries
            .iter()
            .filter(|e| e.kind == NodeKind::File && e.cacheable)
            .filter_map(|e| Some((e.path_key(), e.cached_file()?)))
            .collect();
        if let Err(e) = cache.save_files(&files) {
            let w = Warning {
                path: "files cache".into(),
                message: format!("could not be saved ({e}); the next backup reads every file"),
            };
            progress.warn(&w);
        }
    }
    let new_blobs = engine.pending.lock().map_err(poisoned)?.len() as u64;
    Ok(BackupReport {
        snapshot_id,
        snapshot,
        warnings,
        files_read: read.files,
        files_unchanged,
        new_blobs,
        temp_cleanup,
    })
}

fn poisoned<T>(_: T) -> Error {
    Error::Corrupt("a worker thread panicked".into())
}

struct ReadStats {
    files: u64,
    bytes: u64,
}

#[derive(Default)]
struct TreeStats {
    files: u64,
    dirs: u64,
    bytes: u64,
}

struct Engine<'a> {
    repo: &'a Repository,
    key: &'a BackupKey,
    index: &'a MasterIndex,
    /// Blobs stored (or being stored) by this backup.
    pending: Mutex<HashSet<Id>>,
    /// Packs stored but not yet listed in an index file.
    new_packs: Mutex<Vec<IndexedPack>>,
    stored_bytes: Mutex<u64>,
}

impl Engine<'_> {
    /// True if this blob is new to the repository (and claims it).
    fn claim(&self, id: Id) -> Result<bool> {
        Ok(!self.index.contains(&id) && self.pending.lock().map_err(poisoned)?.insert(id))
    }

    fn store_pack(&self, writer: PackWriter) -> Result<()> {
        self.upload(writer.finish()?)
    }

    fn upload(&self, pack: FinishedPack) -> Result<()> {
        self.repo.backend().put(&pack_name(&pack.id), &pack.bytes)?;
        *self.stored_bytes.lock().map_err(poisoned)? += pack.bytes.len() as u64;
        self.new_packs.lock().map_err(poisoned)?.push(IndexedPack {
            id: pack.id,
            size: pack.bytes.len() as u64,
            blobs: pack.blobs,
        });
        Ok(())
    }

    /// Write an index file for stored packs (all of them when `all`, else in large groups).
    fn write_index(&self, all: bool) -> Result<()> {
        let packs = {
            let mut guard = self.new_packs.lock().map_err(poisoned)?;
            if guard.is_empty() || (!all && guard.len() < PACKS_PER_INDEX) {
                return Ok(());
            }
            std::mem::take(&mut *guard)
        };
        self.repo.save_index(&IndexFile {
            version: FORMAT_VERSION,
            packs,
            rebuilt: None,
        })?;
        Ok(())
    }

    /// Store finished packs, so the packer encrypts the next one while this one is written
    /// (and fsynced, or sent over the network).
    fn uploader(&self, rx: Receiver<FinishedPack>) -> Result<()> {
        for pack in rx {
            self.upload(pack)?;
        }
        Ok(())
    }

    fn packer(&self, rx: Receiver<NewBlob>, done: Sender<FinishedPack>) -> Result<()> {
        let recipients = &self.key.recipients;
        let pack_size = self.repo.config().pack_size;
        let mut writer = PackWriter::new(recipients, pack_size as usize + (1 << 20))?;
        for nb in rx {
            writer.add(nb.id, BlobKind::Data, &nb.blob)?;
            if writer.len() >= pack_size {
                let full = std::mem::replace(
                    &mut writer,
                    PackWriter::new(recipients, pack_size as usize + (1 << 20))?,
                );
                // A closed channel means the uploader failed; its error is joined later.
                if done.send(full.finish()?).is_err() {
                    return Ok(());
                }
            }
        }
        if !writer.is_empty() {
            let _ = done.send(writer.finish()?);
        }
        Ok(())
    }

    fn name_and_encode(&self, item: Item, level: i32) -> Result<Processed> {
        Ok(match item {
            Item::Chunk { file, data } => {
                let id = self.key.chunk_key.blob_id(&data);
                let len = data.len() as u64;
                let new = if self.claim(id)? {
                    Some(blob::encode(data, level))
                } else {
                    None
                };
                Processed::Chunk { file, id, len, new }
            }
            Item::Known { file, ids, bytes } => Processed::Known { file, ids, bytes },
            Item::Event(event) => Processed::Event(event),
        })
    }

    fn store_contents(
        &self,
        scan: &mut Scan,
        to_read: Vec<(usize, Option<Resume>)>,
        progress: &dyn BackupProgress,
        warnings: &mut Vec<Warning>,
    ) -> Result<ReadStats> {
        let jobs: Vec<ReadJob> = to_read
            .into_iter()
            .map(|(i, resume)| {
                let e = &scan.entries[i];
                ReadJob {
                    file: i,
                    path: e.path.clone(),
                    stamp: (e.size, e.mtime_ns, e.ctime_ns),
                    resume,
                }
            })
            .collect();
        let params = self.repo.config().chunker;
        let level = self.repo.config().zstd_level;
        let (batch_tx, batch_rx) = bounded::<Vec<Item>>(READERS);
        let (blob_tx, blob_rx) = bounded::<NewBlob>(4);
        let mut stats = ReadStats { files: 0, bytes: 0 };

        let next = AtomicUsize::new(0);
        std::thread::scope(|s| -> Result<()> {
            for _ in 0..READERS {
                let (jobs, next, tx) = (&jobs, &next, batch_tx.clone());
                s.spawn(move || read_files(jobs, next, params, tx));
            }
            drop(batch_tx);
            let (pack_tx, pack_rx) = bounded::<FinishedPack>(1);
            // One packer encrypts faster than the rest of the pipeline produces; each more
            // would hold another pack in memory (as does the pack queued for the uploader).
            let workers = [
                s.spawn(move || self.packer(blob_rx, pack_tx)),
                s.spawn(move || self.uploader(pack_rx)),
            ];

            let mut outcome = Ok(());
            'batches: for batch in batch_rx.iter() {
                let processed: Vec<Result<Processed>> = batch
                    .into_par_iter()
                    .map(|item| self.name_and_encode(item, level))
                    .collect();
                for p in processed {
                    let p = match p {
                        Ok(p) => p,
                        Err(e) => {
                            outcome = Err(e);
                            break 'batches;
                        }
                    };
                    match p {
                        Processed::Chunk { file, id, len, new } => {
                            scan.entries[file].chunks.push(id);
                            progress.read(len);
                            if let Some(blob) = new {
                                // A closed channel means a packer failed; its error is joined below.
                                if blob_tx.send(NewBlob { id, blob }).is_err() {
                                    break 'batches;
                                }
                            }
                        }
                        Processed::Known { file, ids, bytes } => {
                            scan.entries[file].chunks.extend(ids);
                            progress.read(bytes);
                        }
                        Processed::Event(FileEvent::Done {
                            file,
                            size,
                            content,
                            changed,
                        }) => {
                            let e = &mut scan.entries[file];
                            e.content = Some(content);
                            e.size = size;
                            e.cacheable = !changed;
                            stats.files += 1;
                            stats.bytes += size;
                            if changed {
                                let w = Warning {
                                    path: e.path.display().to_string(),
                                    message: "changed while it was read; the stored copy may be inconsistent \
                                              (stop the program writing it, or use --pre/--post hooks)"
                                        .into(),
                                };
                                progress.warn(&w);
                                warnings.push(w);
                            }
                        }
                        Processed::Event(FileEvent::Failed { file, message }) => {
                            let e = &mut scan.entries[file];
                            e.failed = true;
                            let w = Warning {
                                path: e.path.display().to_string(),
                                message: format!("not backed up: {message}"),
                            };
                            progress.warn(&w);
                            warnings.push(w);
                        }
                    }
                }
                if let Err(e) = self.write_index(false) {
                    outcome = Err(e);
                    break;
                }
            }
            // Dropping the receiver stops the reader; closing the blob channel flushes packers.
            drop(batch_rx);
            drop(blob_tx);
            for p in workers {
                match p.join() {
                    Ok(Err(e)) => outcome = outcome.and(Err(e)),
                    Err(_) => outcome = outcome.and(Err(poisoned(()))),
                    Ok(Ok(())) => {}
                }
            }
            outcome
        })?;
        Ok(stats)
    }

    /// Store every directory as a tree blob, bottom-up; returns the root tree's id and the
    /// snapshot fingerprint.
    fn store_trees(&self, scan: &Scan) -> Result<(Id, Id, TreeStats)> {
        let mut stats = TreeStats::default();
        let mut writer = PackWriter::new(&self.key.recipients, 1 << 20)?;
        let (root_id, root_merkle) = self.store_dir(scan, &scan.roots, &mut writer, &mut stats)?;
        if !writer.is_empty() {
            self.store_pack(writer)?;
        }
        Ok((root_id, root_merkle, stats))
    }

    fn store_dir(
        &self,
        scan: &Scan,
        children: &[usize],
        writer: &mut PackWriter,
        stats: &mut TreeStats,
    ) -> Result<(Id, Id)> {
        let mut nodes = Vec::with_capacity(children.len());
        for &c in children {
            let e = &scan.entries[c];
            if e.failed {
                continue;
            }
            let mut node = e.node();
            match e.kind {
                NodeKind::Dir => {
                    let (id, merkle) = self.store_dir(scan, &e.children, writer, stats)?;
                    node.subtree = Some(id);
                    node.merkle = Some(merkle);
                    stats.dirs += 1;
                }
                NodeKind::File => {
                    stats.files += 1;
                    stats.bytes += e.size;
                }
                NodeKind::Symlink => {}
            }
            nodes.push(node);
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = Tree { nodes };
        let merkle = merkle::tree_hash(&tree)?;
        let data = tree::encode_tree(&tree)?;
        if data.len() > tree::MAX_TREE_SIZE as usize {
            let dir = children
                .first()
                .and_then(|&c| scan.entries[c].path.parent())
                .unwrap_or(Path::new("/"));
            return Err(Error::TreeTooLarge(dir.to_path_buf()));
        }
        let id = self.key.chunk_key.blob_id(&data);
        if self.claim(id)? {
            writer.add(
                id,
                BlobKind::Tree,
                &blob::encode(data, self.repo.config().zstd_level),
            )?;
            if writer.len() >= self.repo.config().pack_size {
                let full =
                    std::mem::replace(writer, PackWriter::new(&self.key.recipients, 1 << 20)?);
                self.store_pack(full)?;
            }
        }
        Ok((id, merkle))
    }
}

/// An [`Item`] after the rayon stage: chunks are named (and encoded when new), file
/// events pass through unchanged.
enum Processed {
    Chunk {
        file: usize,
        id: Id,
        len: u64,
        new: Option<EncodedBlob>,
    },
    Known {
        file: usize,
        ids: Vec<Id>,
        bytes: u64,
    },
    Event(FileEvent),
}

/// A reader thread: take the next job's file, read and chunk it into bounded batches, until
/// none is left. A file is read by one reader, so its chunks arrive in order.
fn read_files(
    jobs: &[ReadJob],
    next: &AtomicUsize,
    params: crate::repofile::ChunkerParams,
    tx: Sender<Vec<Item>>,
) {
    let mut chunker = Chunker::new(params);
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
        let item = match read_one(&mut chunker, job, &mut batch, &mut batch_bytes, &tx) {
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
    let result = chunker.chunk_from(hasher, &file, |data| {
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

/// Hash the unchanged prefix of an appended file. Returns the hasher positioned (with the
/// file) at the old last chunk when the old content is intact, or `None` with the file
/// rewound to its start when it is not.
fn resume(
    chunker: &mut Chunker,
    file: &mut std::fs::File,
    r: &Resume,
) -> std::io::Result<Option<blake3::Hasher>> {
    let mut hasher = blake3::Hasher::new();
    let mut intact = chunker.hash_only(&mut hasher, file, r.last_start)?;
    let at_last_start = hasher.clone();
    if intact {
        intact = chunker.hash_only(&mut hasher, file, r.old_size - r.last_start)?
            && Id::from(hasher.finalize()) == r.old_content;
    }
    let start = if intact { r.last_start } else { 0 };
    file.seek(SeekFrom::Start(start))?;
    Ok(intact.then_some(at_last_start))
}

pub(crate) fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}

pub(crate) fn ctime_ns(m: &std::fs::Metadata) -> i64 {
    m.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.ctime_nsec())
}

impl Entry {
    fn path_key(&self) -> String {
        self.path.display().to_string()
    }

    fn matches_cache(&self, c: &CachedFile) -> bool {
        c.size == self.size
            && c.mtime_ns == self.mtime_ns
            && c.ctime_ns == self.ctime_ns
            && c.ino == self.ino
    }

    fn cached_file(&self) -> Option<CachedFile> {
        Some(CachedFile {
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            ino: self.ino,
            content: self.content?,
            chunks: self.chunks.clone(),
        })
    }

    fn node(&self) -> Node {
        Node {
            name: self.name.clone(),
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: self.mtime_ns,
            size: if self.kind == NodeKind::File {
                self.size
            } else {
                0
            },
            content: self.content,
            chunks: self.chunks.clone(),
            subtree: None,
            merkle: None,
            target: self.target.clone(),
        }
    }
}
