//! The Merkle fingerprint of a snapshot.
//!
//! Every tree node hashes its metadata and content (file: BLAKE3 of the content; directory:
//! the Merkle hash of its tree; symlink: the target). A directory's hash covers its nodes in
//! name order. The root directory's hash is the snapshot fingerprint: it can be recomputed
//! from a restored directory without any key, and it changes if any byte, name, mode or
//! mtime changes. Owners are not covered (they only restore as root).

use crate::repofile::{Node, NodeKind, Tree};
use crate::{Error, Id, Result};

/// Hash of one node.
pub fn node_hash(node: &Node) -> Result<Id> {
    let missing = |what: &str| Error::Corrupt(format!("entry {:?} has no {what}", node.name));
    let mut h = blake3::Hasher::new();
    h.update(b"vtool-node-v1\0");
    h.update(&[match node.kind {
        NodeKind::File => b'f',
        NodeKind::Dir => b'd',
        NodeKind::Symlink => b'l',
    }]);
    h.update(&(node.name.len() as u64).to_le_bytes());
    h.update(node.name.as_bytes());
    h.update(&node.mode.to_le_bytes());
    h.update(&node.mtime_ns.to_le_bytes());
    h.update(&node.size.to_le_bytes());
    match node.kind {
        NodeKind::File => h.update(&node.content.ok_or_else(|| missing("content hash"))?.0),
        NodeKind::Dir => h.update(&node.merkle.ok_or_else(|| missing("Merkle hash"))?.0),
        NodeKind::Symlink => {
            let target = node
                .target
                .as_deref()
                .ok_or_else(|| missing("link target"))?;
            h.update(&(target.len() as u64).to_le_bytes());
            h.update(target.as_bytes())
        }
    };
    Ok(h.finalize().into())
}

/// Merkle hash of a directory listing (nodes must be sorted by name).
pub fn tree_hash(tree: &Tree) -> Result<Id> {
    let mut h = blake3::Hasher::new();
    h.update(b"vtool-dir-v1\0");
    h.update(&(tree.nodes.len() as u64).to_le_bytes());
    for node in &tree.nodes {
        h.update(&node_hash(node)?.0);
    }
    Ok(h.finalize().into())
}
