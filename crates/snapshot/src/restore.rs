//! The restore engine: rebuilds a snapshot's files under a target directory.
//!
//! Trees are read and checked against the fingerprint first, within the snapshot's
//! authenticated totals and the format's nesting limit. Then every needed pack is fetched
//! once and its blobs are written with positional writes into all the places that need them,
//! many packs in parallel. Every chunk is checked against its keyed id before it is written;
//! a chunk whose copy fails is read from the next copy the indexes list. Metadata (owners,
//! mtimes, then modes) is applied last, directories deepest first.

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use globset::GlobSet;
use serde::Serialize;
use vtool_transfer::page_cache::WriteBehind;

use crate::glob::build_globs;
use crate::keys::RestoreKey;
use crate::reader::BlobReader;
use crate::repofile::{BlobKind, Node, NodeKind, Snapshot};
use crate::sealed::Sealed;
use crate::tree::TreeBudget;
use crate::{Error, Id, Progress, Repository, Result};

/// Where and what to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Globs over paths inside the snapshot (`node/validator/**`); empty restores everything.
    pub include: Vec<String>,
    pub cache_base: Option<PathBuf>,
    /// File names to report where they were restored ([`RestoreReport::files_named`]), so a
    /// caller finds e.g. every `validator_definitions.yml` without walking the target.
    pub report_files_named: Vec<String>,
}

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
    /// Restored files whose name is in [`RestoreOptions::report_files_named`].
    pub files_named: Vec<PathBuf>,
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
    progress: &dyn Progress,
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
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    reader
        .repo
        .verify_snapshot(snapshot, &reader.key.chunk_key)?;
    prepare_target(&opts.target)?;
    let include = build_globs(&opts.include)?;
    let root = reader.tree(&snapshot.tree, &snapshot.fingerprint)?;
    let mut planner = Planner {
        reader,
        include: &include,
        budget: TreeBudget::new(&snapshot.summary),
        plan: Plan::default(),
    };
    planner.budget.enter(&root, 0)?;
    planner.walk(&root.nodes, "", &opts.target, false, 0)?;
    let plan = planner.plan;

    for d in &plan.dirs {
        std::fs::create_dir(&d.dest).map_err(|e| Error::io(&d.dest, e))?;
    }
    let bytes: u64 = plan.files.iter().map(|f| f.node.size).sum();
    progress.stage("restoring", plan.files.len() as u64, bytes);
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
        files_named: Vec::new(),
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
    report.files_named = plan
        .files
        .iter()
        .filter(|f| opts.report_files_named.contains(&f.node.name) && f.dest.exists())
        .map(|f| f.dest.clone())
        .collect();

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

/// Plans a restore: every directory, file and symlink to create, within the snapshot's
/// authenticated totals.
struct Planner<'a, 'r> {
    reader: &'a BlobReader<'r>,
    include: &'a GlobSet,
    budget: TreeBudget,
    plan: Plan,
}

impl Planner<'_, '_> {
    /// Plan the restore of `nodes` (already checked: safe names, Merkle-verified), the
    /// entries of a tree at `depth`. Returns whether anything below was included.
    fn walk(
        &mut self,
        nodes: &[Node],
        rel: &str,
        dest: &Path,
        included: bool,
        depth: usize,
    ) -> Result<bool> {
        let mut any = false;
        for node in nodes {
            let rel_path = if rel.is_empty() {
                node.name.clone()
            } else {
                format!("{rel}/{}", node.name)
            };
            let path = dest.join(&node.name);
            let inc = included || self.include.is_empty() || self.include.is_match(&rel_path);
            let planned = Planned {
                dest: path,
                node: node.clone(),
            };
            match node.kind {
                NodeKind::Dir => {
                    let (Some(sub), Some(m)) = (node.subtree, node.merkle) else {
                        return Err(Error::Corrupt(format!("directory {rel_path} has no tree")));
                    };
                    let tree = self.reader.tree(&sub, &m)?;
                    self.budget.enter(&tree, depth + 1)?;
                    let mark = self.plan.dirs.len();
                    let below_dest = planned.dest.clone();
                    self.plan.dirs.push(planned);
                    let below = self.walk(&tree.nodes, &rel_path, &below_dest, inc, depth + 1)?;
                    if inc || below {
                        any = true;
                    } else {
                        self.plan.dirs.truncate(mark);
                    }
                }
                NodeKind::File if inc => {
                    self.plan.files.push(planned);
                    any = true;
                }
                NodeKind::Symlink if inc => {
                    self.plan.symlinks.push(planned);
                    any = true;
                }
                _ => {}
            }
        }
        Ok(any)
    }
}

/// Where one blob goes: (file index, offset) pairs.
type Targets = Vec<(usize, u64)>;

