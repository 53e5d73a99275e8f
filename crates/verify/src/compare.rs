//! Comparing a directory on disk with a snapshot.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use vtool_snapshot::reader::BlobReader;
use vtool_snapshot::repofile::{Node, NodeKind, Snapshot, Tree};
use vtool_snapshot::tree::TreeBudget;
use vtool_snapshot::{Error, Result};

use crate::disk::{hash_files, merkle_of, read_dir, DiskEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DifferenceKind {
    /// On disk, not in the snapshot.
    Added,
    /// In the snapshot, not on disk.
    Removed,
    /// Present in both with different content, kind, size or link target.
    Changed,
    /// Same content, different mode or mtime.
    Metadata,
}

impl DifferenceKind {
    /// The name shown to users, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            DifferenceKind::Added => "added",
            DifferenceKind::Removed => "removed",
            DifferenceKind::Changed => "changed",
            DifferenceKind::Metadata => "metadata",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Path relative to the compared directory.
    pub path: String,
    pub kind: DifferenceKind,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub fingerprint_expected: String,
    pub fingerprint_on_disk: String,
    pub fingerprint_matches: bool,
    pub files_hashed: u64,
    pub differences: Vec<Difference>,
}

/// Compare `dir` (holding the snapshot's top-level entries, as a restore target does)
/// with `snapshot`. Files are hashed only when metadata cannot already tell they differ.
pub fn compare(reader: &BlobReader, snapshot: &Snapshot, dir: &Path) -> Result<Comparison> {
    let mut disk = read_dir(dir)?;
    let root = reader.tree(&snapshot.tree, &snapshot.fingerprint)?;
    // Each pass expands the trees once, within the snapshot's authenticated totals.
    let budget = || -> Result<TreeBudget> {
        let mut b = TreeBudget::new(&snapshot.summary);
        b.enter(&root, 0)?;
        Ok(b)
    };
    // First pass: which files need their content hashed (present in both, same size).
    let mut sizes = BTreeMap::new();
    collect_sizes(reader, &root.nodes, "", &mut sizes, &mut budget()?, 0)?;
    let wanted = |e: &DiskEntry| {
        let rel = e
            .path
            .strip_prefix(dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        sizes.get(&rel).is_some_and(|&s| s == e.node.size)
    };
    hash_files(&mut disk, &wanted)?;
    let files_hashed = count_hashed(&disk);
    let mut differences = Vec::new();
    let mut walk_budget = budget()?;
    walk(
        reader,
        &root.nodes,
        &disk,
        "",
        &mut differences,
        &mut walk_budget,
    )?;
    // Files that were not hashed differ anyway; give them a content hash that cannot match
    // so the recomputed fingerprint is honest.
    fill_unhashed(&mut disk);
    let on_disk = merkle_of(&mut disk)?;
    Ok(Comparison {
        fingerprint_expected: snapshot.fingerprint.to_hex(),
        fingerprint_on_disk: on_disk.to_hex(),
        fingerprint_matches: on_disk == snapshot.fingerprint,
        files_hashed,
        differences,
    })
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn collect_sizes(
    reader: &BlobReader,
    nodes: &[Node],
    rel: &str,
    out: &mut BTreeMap<String, u64>,
    budget: &mut TreeBudget,
    depth: usize,
) -> Result<()> {
    for n in nodes {
        let path = join(rel, &n.name);
        match n.kind {
            NodeKind::File => {
                out.insert(path, n.size);
            }
            NodeKind::Dir => {
                let tree = load(reader, n, budget, depth + 1)?;
                collect_sizes(reader, &tree.nodes, &path, out, budget, depth + 1)?;
            }
            NodeKind::Symlink => {}
        }
    }
    Ok(())
}

/// Load a directory's tree, the entries at `depth`, and count them against the budget.
fn load(reader: &BlobReader, n: &Node, budget: &mut TreeBudget, depth: usize) -> Result<Tree> {
    let tree = match (n.subtree, n.merkle) {
        (Some(id), Some(m)) => reader.tree(&id, &m)?,
        _ => {
            return Err(Error::Corrupt(format!(
                "directory {:?} has no tree",
                n.name
            )))
        }
    };
    budget.enter(&tree, depth)?;
    Ok(tree)
}

fn count_hashed(entries: &[DiskEntry]) -> u64 {
    entries
        .iter()
        .map(|e| u64::from(e.node.content.is_some()) + count_hashed(&e.children))
        .sum()
}

fn fill_unhashed(entries: &mut [DiskEntry]) {
    for e in entries {
        if e.node.kind == NodeKind::File && e.node.content.is_none() {
            e.node.content = Some(vtool_snapshot::Id([0xff; 32]));
        }
        fill_unhashed(&mut e.children);
    }
}

fn walk(
    reader: &BlobReader,
    snap: &[Node],
    disk: &[DiskEntry],
    rel: &str,
    out: &mut Vec<Difference>,
    budget: &mut TreeBudget,
) -> Result<()> {
    // The depth below the root is the number of components in `rel`.
    let depth = if rel.is_empty() {
        0
    } else {
        rel.split('/').count()
    };
    let mut on_disk: BTreeMap<&str, &DiskEntry> =
        disk.iter().map(|e| (e.node.name.as_str(), e)).collect();
    for n in snap {
        let path = join(rel, &n.name);
        let Some(d) = on_disk.remove(n.name.as_str()) else {
            out.push(diff(
                path,
                DifferenceKind::Removed,
                format!("{:?} missing", n.kind),
            ));
            continue;
        };
        let dn = &d.node;
        if dn.kind != n.kind {
            out.push(diff(
                path,
                DifferenceKind::Changed,
                format!("was {:?}, is {:?}", n.kind, dn.kind),
            ));
            continue;
        }
        match n.kind {
            NodeKind::File if dn.size != n.size => {
                out.push(diff(
                    path.clone(),
                    DifferenceKind::Changed,
                    format!("size {} -> {}", n.size, dn.size),
                ));
                continue;
            }
            NodeKind::File if dn.content != n.content => {
                out.push(diff(
                    path.clone(),
                    DifferenceKind::Changed,
                    "content differs".into(),
                ));
                continue;
            }
            NodeKind::Symlink if dn.target != n.target => {
                out.push(diff(
                    path.clone(),
                    DifferenceKind::Changed,
                    "link target differs".into(),
                ));
                continue;
            }
            NodeKind::Dir => {
                let tree = load(reader, n, budget, depth + 1)?;
                walk(reader, &tree.nodes, &d.children, &path, out, budget)?;
            }
            _ => {}
        }
        let mut meta = Vec::new();
        if dn.mode != n.mode && n.kind != NodeKind::Symlink {
            meta.push(format!("mode {:o} -> {:o}", n.mode, dn.mode));
        }
        if dn.mtime_ns != n.mtime_ns {
            meta.push(format!("mtime {} -> {}", n.mtime_ns, dn.mtime_ns));
        }
        if !meta.is_empty() {
            out.push(diff(path, DifferenceKind::Metadata, meta.join(", ")));
        }
    }
    for (name, d) in on_disk {
        out.push(diff(
            join(rel, name),
            DifferenceKind::Added,
            format!("{:?} not in snapshot", d.node.kind),
        ));
    }
    Ok(())
}

fn diff(path: String, kind: DifferenceKind, detail: String) -> Difference {
    Difference { path, kind, detail }
}
