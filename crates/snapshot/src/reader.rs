//! Reading blobs back with the restore identity, checking each against its id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::index::{BlobLocation, MasterIndex};
use crate::keys::RestoreKey;
use crate::pack::{blob_slice, decrypt_pack, pack_name};
use crate::repofile::{BlobKind, Tree};
use crate::{blob, merkle, tree, Error, Id, Repository, Result};

/// Reads and authenticates blobs of one repository.
pub struct BlobReader<'a> {
    pub repo: &'a Repository,
    pub key: &'a RestoreKey,
    pub index: &'a MasterIndex,
    /// Decrypted tree packs; they are small and read many times.
    tree_packs: Mutex<HashMap<Id, Arc<Vec<u8>>>>,
}

impl<'a> BlobReader<'a> {
    pub fn new(repo: &'a Repository, key: &'a RestoreKey, index: &'a MasterIndex) -> Self {
        BlobReader {
            repo,
            key,
            index,
            tree_packs: Mutex::new(HashMap::new()),
        }
    }

    /// Fetch and decrypt a whole pack.
    pub fn pack_plaintext(&self, pack: &Id) -> Result<Vec<u8>> {
        let stored = self.repo.backend().get(&pack_name(pack))?;
        decrypt_pack(&self.key.identity, pack, &stored)
    }

    /// Decode one blob from a decrypted pack and check it against its id.
    pub fn open_blob(&self, plain: &[u8], loc: &BlobLocation) -> Result<Vec<u8>> {
        let stored = blob_slice(plain, &loc.blob)?;
        let data = blob::decode(stored, loc.blob.raw_length, loc.blob.compressed)?;
        if self.key.chunk_key.blob_id(&data) != loc.blob.id {
            return Err(Error::Corrupt(format!(
                "blob {} in pack {} does not match its id",
                loc.blob.id.short(),
                loc.pack.short()
            )));
        }
        Ok(data)
    }

    /// Load a tree and check it against the Merkle hash its parent (or the snapshot) records.
    pub fn tree(&self, id: &Id, expected_merkle: &Id) -> Result<Tree> {
        let loc = self.index.locate(id, BlobKind::Tree)?;
        let plain = {
            let cached = self
                .tree_packs
                .lock()
                .map_err(|_| Error::Corrupt("lock".into()))?
                .get(&loc.pack)
                .cloned();
            match cached {
                Some(p) => p,
                None => {
                    let p = Arc::new(self.pack_plaintext(&loc.pack)?);
                    self.tree_packs
                        .lock()
                        .map_err(|_| Error::Corrupt("lock".into()))?
                        .insert(loc.pack, p.clone());
                    p
                }
            }
        };
        let tree = tree::decode_tree(&self.open_blob(&plain, loc)?)?;
        if merkle::tree_hash(&tree)? != *expected_merkle {
            return Err(Error::Corrupt(format!(
                "tree {} does not match the Merkle hash recorded above it",
                id.short()
            )));
        }
        Ok(tree)
    }
}
