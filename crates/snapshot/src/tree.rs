//! Tree blobs: encoding, decoding and the checks that make hostile trees harmless.

use crate::repofile::{NodeKind, SnapshotSummary, Tree};
use crate::{Error, Result};

/// Largest tree blob (its JSON before compression). Readers refuse bigger ones before
/// inflating anything; a directory of about a million entries, or a file of four million
/// chunks, stays below it.
pub const MAX_TREE_SIZE: u32 = 256 << 20;

/// Deepest directory nesting in a snapshot: the root tree is at depth 0, the tree of a
/// top-level directory at 1. Backup leaves deeper directories out (a path that deep is
/// longer than Linux's `PATH_MAX` anyway) and readers refuse deeper trees as damaged, so a
/// forged chain of nested trees cannot exhaust a walk's stack.
pub const MAX_DEPTH: usize = 1024;

/// Bounds one walk of a snapshot's trees by what its authenticated summary claims, so a
/// forged tree that lists a subtree many times (a DAG expanding to 2^n entries) fails fast
/// instead of expanding without end. Backup counts the summary exactly as this does.
pub struct TreeBudget {
    summary: SnapshotSummary,
    /// Files, directories and file bytes expanded so far.
    seen: [u64; 3],
}

impl TreeBudget {
    pub fn new(summary: &SnapshotSummary) -> Self {
        TreeBudget {
            summary: summary.clone(),
            seen: [0; 3],
        }
    }

    /// Count the entries of `tree`, at `depth`, that a walk is about to expand.
    pub fn enter(&mut self, tree: &Tree, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::Corrupt(too_deep()));
        }
        let [files, dirs, bytes] = &mut self.seen;
        for node in &tree.nodes {
            match node.kind {
                NodeKind::File => {
                    *files += 1;
                    *bytes = bytes.saturating_add(node.size);
                }
                NodeKind::Dir => *dirs += 1,
                NodeKind::Symlink => {}
            }
        }
        match exceeds_summary(self.seen, &self.summary) {
            Some(why) => Err(Error::Corrupt(why)),
            None => Ok(()),
        }
    }
}

/// Why trees holding `[files, directories, file bytes]` are more than `summary` records.
pub fn exceeds_summary(seen: [u64; 3], summary: &SnapshotSummary) -> Option<String> {
    let claimed = [summary.files, summary.dirs, summary.bytes];
    if seen.iter().zip(&claimed).all(|(s, c)| s <= c) {
        return None;
    }
    Some(format!(
        "the snapshot's trees hold more than the {} files, {} directories and {} bytes its \
         authenticated summary records (a forged tree that lists the same subtree again and \
         again?)",
        summary.files, summary.dirs, summary.bytes
    ))
}

/// Why trees nested deeper than [`MAX_DEPTH`] are refused.
pub fn too_deep() -> String {
    format!("directories nest deeper than {MAX_DEPTH} levels, the most the format allows")
}

/// Serialize a tree; nodes must already be sorted by name.
pub fn encode_tree(tree: &Tree) -> Result<Vec<u8>> {
    serde_json::to_vec(tree).map_err(|e| Error::Internal(e.to_string()))
}

/// Parse a tree blob and refuse names that could escape a restore target, duplicates, and
/// entries that lack what their kind needs.
pub fn decode_tree(data: &[u8]) -> Result<Tree> {
    let tree: Tree = serde_json::from_slice(data)
        .map_err(|e| Error::Corrupt(format!("tree is malformed: {e}")))?;
    let mut prev: Option<&str> = None;
    for node in &tree.nodes {
        check_name(&node.name)?;
        if prev.is_some_and(|p| p >= node.name.as_str()) {
            return Err(Error::Corrupt(format!(
                "tree entries are not sorted or repeat the name {:?}",
                node.name
            )));
        }
        prev = Some(&node.name);
        let ok = match node.kind {
            NodeKind::File => node.content.is_some(),
            NodeKind::Dir => node.subtree.is_some() && node.merkle.is_some(),
            NodeKind::Symlink => node.target.is_some(),
        };
        if !ok {
            return Err(Error::Corrupt(format!(
                "entry {:?} is incomplete",
                node.name
            )));
        }
    }
    Ok(tree)
}

/// A name must be a single, ordinary path component.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::UnsafeName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repofile::Node;

    fn node(name: &str, kind: NodeKind, size: u64) -> Node {
        Node {
            name: name.into(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            size,
            content: None,
            chunks: Vec::new(),
            subtree: None,
            merkle: None,
            target: None,
        }
    }

    #[test]
    fn budget_refuses_more_than_the_summary_and_too_deep() {
        let summary = SnapshotSummary {
            files: 2,
            dirs: 1,
            bytes: 10,
            ..Default::default()
        };
        let tree = Tree {
            nodes: vec![node("a", NodeKind::Dir, 0), node("f", NodeKind::File, 5)],
        };
        let mut budget = TreeBudget::new(&summary);
        budget.enter(&tree, 0).expect("within the summary");
        // The same subtree listed a second time: one directory more than recorded.
        assert!(budget.enter(&tree, 1).is_err());
        let mut budget = TreeBudget::new(&summary);
        let empty = Tree::default();
        budget.enter(&empty, MAX_DEPTH).expect("at the limit");
        assert!(budget.enter(&empty, MAX_DEPTH + 1).is_err());
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in ["..", ".", "a/b", "", "x\0y", "../../etc"] {
            let json = format!(
                r#"{{"nodes":[{{"name":{},"kind":"symlink","mode":511,"uid":0,"gid":0,"mtime_ns":0,"size":0,"target":"x"}}]}}"#,
                serde_json::to_string(name).expect("json")
            );
            assert!(decode_tree(json.as_bytes()).is_err(), "{name:?} accepted");
        }
    }
}
