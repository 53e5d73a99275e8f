//! Storing the directory trees bottom-up, with the Merkle fingerprint.

use std::path::Path;

use super::packer::Engine;
use super::scan::Scan;
use crate::blob;
use crate::pack::PackWriter;
use crate::repofile::{BlobKind, NodeKind, Tree};
use crate::{merkle, tree, Error, Id, Result};

#[derive(Default)]
pub(super) struct TreeStats {
    pub(super) files: u64,
    pub(super) dirs: u64,
    pub(super) bytes: u64,
    /// Every blob the trees reference, and the trees themselves (the snapshot's refs).
    pub(super) refs: Vec<Id>,
}

impl Engine<'_> {
    /// Store every directory as a tree blob, bottom-up; returns the root tree's id and the
    /// snapshot fingerprint.
    pub(super) fn store_trees(&self, scan: &Scan) -> Result<(Id, Id, TreeStats)> {
        let mut stats = TreeStats::default();
        let mut writer = PackWriter::new(self.repo.pack_layout(), &self.key.recipients, 1 << 20)?;
        let (root_id, root_merkle) = self.store_dir(scan, &scan.roots, &mut writer, &mut stats)?;
        if !writer.is_empty() {
            self.store_pack(writer)?;
        }
        Ok((root_id, root_merkle, stats))
    }

    fn store_dir(
        &self,
        scan: &Scan,
        children: &[usize],
        writer: &mut PackWriter,
        stats: &mut TreeStats,
    ) -> Result<(Id, Id)> {
        let mut nodes = Vec::with_capacity(children.len());
        for &c in children {
            let e = &scan.entries[c];
            if e.failed {
                continue;
            }
            let mut node = e.node();
            match e.kind {
                NodeKind::Dir => {
                    let (id, merkle) = self.store_dir(scan, &e.children, writer, stats)?;
                    node.subtree = Some(id);
                    node.merkle = Some(merkle);
                    stats.dirs += 1;
                }
                NodeKind::File => {
                    stats.files += 1;
                    stats.bytes += e.size;
                    stats.refs.extend_from_slice(&node.chunks);
                }
                NodeKind::Symlink => {}
            }
            nodes.push(node);
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = Tree { nodes };
        let merkle = merkle::tree_hash(&tree)?;
        let data = tree::encode_tree(&tree)?;
        if data.len() > tree::MAX_TREE_SIZE as usize {
            let dir = children
                .first()
                .and_then(|&c| scan.entries[c].path.parent())
                .unwrap_or(Path::new("/"));
            return Err(Error::TreeTooLarge(dir.to_path_buf()));
        }
        let id = self.key.chunk_key.blob_id(&data);
        stats.refs.push(id);
        if self.claim(id)? {
            writer.add(
                id,
                BlobKind::Tree,
                &blob::encode(data, self.repo.config().zstd_level),
            )?;
            if writer.len() >= self.repo.config().pack_size {
                let full = std::mem::replace(
                    writer,
                    PackWriter::new(self.repo.pack_layout(), &self.key.recipients, 1 << 20)?,
                );
                self.store_pack(full)?;
            }
        }
        Ok((id, merkle))
    }
}
