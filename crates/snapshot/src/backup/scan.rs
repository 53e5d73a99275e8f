//! Walking the source paths into an in-memory list of entries.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use globset::GlobSet;

use super::Warning;
use crate::repofile::{CachedFile, Node, NodeKind};
use crate::tree::MAX_DEPTH;
use crate::{Error, Id, Result};

/// One file, directory or symlink found by the scan, plus what the backup learns about it.
pub(crate) struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub size: u64,
    pub target: Option<String>,
    pub children: Vec<usize>,
    pub content: Option<Id>,
    pub chunks: Vec<Id>,
    /// May be recorded in the files cache (read consistently).
    pub cacheable: bool,
    /// Could not be read; left out of the snapshot.
    pub failed: bool,
}

pub(crate) struct Scan {
    pub entries: Vec<Entry>,
    pub roots: Vec<usize>,
    pub warnings: Vec<Warning>,
}

struct Scanner {
    entries: Vec<Entry>,
    warnings: Vec<Warning>,
    excludes: GlobSet,
}

/// Scan `paths` (each must exist) into entries; root names must be unique.
pub(crate) fn scan(paths: &[PathBuf], excludes: &[String]) -> Result<Scan> {
    let mut scanner = Scanner {
        entries: Vec::new(),
        warnings: Vec::new(),
        excludes: crate::glob::build_globs(excludes)?,
    };
    let mut roots = Vec::new();
    let mut names = std::collections::HashSet::new();
    for path in paths {
        let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
        if std::fs::symlink_metadata(&abs).is_err() {
            return Err(Error::SourceMissing(abs));
        }
        let name = root_name(&abs);
        if !names.insert(name.clone()) {
            return Err(Error::DuplicateRootName(name));
        }
        if let Some(i) = scanner.visit(name, abs, 0) {
            roots.push(i);
        }
    }
    Ok(Scan {
        entries: scanner.entries,
        roots,
        warnings: scanner.warnings,
    })
}

fn root_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("root")
        .to_string()
}

impl Scanner {
    fn warn(&mut self, path: &Path, message: String) {
        self.warnings.push(Warning {
            path: path.display().to_string(),
            message,
        });
    }

    /// Visit an entry of a tree at `depth` (the root tree's entries are at 0).
    fn visit(&mut self, name: String, path: PathBuf, depth: usize) -> Option<usize> {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(&path, format!("skipped: {e}"));
                return None;
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() && depth >= MAX_DEPTH {
            self.warn(
                &path,
                format!("skipped: nested deeper than {MAX_DEPTH} directories, the format's limit"),
            );
            return None;
        }
        let (kind, target) = if ft.is_dir() {
            (NodeKind::Dir, None)
        } else if ft.is_file() {
            (NodeKind::File, None)
        } else if ft.is_symlink() {
            match std::fs::read_link(&path).map(|t| t.to_str().map(str::to_string)) {
                Ok(Some(t)) => (NodeKind::Symlink, Some(t)),
                Ok(None) => {
                    self.warn(&path, "skipped: symlink target is not UTF-8".into());
                    return None;
                }
                Err(e) => {
                    self.warn(&path, format!("skipped: {e}"));
                    return None;
                }
            }
        } else {
            // Sockets (geth.ipc), FIFOs and devices are recreated by their programs.
            if !(ft.is_socket() || ft.is_fifo()) {
                self.warn(&path, "skipped: device file".into());
            }
            return None;
        };
        let idx = self.entries.len();
        self.entries.push(Entry {
            name,
            path: path.clone(),
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime_ns: mtime_ns(&meta),
            ctime_ns: ctime_ns(&meta),
            ino: meta.ino(),
            size: if kind == NodeKind::File {
                meta.len()
            } else {
                0
            },
            target,
            children: Vec::new(),
            content: None,
            chunks: Vec::new(),
            cacheable: false,
            failed: false,
        });
        if kind == NodeKind::Dir {
            let children = self.visit_dir(&path, depth + 1);
            self.entries[idx].children = children;
        }
        Some(idx)
    }

    fn visit_dir(&mut self, dir: &Path, depth: usize) -> Vec<usize> {
        let read = match std::fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) => {
                self.warn(dir, format!("directory not read, stored empty: {e}"));
                return Vec::new();
            }
        };
        let mut names = Vec::new();
        for entry in read {
            match entry {
                Ok(entry) => match entry.file_name().into_string() {
                    Ok(name) => names.push(name),
                    Err(raw) => self.warn(&dir.join(&raw), "skipped: name is not UTF-8".into()),
                },
                Err(e) => self.warn(dir, format!("listing incomplete: {e}")),
            }
        }
        names.sort();
        let mut children = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            if self.excludes.is_match(&path) || self.excludes.is_match(&name) {
                continue;
            }
            if let Some(i) = self.visit(name, path, depth) {
                children.push(i);
            }
        }
        children
    }
}

pub(super) fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}

pub(super) fn ctime_ns(m: &std::fs::Metadata) -> i64 {
    m.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.ctime_nsec())
}

impl Entry {
    pub(super) fn path_key(&self) -> String {
        self.path.display().to_string()
    }

    pub(super) fn matches_cache(&self, c: &CachedFile) -> bool {
        c.size == self.size
            && c.mtime_ns == self.mtime_ns
            && c.ctime_ns == self.ctime_ns
            && c.ino == self.ino
    }

    pub(super) fn cached_file(&self) -> Option<CachedFile> {
        Some(CachedFile {
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            ino: self.ino,
            content: self.content?,
            chunks: self.chunks.clone(),
        })
    }

    pub(super) fn node(&self) -> Node {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_nested_deeper_than_the_format_allows_are_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("r");
        let mut deepest = root.clone();
        for _ in 0..MAX_DEPTH {
            deepest.push("d");
        }
        std::fs::create_dir_all(deepest.join("d")).expect("mkdir");
        let scan = scan(&[root], &[]).expect("scan");
        // `r` is in the root tree (depth 0); its tree is at 1, the tree of the last `d` kept
        // at MAX_DEPTH.
        let dirs = scan
            .entries
            .iter()
            .filter(|e| e.kind == NodeKind::Dir)
            .count();
        assert_eq!(dirs, MAX_DEPTH);
        assert_eq!(scan.warnings.len(), 1);
        assert!(scan.warnings[0].message.contains("nested deeper"));
    }
}
