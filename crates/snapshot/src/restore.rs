//! The restore engine: rebuilds a snapshot's files under a target directory.
//!
//! Trees are read and checked against the fingerprint first, then every needed pack is
//! fetched once and its blobs are written with positional writes into all the places that
//! need them, many packs in parallel. Every chunk is checked against its keyed id before it
//! is written. Metadata (modes, mtimes, owners) is applied last, directories deepest first.

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use serde::Serialize;

use crate::index::BlobLocation;
use crate::keys::RestoreKey;
use crate::reader::BlobReader;
use crate::repofile::{BlobKind, Node, NodeKind, Snapshot};
use crate::sealed::Sealed;
use crate::{Error, Id, Repository, Result};

/// Where and what to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Globs over paths inside the snapshot (`node/validator/**`); empty restores everything.
    pub include: Vec<String>,
    pub cache_base: Option<PathBuf>,
}

/// Receives progress while a restore runs.
pub trait RestoreProgress: Sync {
    fn planned(&self, _files: u64, _bytes: u64) {}
    fn wrote(&self, _bytes: u64) {}
}

impl RestoreProgress for crate::backup::NoProgress {}

/// A file that could not be restored correctly (and was removed).
#[derive(Debug, Clone, Serialize)]
pub struct Damage {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub damaged: Vec<Damage>,
}

/// A restored path and the node it came from.
struct Planned {
    dest: PathBuf,
    node: Node,
}

#[derive(Default)]
struct Plan {
    dirs: Vec<Planned>,
    files: Vec<Planned>,
    symlinks: Vec<Planned>,
}

/// Restore `snapshot` into `opts.target`, which must be empty or absent.
pub fn restore(
    repo: &Repository,
    key: &RestoreKey,
    snapshot: &Sealed<Snapshot>,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    let index = repo.load_index_cached(opts.cache_base.as_deref())?;
    restore_from(
        &BlobReader::new(repo, key, &index),
        snapshot,
        opts,
        progress,
    )
}

/// [`restore`] through a reader the caller keeps, e.g. to verify the result with the same
/// index and the tree packs it already decrypted.
pub fn restore_from(
    reader: &BlobReader,
    snapshot: &Sealed<Snapshot>,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    reader
        .repo
        .verify_snapshot(snapshot, &reader.key.chunk_key)?;
    prepare_target(&opts.target)?;
    let include = build_globs(&opts.include)?;
    let mut plan = Plan::default();
    let root = reader.tree(&snapshot.tree, &snapshot.fingerprint)?;
    walk(
        reader,
        &root.nodes,
        "",
        &opts.target,
        &include,
        false,
        &mut plan,
    )?;

    for d in &plan.dirs {
        std::fs::create_dir(&d.dest).map_err(|e| Error::io(&d.dest, e))?;
    }
    let bytes: u64 = plan.files.iter().map(|f| f.node.size).sum();
    progress.planned(plan.files.len() as u64, bytes);
    for f in &plan.files {
        let file = std::fs::File::create_new(&f.dest).map_err(|e| Error::io(&f.dest, e))?;
        file.set_len(f.node.size)
            .map_err(|e| Error::io(&f.dest, e))?;
    }
    for l in &plan.symlinks {
        let target = l.node.target.as_deref().unwrap_or_default();
        std::os::unix::fs::symlink(target, &l.dest).map_err(|e| Error::io(&l.dest, e))?;
    }

    let damaged = write_contents(reader, &plan.files, progress)?;
    let mut report = RestoreReport {
        files: plan.files.len() as u64,
        dirs: plan.dirs.len() as u64,
        symlinks: plan.symlinks.len() as u64,
        bytes,
        damaged: Vec::new(),
    };
    for (i, message) in damaged {
        let dest = &plan.files[i].dest;
        // Never leave wrong bytes behind looking like a restored file.
        let _ = std::fs::remove_file(dest);
        report.files -= 1;
        report.damaged.push(Damage {
            path: dest.display().to_string(),
            message,
        });
    }
    report.damaged.sort_by(|a, b| a.path.cmp(&b.path));

    let as_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    for f in plan.files.iter().filter(|f| f.dest.exists()) {
        apply_metadata(&f.dest, &f.node, as_root)?;
    }
    for l in &plan.symlinks {
        apply_metadata(&l.dest, &l.node, as_root)?;
    }
    for d in plan.dirs.iter().rev() {
        apply_metadata(&d.dest, &d.node, as_root)?;
    }
    Ok(report)
}

fn prepare_target(target: &Path) -> Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))
        }
        Err(e) => Err(Error::io(target, e)),
    }
}

pub(crate) fn build_globs(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| Error::Pattern(format!("{p:?}: {e}")))?);
    }
    b.build().map_err(|e| Error::Pattern(e.to_string()))
}

