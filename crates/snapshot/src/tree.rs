//! Tree blobs: encoding, decoding and the checks that make hostile trees harmless.

use crate::repofile::{NodeKind, Tree};
use crate::{Error, Result};

/// Serialize a tree; nodes must already be sorted by name.
pub fn encode_tree(tree: &Tree) -> Result<Vec<u8>> {
    serde_json::to_vec(tree).map_err(|e| Error::Corrupt(e.to_string()))
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