/// Write every file's content; returns the files that could not be restored, with why.
fn write_contents(
    reader: &BlobReader,
    files: &[Planned],
    progress: &dyn Progress,
) -> Result<Vec<(usize, String)>> {
    let mut damaged: HashMap<usize, String> = HashMap::new();
    let lengths = chunk_lengths(reader, files)?;
    let mut needs: HashMap<Id, Targets> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        let mut offset = 0u64;
        for id in &f.node.chunks {
            match lengths.get(id) {
                Some(Ok(len)) => {
                    needs.entry(*id).or_default().push((i, offset));
                    offset += len;
                }
                Some(Err(e)) => {
                    damaged.entry(i).or_insert_with(|| e.clone());
                    break;
                }
                None => {
                    damaged
                        .entry(i)
                        .or_insert_with(|| "chunk not planned".into());
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
    let needs: Vec<(Id, Targets)> = needs.into_iter().collect();
    let wanted: Vec<(Id, BlobKind)> = needs.iter().map(|(id, _)| (*id, BlobKind::Data)).collect();
    // The restored bytes are not read again by the restore; their pages go once written back.
    let behind = WriteBehind::default();
    let lost = reader.fetch_verified(&wanted, |i, data| {
        let targets = &needs[i].1;
        for &(file, offset) in targets {
            let f = write_at(&files[file].dest, offset, data)?;
            behind.written(f, offset, data.len() as u64);
        }
        progress.advance(data.len() as u64 * targets.len() as u64);
        Ok(())
    })?;
    for (i, message) in lost {
        for (file, _) in &needs[i].1 {
            damaged.entry(*file).or_insert_with(|| message.clone());
        }
    }
    let mut out: Vec<_> = damaged.into_iter().collect();
    out.sort();
    Ok(out)
}

/// The length of every chunk the files need, which places the chunks after it. Copies of a
/// chunk that claim more than a chunk may hold cannot be genuine; when the remaining copies
/// disagree (an index entry planted with a false length), the chunk is read to find out.
fn chunk_lengths(
    reader: &BlobReader,
    files: &[Planned],
) -> Result<HashMap<Id, std::result::Result<u64, String>>> {
    let max = reader.repo.config().chunker.max_size;
    let mut lengths = HashMap::new();
    let mut disputed = Vec::new();
    for id in files.iter().flat_map(|f| &f.node.chunks) {
        if lengths.contains_key(id) {
            continue;
        }
        let claimed = reader.index.locate_all(id, BlobKind::Data).map(|copies| {
            let mut l: Vec<u32> = copies.iter().map(|c| c.blob.raw_length).collect();
            l.sort_unstable();
            l.dedup();
            l
        });
        let length = match claimed {
            Err(e) => Err(e.to_string()),
            Ok(l) => match l.iter().filter(|&&l| l <= max).collect::<Vec<_>>()[..] {
                [] => Err(format!(
                    "chunk {} claims more than a chunk may hold ({max} bytes)",
                    id.short()
                )),
                [&one] => Ok(u64::from(one)),
                _ => {
                    disputed.push((*id, BlobKind::Data));
                    continue;
                }
            },
        };
        lengths.insert(*id, length);
    }
    let found = Mutex::new(HashMap::new());
    let lost = reader.fetch_verified(&disputed, |i, data| {
        found
            .lock()
            .map_err(|_| Error::Corrupt("lock".into()))?
            .insert(disputed[i].0, data.len() as u64);
        Ok(())
    })?;
    for (i, message) in lost {
        lengths.insert(disputed[i].0, Err(message));
    }
    let found = found
        .into_inner()
        .map_err(|_| Error::Corrupt("lock".into()))?;
    lengths.extend(found.into_iter().map(|(id, len)| (id, Ok(len))));
    Ok(lengths)
}

/// Write `data` at `offset` of the file at `path`; returns the open file.
fn write_at(path: &Path, offset: u64, data: &[u8]) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all_at(data, offset)
        .map_err(|e| Error::io(path, e))?;
    Ok(f)
}

/// Owner, times, then mode: a restrictive mode (0o000, a read-only directory) is applied
/// last, so restoring it as an ordinary user never locks the restore out of its own work.
/// Times are set on the path itself (`utimensat`, never following a link), which needs
/// ownership, not permission to open it.
fn apply_metadata(path: &Path, node: &Node, as_root: bool) -> Result<()> {
    let io = |e| Error::io(path, e);
    let mtime = filetime::FileTime::from_unix_time(
        node.mtime_ns.div_euclid(1_000_000_000),
        node.mtime_ns.rem_euclid(1_000_000_000) as u32,
    );
    if as_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(io)?;
    }
    filetime::set_symlink_file_times(path, mtime, mtime).map_err(io)?;
    if node.kind != NodeKind::Symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)).map_err(io)?;
    }
    Ok(())
}