/// Plan the restore of `nodes` (already checked: safe names, Merkle-verified). Returns
/// whether anything below was included.
fn walk(
    reader: &BlobReader,
    nodes: &[Node],
    rel: &str,
    dest: &Path,
    include: &GlobSet,
    included: bool,
    plan: &mut Plan,
) -> Result<bool> {
    let mut any = false;
    for node in nodes {
        let rel_path = if rel.is_empty() {
            node.name.clone()
        } else {
            format!("{rel}/{}", node.name)
        };
        let path = dest.join(&node.name);
        let inc = included || include.is_empty() || include.is_match(&rel_path);
        match node.kind {
            NodeKind::Dir => {
                let mark = plan.dirs.len();
                plan.dirs.push(Planned {
                    dest: path.clone(),
                    node: node.clone(),
                });
                let (Some(sub), Some(m)) = (node.subtree, node.merkle) else {
                    return Err(Error::Corrupt(format!("directory {rel_path} has no tree")));
                };
                let tree = reader.tree(&sub, &m)?;
                let below = walk(reader, &tree.nodes, &rel_path, &path, include, inc, plan)?;
                if inc || below {
                    any = true;
                } else {
                    plan.dirs.truncate(mark);
                }
            }
            NodeKind::File if inc => {
                plan.files.push(Planned {
                    dest: path,
                    node: node.clone(),
                });
                any = true;
            }
            NodeKind::Symlink if inc => {
                plan.symlinks.push(Planned {
                    dest: path,
                    node: node.clone(),
                });
                any = true;
            }
            _ => {}
        }
    }
    Ok(any)
}

/// Where one blob goes: (file index, offset) pairs.
type Targets = Vec<(usize, u64)>;

/// Write every file's content; returns the files that could not be restored, with why.
fn write_contents(
    reader: &BlobReader,
    files: &[Planned],
    progress: &dyn RestoreProgress,
) -> Result<Vec<(usize, String)>> {
    let mut damaged: HashMap<usize, String> = HashMap::new();
    let mut by_pack: HashMap<Id, HashMap<Id, (BlobLocation, Targets)>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        let mut offset = 0u64;
        for id in &f.node.chunks {
            match reader.index.locate(id, BlobKind::Data) {
                Ok(loc) => {
                    by_pack
                        .entry(loc.pack)
                        .or_default()
                        .entry(*id)
                        .or_insert_with(|| (*loc, Vec::new()))
                        .1
                        .push((i, offset));
                    offset += loc.blob.raw_length as u64;
                }
                Err(e) => {
                    damaged.entry(i).or_insert_with(|| e.to_string());
                    break;
                }
            }
        }
        if offset != f.node.size && !damaged.contains_key(&i) {
            damaged.insert(
                i,
                format!(
                    "chunks add up to {offset} bytes, file size is {}",
                    f.node.size
                ),
            );
        }
    }
    let found = Mutex::new(damaged);
    let packs: Vec<_> = by_pack.into_iter().collect();
    crate::reader::pack_fetch_pool()?.install(|| {
        packs
            .par_iter()
            .try_for_each(|(pack, blobs)| -> Result<()> {
                let note = |targets: &Targets, message: String| -> Result<()> {
                    let mut d = found.lock().map_err(|_| Error::Corrupt("lock".into()))?;
                    for (i, _) in targets {
                        d.entry(*i).or_insert_with(|| message.clone());
                    }
                    Ok(())
                };
                let mut wanted: Vec<&(BlobLocation, Targets)> = blobs.values().collect();
                wanted.sort_by_key(|(loc, _)| loc.blob.offset);
                let locs: Vec<&BlobLocation> = wanted.iter().map(|(loc, _)| loc).collect();
                let streamed = reader.for_each_blob(pack, &locs, |i, blob| {
                    let targets = &wanted[i].1;
                    match blob {
                        Ok(data) => {
                            for &(file, offset) in targets {
                                write_at(&files[file].dest, offset, data)?;
                            }
                            progress.wrote(data.len() as u64 * targets.len() as u64);
                            Ok(())
                        }
                        Err(e) => note(targets, e.to_string()),
                    }
                });
                match streamed {
                    Err(e) if e.is_data_problem() || matches!(e, Error::WrongKey(_)) => {
                        for (_, targets) in blobs.values() {
                            note(targets, format!("pack {}: {e}", pack.short()))?;
                        }
                    }
                    other => other?,
                }
                Ok(())
            })
    })?;
    let mut out: Vec<_> = found
        .into_inner()
        .map_err(|_| Error::Corrupt("lock".into()))?
        .into_iter()
        .collect();
    out.sort();
    Ok(out)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all_at(data, offset).map_err(|e| Error::io(path, e))
}

fn apply_metadata(path: &Path, node: &Node, as_root: bool) -> Result<()> {
    let io = |e| Error::io(path, e);
    let mtime = filetime::FileTime::from_unix_time(
        node.mtime_ns.div_euclid(1_000_000_000),
        node.mtime_ns.rem_euclid(1_000_000_000) as u32,
    );
    if node.kind == NodeKind::Symlink {
        if as_root {
            std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(io)?;
        }
        return filetime::set_symlink_file_times(path, mtime, mtime).map_err(io);
    }
    if as_root {
        std::os::unix::fs::chown(path, Some(node.uid), Some(node.gid)).map_err(io)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)).map_err(io)?;
    filetime::set_file_times(path, mtime, mtime).map_err(io)
}
