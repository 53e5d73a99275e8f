//! The tree walk with the identity: every snapshot authenticated, every tree it reaches
//! loaded once against its Merkle hash, every file's chunks indexed and adding up to its
//! size, and the trees' expanse held against the snapshot's authenticated totals.

use std::collections::{HashMap, HashSet};

use vtool_snapshot::index::MasterIndex;
use vtool_snapshot::keys::RestoreKey;
use vtool_snapshot::reader::BlobReader;
use vtool_snapshot::repofile::{BlobKind, Node, NodeKind, Snapshot, SnapshotSummary};
use vtool_snapshot::tree::MAX_DEPTH;
use vtool_snapshot::{FileType, Id, Repository};

use super::{Checker, DamagedPath, ProblemKind};

pub(super) fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

/// What a tree expands to, counted as a snapshot's summary counts, and how many levels of
/// trees nest below it.
#[derive(Debug, Clone, Copy, Default)]
struct Expanse {
    files: u64,
    dirs: u64,
    bytes: u64,
    height: usize,
}

impl Expanse {
    fn file(size: u64) -> Self {
        Expanse {
            files: 1,
            bytes: size,
            ..Default::default()
        }
    }

    /// The tree as the entry of a directory in its parent.
    fn under_dir(self) -> Self {
        Expanse {
            dirs: self.dirs.saturating_add(1),
            height: self.height + 1,
            ..self
        }
    }

    fn plus(self, o: Self) -> Self {
        Expanse {
            files: self.files.saturating_add(o.files),
            dirs: self.dirs.saturating_add(o.dirs),
            bytes: self.bytes.saturating_add(o.bytes),
            height: self.height.max(o.height),
        }
    }
}

/// The state of the structure walk over every snapshot's trees.
struct TreeWalk<'a, 'r> {
    reader: &'a BlobReader<'r>,
    master: &'a MasterIndex,
    max_chunk: u32,
    /// Every tree loaded so far and what it expands to: each is checked once, even when a
    /// (forged) tree lists the same subtree many times.
    expanse: HashMap<Id, Option<Expanse>>,
    /// The current snapshot nests deeper than the format allows.
    too_deep: bool,
}

/// Why restore would refuse a snapshot whose trees expand to `e`, if it would.
fn beyond_summary(too_deep: bool, e: Option<Expanse>, summary: &SnapshotSummary) -> Option<String> {
    if too_deep || e.is_some_and(|e| e.height > MAX_DEPTH) {
        return Some(vtool_snapshot::tree::too_deep());
    }
    let e = e?;
    vtool_snapshot::tree::exceeds_summary([e.files, e.dirs, e.bytes], summary)
}

impl Checker {
    /// Authenticate every snapshot and walk its trees; returns the authenticated ones.
    pub(super) fn check_trees(
        &mut self,
        repo: &Repository,
        key: &RestoreKey,
    ) -> Vec<(Id, Snapshot)> {
        let snapshots = std::mem::take(&mut self.snapshots);
        let mut authenticated = Vec::new();
        let master = std::mem::take(&mut self.master);
        {
            let reader = BlobReader::new(repo, key, &master);
            let mut walk = TreeWalk {
                reader: &reader,
                master: &master,
                max_chunk: repo.config().chunker.max_size,
                expanse: HashMap::new(),
                too_deep: false,
            };
            for (id, snap) in &snapshots {
                if let Err(e) = repo.verify_snapshot(snap, &key.chunk_key) {
                    self.problem(
                        ProblemKind::SnapshotAuth,
                        format!("snapshots/{id}"),
                        None,
                        None,
                        e.to_string(),
                    );
                    continue;
                }
                self.report.counts.snapshots_authenticated += 1;
                authenticated.push((*id, Snapshot::clone(snap)));
                self.check_refs_cover(&reader, id, snap);
                let short = id.short();
                walk.too_deep = false;
                let expanse =
                    self.walk_tree(&mut walk, &short, &snap.tree, &snap.fingerprint, "", 0);
                if let Some(why) = beyond_summary(walk.too_deep, expanse, &snap.summary) {
                    let p = self.problem(
                        ProblemKind::Tree,
                        format!("snapshots/{id}"),
                        None,
                        Some(snap.tree),
                        format!("{why}; restore refuses the snapshot"),
                    );
                    self.report.problems[p].damaged.push(DamagedPath {
                        snapshot: short,
                        path: "/".into(),
                    });
                }
            }
        }
        self.master = master;
        self.snapshots = snapshots;
        authenticated
    }

