//! The backup engine.
//!
//! A bounded pipeline: reader threads take the files that changed one at a time, cut them
//! into chunks and hash their content; the rayon pool names chunks (keyed BLAKE3), drops duplicates and
//! compresses the new ones; a packer thread encrypts blobs into packs and an uploader thread
//! stores finished packs (so encryption goes on while a pack is fsynced or sent). Memory is
//! bounded by the channel capacities, not by the data size. Packs are stored before the
//! index files that list them, and the snapshot object is written last.

mod contents;
mod packer;
mod reader;
mod resume;
mod scan;
mod trees;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::cache::{Cache, FilesCache};
use crate::keys::BackupKey;
use crate::repofile::{NodeKind, Snapshot, SnapshotSummary, FORMAT_VERSION};
use crate::trash::Trash;
use crate::writers::{self, Writer};
use crate::{refs, Error, Id, Progress, Repository, Result};
use packer::Engine;
use resume::Resume;
use scan::scan;

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
    /// The snapshot's time instead of now (imports of older backups, retention tests).
    pub time: Option<time::OffsetDateTime>,
    /// What the snapshot holds that forget must not lose (`keystore:<pubkey>`,
    /// `slashing:<path>`), recorded as keyed fingerprints.
    pub holds: Vec<String>,
    /// Leave the files' pages in the page cache after reading them. By default a backup
    /// drops what it has read (see `vtool_transfer::page_cache`); a node that keeps running
    /// during the backup may want its cache as it was.
    pub keep_page_cache: bool,
}

impl BackupOptions {
    /// The options of a first pass read while the client still runs (`--live-precopy`):
    /// tagged `precopy`, labelled `consistency=precopy-incomplete` and incomplete, so
    /// `latest` never becomes it. It fills the repository and the files cache, so the real
    /// pass reads only what changed since.
    pub fn precopy(&self) -> BackupOptions {
        let mut opts = self.clone();
        // The client runs and uses its cache.
        opts.keep_page_cache = true;
        opts.tags.push("precopy".into());
        opts.labels
            .insert("consistency".into(), "precopy-incomplete".into());
        opts.labels
            .insert(crate::repofile::INCOMPLETE_LABEL.into(), "true".into());
        opts
    }
}

/// Something the user should know about, without stopping the backup.
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub path: String,
    pub message: String,
}

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

/// Back up `opts.paths` into `repo`, holding only the backup key.
pub fn backup(
    repo: &Repository,
    key: &BackupKey,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    repo.check_backup_key(key)?;
    // Announced before the index is read, so a prune condemning packs from now on waits
    // for this backup (see `writers`).
    let writer = Writer::announce(repo.backend())?;
    let result = run(repo, key, opts, progress, &writer);
    if result.is_err() {
        // Best effort: ending the writer lets a prune go on without waiting for it to go
        // stale. This backup writes no snapshot now.
        let _ = writers::declare_stale(repo.backend(), &writer.id);
    }
    result
}

fn run(
    repo: &Repository,
    key: &BackupKey,
    opts: &BackupOptions,
    progress: &dyn Progress,
    writer: &Writer,
) -> Result<BackupReport> {
    let started = Instant::now();
    // Housekeeping, best effort: a backup never fails over another run's leftovers.
    let temp_cleanup = vtool_transfer::clean_stale_temp(repo.backend());
    let cache = opts
        .cache_base
        .as_ref()
        .and_then(|base| Cache::open(base, &repo.config().id));
    // Packs a prune condemned may be deleted once this backup ends: never reuse them.
    let trash = Trash::load(repo.backend(), &key.chunk_key)?;
    let index = repo
        .load_index(cache.as_ref())?
        .without_packs(&trash.packs());
    let old_files = cache.as_ref().map(Cache::load_files).unwrap_or_default();

    let mut scan = scan(&opts.paths, &opts.excludes)?;
    let mut warnings = std::mem::take(&mut scan.warnings);
    warnings.extend(index.damaged.iter().map(|why| Warning {
        path: "repository index".into(),
        message: format!("{why}; ignored (run `vtool check`)"),
    }));
    for w in &warnings {
        progress.warn(&w.path, &w.message);
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
    progress.stage("reading changed files", to_read.len() as u64, bytes_to_read);

    let engine = Engine {
        repo,
        key,
        index: &index,
        pending: Mutex::new(HashSet::new()),
        new_packs: Mutex::new(Vec::new()),
        stored_bytes: Mutex::new(0),
        drop_read_pages: !opts.keep_page_cache,
    };
    let read = engine.store_contents(&mut scan, to_read, progress, &mut warnings)?;
    let (root_tree, fingerprint, mut tree_stats) = engine.store_trees(&scan)?;
    engine.write_index(true)?;
    let refs = refs::store(repo.backend(), std::mem::take(&mut tree_stats.refs))?;
    let mut holds: Vec<Id> = opts
        .holds
        .iter()
        .map(|h| key.chunk_key.held_fingerprint(h))
        .collect();
    holds.sort();
    holds.dedup();

    let snapshot = Snapshot {
        version: FORMAT_VERSION,
        time: opts.time.unwrap_or_else(time::OffsetDateTime::now_utc),
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
            bytes_added_stored: *engine.stored_bytes.lock().map_err(Error::poisoned)?,
            warnings: warnings.len() as u64,
            duration_secs: started.elapsed().as_secs_f64(),
        },
        labels: opts.labels.clone(),
        refs: Some(refs),
        holds,
    };
    let (snapshot_id, sealed) = repo.seal_snapshot(&snapshot, &key.chunk_key)?;
    writer.finish(repo.backend(), snapshot_id, refs)?;
    // The stored copy is returned as is: re-listing every snapshot would cost a read each.
    let snapshot = repo.store_snapshot(&sealed)?.into_value();

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
            progress.warn(&w.path, &w.message);
        }
    }
    let new_blobs = engine.pending.lock().map_err(Error::poisoned)?.len() as u64;
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
