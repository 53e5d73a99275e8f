//! Reading a directory into snapshot nodes, hashing file contents in parallel.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use vtool_snapshot::repofile::{Node, NodeKind, Tree};
use vtool_snapshot::{merkle, Error, Id, Result};

/// A directory read from disk: its entries, and for directories the entries below.
pub(crate) struct DiskEntry {
    pub path: PathBuf,
    pub node: Node,
    pub children: Vec<DiskEntry>,
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        error: source,
    }
}

/// Read the entries of `dir` recursively (metadata only; contents are hashed later).
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<DiskEntry>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        match entry.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(raw) => {
                return Err(io(
                    &dir.join(raw),
                    std::io::Error::other("name is not UTF-8"),
                ))
            }
        }
    }
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_file() {
            NodeKind::File
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else {
            continue; // sockets and FIFOs are never in snapshots
        };
        let target = if kind == NodeKind::Symlink {
            let t = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
            Some(t.to_string_lossy().into_owned())
        } else {
            None
        };
        let node = Node {
            name,
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            size: if kind == NodeKind::File {
                meta.len()
            } else {
                0
            },
            content: None,
            chunks: Vec::new(),
            subtree: None,
            merkle: None,
            target,
        };
        let children = if kind == NodeKind::Dir {
            read_dir(&path)?
        } else {
            Vec::new()
        };
        out.push(DiskEntry {
            path,
            node,
            children,
        });
    }
    Ok(out)
}

/// Hash the content of every file for which `wanted` says so, in parallel.
pub(crate) fn hash_files(
    entries: &mut [DiskEntry],
    wanted: &(dyn Fn(&DiskEntry) -> bool + Sync),
) -> Result<()> {
    let mut files: Vec<&mut DiskEntry> = Vec::new();
    collect_files(entries, wanted, &mut files);
    files.par_iter_mut().try_for_each(|e| -> Result<()> {
        let mut hasher = blake3::Hasher::new();
        let file = std::fs::File::open(&e.path).map_err(|err| io(&e.path, err))?;
        hasher.update_reader(file).map_err(|err| io(&e.path, err))?;
        e.node.content = Some(hasher.finalize().into());
        Ok(())
    })
}

fn collect_files<'a>(
    entries: &'a mut [DiskEntry],
    wanted: &(dyn Fn(&DiskEntry) -> bool + Sync),
    out: &mut Vec<&'a mut DiskEntry>,
) {
    for e in entries {
        if e.node.kind == NodeKind::Dir {
            collect_files(&mut e.children, wanted, out);
        } else if e.node.kind == NodeKind::File && wanted(e) {
            out.push(e);
        }
    }
}

/// Merkle hash of entries whose file contents are hashed (fills in directory hashes).
pub(crate) fn merkle_of(entries: &mut [DiskEntry]) -> Result<Id> {
    for e in entries.iter_mut() {
        if e.node.kind == NodeKind::Dir {
            e.node.merkle = Some(merkle_of(&mut e.children)?);
        }
    }
    merkle::tree_hash(&Tree {
        nodes: entries.iter().map(|e| e.node.clone()).collect(),
    })
}

/// The fingerprint a snapshot of the entries of `dir` would have (the directory itself is
/// the snapshot root, as a restore target is). Needs no key.
pub fn disk_fingerprint(dir: &Path) -> Result<Id> {
    let mut entries = read_dir(dir)?;
    hash_files(&mut entries, &|_| true)?;
    merkle_of(&mut entries)
}