    /// Every blob the snapshot's trees reach must be in its refs object, or a prune would
    /// delete it. Trees that cannot be loaded are reported by the walk.
    fn check_refs_cover(&mut self, reader: &BlobReader, id: &Id, snap: &Snapshot) {
        let Some(refs_id) = snap.refs else { return };
        let mut listed: HashSet<Id> = HashSet::new();
        if vtool_snapshot::refs::visit(self.backend.as_ref(), &refs_id, |b| {
            listed.insert(*b);
        })
        .is_err()
        {
            return; // reported by the structure check
        }
        let mut missing = 0u64;
        let mut seen: HashSet<Id> = HashSet::new();
        let mut todo = vec![(snap.tree, snap.fingerprint, 0usize)];
        while let Some((tree_id, merkle, depth)) = todo.pop() {
            if depth > MAX_DEPTH || !seen.insert(tree_id) {
                continue;
            }
            missing += u64::from(!listed.contains(&tree_id));
            let Ok(tree) = reader.tree(&tree_id, &merkle) else {
                continue;
            };
            for node in &tree.nodes {
                missing += node.chunks.iter().filter(|c| !listed.contains(c)).count() as u64;
                if let (Some(sub), Some(m)) = (node.subtree, node.merkle) {
                    todo.push((sub, m, depth + 1));
                }
            }
        }
        if missing > 0 {
            self.problem(
                ProblemKind::Refs,
                FileType::Refs.name(&refs_id),
                None,
                None,
                format!(
                    "snapshot {}'s refs object omits {missing} blob(s) its trees need: a prune would delete them. Do not prune; report this as a bug",
                    id.short()
                ),
            );
        }
    }

    /// Check a tree at `depth` and everything below it, each tree once, and return what it
    /// expands to (`None` when something below could not be loaded or nests too deep).
    fn walk_tree(
        &mut self,
        w: &mut TreeWalk,
        snap: &str,
        tree_id: &Id,
        merkle: &Id,
        rel: &str,
        depth: usize,
    ) -> Option<Expanse> {
        if let Some(e) = w.expanse.get(tree_id) {
            return *e;
        }
        if depth > MAX_DEPTH {
            // Not loaded: a forged chain of trees must not exhaust the stack.
            w.too_deep = true;
            return None;
        }
        let tree = match w.reader.tree(tree_id, merkle) {
            Ok(t) => t,
            Err(e) => {
                let damaged = DamagedPath {
                    snapshot: snap.to_string(),
                    path: if rel.is_empty() {
                        "/".into()
                    } else {
                        format!("{rel}/")
                    },
                };
                let p = match self.tree_problems.get(tree_id) {
                    Some(&p) => p,
                    None => {
                        let pack = w.master.get(tree_id).map(|l| l.pack);
                        let object = pack
                            .map(|p| FileType::Pack.name(&p))
                            .unwrap_or_else(|| "index".into());
                        let p = self.problem(
                            ProblemKind::Tree,
                            object,
                            pack,
                            Some(*tree_id),
                            format!("tree cannot be loaded: {e}"),
                        );
                        self.tree_problems.insert(*tree_id, p);
                        p
                    }
                };
                self.report.problems[p].damaged.push(damaged);
                // Not remembered: every path that reaches it is named.
                return None;
            }
        };
        self.report.counts.trees_checked += 1;
        let mut total = Some(Expanse::default());
        for node in &tree.nodes {
            let path = join(rel, &node.name);
            let below = match node.kind {
                NodeKind::Dir => match (node.subtree, node.merkle) {
                    (Some(sub), Some(m)) => self
                        .walk_tree(w, snap, &sub, &m, &path, depth + 1)
                        .map(|e| e.under_dir()),
                    _ => None,
                },
                NodeKind::File => {
                    self.check_file(w.master, w.max_chunk, node);
                    Some(Expanse::file(node.size))
                }
                NodeKind::Symlink => Some(Expanse::default()),
            };
            total = total.zip(below).map(|(a, b)| a.plus(b));
        }
        w.expanse.insert(*tree_id, total);
        total
    }

    fn check_file(&mut self, master: &MasterIndex, max_chunk: u32, node: &Node) {
        self.report.counts.files_checked += 1;
        let mut total = 0u64;
        let mut complete = true;
        for c in &node.chunks {
            let mut lengths: Vec<u32> = master
                .copies(c)
                .filter(|l| l.blob.kind == BlobKind::Data)
                .map(|l| l.blob.raw_length)
                .collect();
            lengths.sort_unstable();
            lengths.dedup();
            let possible: Vec<u32> = lengths
                .iter()
                .copied()
                .filter(|&l| l <= max_chunk)
                .collect();
            if let [one] = possible[..] {
                total += u64::from(one);
            } else {
                complete = false;
            }
            if self.blob_problems.contains_key(c) || (lengths.len() == 1 && possible.len() == 1) {
                continue;
            }
            let p = match (master.get(c), lengths.is_empty()) {
                (None, _) => self.problem(
                    ProblemKind::BlobMissing,
                    "index",
                    None,
                    Some(*c),
                    "a file needs this blob but no index lists it (lost index or pack)".into(),
                ),
                (Some(loc), true) => self.problem(
                    ProblemKind::Blob,
                    FileType::Pack.name(&loc.pack),
                    Some(loc.pack),
                    Some(*c),
                    "a file needs this blob as data, the index lists it as a tree".into(),
                ),
                (Some(_), false) => self.problem(
                    ProblemKind::Index,
                    "index",
                    None,
                    Some(*c),
                    format!(
                        "the indexes list copies of this chunk with lengths {lengths:?} (at most \
                         {max_chunk} is possible): an entry was planted or damaged; restore \
                         reads the chunk to tell which copy is genuine"
                    ),
                ),
            };
            self.blob_problems.insert(*c, p);
        }
        if complete && total != node.size {
            self.problem(
                ProblemKind::File,
                "snapshots",
                None,
                None,
                format!(
                    "file {:?}: chunks add up to {total} bytes, the tree says {}",
                    node.name, node.size
                ),
            );
        }
    }
}
