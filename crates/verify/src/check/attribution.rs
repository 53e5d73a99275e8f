//! Naming the snapshots and paths that damaged blobs and packs reach, by walking the trees
//! once more, only when there is something to attribute.

use std::collections::{BTreeSet, HashMap, HashSet};

use vtool_snapshot::keys::RestoreKey;
use vtool_snapshot::reader::BlobReader;
use vtool_snapshot::repofile::{NodeKind, Snapshot};
use vtool_snapshot::tree::TreeBudget;
use vtool_snapshot::{Id, Repository};

use super::trees::join;
use super::{Checker, DamagedPath, Problem, ProblemKind};

impl Checker {
    /// Name the snapshots and paths each blob or pack problem damages. A blob is damaged
    /// only when every copy of it is: a bad copy beside an intact one (an entry planted by
    /// someone without the keys) damages nothing, and its problem says so.
    pub(super) fn attribute(
        &mut self,
        repo: &Repository,
        key: &RestoreKey,
        snapshots: &[(Id, Snapshot)],
    ) {
        let mut by_blob: HashMap<Id, Vec<(Option<Id>, usize)>> = HashMap::new();
        let mut by_pack: HashMap<Id, Vec<usize>> = HashMap::new();
        for (i, p) in self.report.problems.iter().enumerate() {
            let id = |s: &Option<String>| s.as_deref().and_then(Id::from_hex);
            let precise = |p: &Problem| id(&p.pack).is_some_and(|pk| self.read_packs.contains(&pk));
            match p.kind {
                // Tree problems already carry the directories they cut off; a trailer
                // disagreement loses no data.
                ProblemKind::Tree | ProblemKind::PackTrailer => continue,
                // Index entries disagreeing on a blob: restore reads it to find out.
                ProblemKind::Index if p.blob.is_some() => continue,
                // The pack was decrypted: its blob problems say exactly what is lost.
                ProblemKind::PackHash if precise(p) => continue,
                _ => {}
            }
            match (id(&p.blob), id(&p.pack)) {
                (Some(b), pack) => by_blob.entry(b).or_default().push((pack, i)),
                (None, Some(pk)) => by_pack.entry(pk).or_default().push(i),
                _ => {}
            }
        }
        if by_blob.is_empty() && by_pack.is_empty() {
            return;
        }
        let mut found: HashMap<usize, BTreeSet<DamagedPath>> = HashMap::new();
        let mut spared = HashSet::new();
        {
            let reader = BlobReader::new(repo, key, &self.master);
            let mut a = Attribution {
                reader: &reader,
                by_blob: &by_blob,
                by_pack: &by_pack,
                clean: HashSet::new(),
                found: &mut found,
                spared: &mut spared,
            };
            for (id, snap) in snapshots {
                let mut budget = TreeBudget::new(&snap.summary);
                a.walk(
                    &id.short(),
                    &snap.tree,
                    &snap.fingerprint,
                    "",
                    &mut budget,
                    0,
                );
            }
        }
        for i in spared {
            if !found.contains_key(&i) {
                self.report.problems[i]
                    .message
                    .push_str("; another listed copy shows no damage, and restores use it");
            }
        }
        for (i, paths) in found {
            let d = &mut self.report.problems[i].damaged;
            d.extend(paths);
            d.sort();
            d.dedup();
        }
    }
}

/// Finds the snapshots and paths reached by damaged blobs and packs.
struct Attribution<'a, 'r> {
    reader: &'a BlobReader<'r>,
    /// Problems per blob, with the pack of the copy concerned (`None`: every copy).
    by_blob: &'a HashMap<Id, Vec<(Option<Id>, usize)>>,
    by_pack: &'a HashMap<Id, Vec<usize>>,
    /// Trees with nothing damaged below them.
    clean: HashSet<Id>,
    found: &'a mut HashMap<usize, BTreeSet<DamagedPath>>,
    /// Problems of a bad copy whose blob has another copy without problems.
    spared: &'a mut HashSet<usize>,
}

impl Attribution<'_, '_> {
    fn hit(&mut self, blob: &Id, snap: &str, path: String) -> bool {
        let of_blob = self
            .by_blob
            .get(blob)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let of_copy = |pack: Option<Id>| of_blob.iter().filter(move |(pk, _)| *pk == pack);
        // Problems of every copy at once (no index lists the blob), then of each copy.
        let mut problems: Vec<usize> = of_copy(None).map(|&(_, p)| p).collect();
        let mut intact_copy = false;
        for loc in self.reader.index.copies(blob) {
            let before = problems.len();
            problems.extend(self.by_pack.get(&loc.pack).into_iter().flatten());
            problems.extend(of_copy(Some(loc.pack)).map(|&(_, p)| p));
            intact_copy |= problems.len() == before;
        }
        if intact_copy && of_copy(None).next().is_none() {
            self.spared.extend(problems);
            return false;
        }
        for &p in &problems {
            self.found.entry(p).or_default().insert(DamagedPath {
                snapshot: snap.to_string(),
                path: path.clone(),
            });
        }
        !problems.is_empty()
    }

    /// Returns whether anything at or below this tree, at `depth`, is damaged. The walk
    /// stays within the snapshot's authenticated totals (the structure walk reports a
    /// snapshot beyond them).
    fn walk(
        &mut self,
        snap: &str,
        tree_id: &Id,
        merkle: &Id,
        rel: &str,
        budget: &mut TreeBudget,
        depth: usize,
    ) -> bool {
        if self.clean.contains(tree_id) {
            return false;
        }
        let dir_path = if rel.is_empty() {
            "/".to_string()
        } else {
            format!("{rel}/")
        };
        if self.hit(tree_id, snap, dir_path) {
            return true;
        }
        let Ok(tree) = self.reader.tree(tree_id, merkle) else {
            // Reported as a tree problem by the structure walk.
            return true;
        };
        if budget.enter(&tree, depth).is_err() {
            return true;
        }
        let mut damaged = false;
        for node in &tree.nodes {
            let path = join(rel, &node.name);
            match node.kind {
                NodeKind::Dir => {
                    if let (Some(sub), Some(m)) = (node.subtree, node.merkle) {
                        damaged |= self.walk(snap, &sub, &m, &path, budget, depth + 1);
                    }
                }
                NodeKind::File => {
                    let mut hit = false;
                    for c in &node.chunks {
                        hit |= self.hit(c, snap, path.clone());
                    }
                    damaged |= hit;
                }
                NodeKind::Symlink => {}
            }
        }
        if !damaged {
            self.clean.insert(*tree_id);
        }
        damaged
    }
}
