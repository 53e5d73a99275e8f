//! Reading blobs back with the restore identity, checking each against its id.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use crate::index::{BlobLocation, MasterIndex};
use crate::keys::RestoreKey;
use crate::pack::{blob_slice, decrypt_pack, pack_name};
use crate::repofile::{BlobKind, Tree};
use crate::{blob, crypto, merkle, tree, Error, Id, Repository, Result};

/// Threads for work that fetches whole packs (restore, check): fetching blocks on the disk
/// or network, so one more pack in flight than cores keeps the cores busy meanwhile.
pub fn pack_fetch_pool() -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads() + 1)
        .build()
        .map_err(|e| Error::Threads(e.to_string()))
}

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
        Ok(self
            .decode_blob(blob_slice(plain, &loc.blob)?, loc)?
            .into_owned())
    }

    /// Decrypt a pack front to back and hand `f` each blob of `wanted` (sorted by offset),
    /// decoded and checked, by its position in `wanted`. Only the stored pack is held in
    /// memory, not its plaintext. A blob that cannot be read is handed over as an error, as
    /// is every blob after a damaged part of the stream (age authenticates 64 KiB chunks).
    /// `Err` means the pack could not be fetched or opened at all.
    pub fn for_each_blob(
        &self,
        pack: &Id,
        wanted: &[&BlobLocation],
        mut f: impl FnMut(usize, Result<&[u8]>) -> Result<()>,
    ) -> Result<()> {
        let stored = self.repo.backend().get(&pack_name(pack))?;
        let what = format!("pack {}", pack.short());
        let mut stream = crypto::stream_reader(&self.key.identity, &stored[..], &what)?;
        let mut pos = 0u64;
        let mut broken: Option<String> = None;
        let mut buf = Vec::new();
        for (i, loc) in wanted.iter().enumerate() {
            let b = &loc.blob;
            let end = b.offset.checked_add(u64::from(b.length));
            // The plaintext is shorter than the stored bytes: this bounds hostile lengths.
            if b.offset < pos || end.is_none_or(|e| e > stored.len() as u64) {
                f(
                    i,
                    Err(Error::Corrupt(format!(
                        "blob {} lies outside its pack or overlaps another ({what})",
                        b.id.short()
                    ))),
                )?;
                continue;
            }
            if let Some(why) = &broken {
                f(i, Err(Error::Corrupt(why.clone())))?;
                continue;
            }
            let skip = b.offset - pos;
            let len = u64::from(b.length);
            buf.clear();
            // read_to_end fills spare capacity without zeroing it first.
            let read = std::io::copy(&mut (&mut stream).take(skip), &mut std::io::sink()).and_then(
                |skipped| {
                    let n = (&mut stream).take(len).read_to_end(&mut buf)?;
                    if skipped == skip && n as u64 == len {
                        Ok(())
                    } else {
                        Err(std::io::ErrorKind::UnexpectedEof.into())
                    }
                },
            );
            match read {
                Ok(()) => {
                    pos = b.offset + u64::from(b.length);
                    match self.decode_blob(&buf, loc) {
                        Ok(data) => f(i, Ok(&data))?,
                        Err(e) => f(i, Err(e))?,
                    }
                }
                Err(e) => {
                    let why = format!("{what} is damaged: {e}");
                    broken = Some(why.clone());
                    f(i, Err(Error::Corrupt(why)))?;
                }
            }
        }
        Ok(())
    }

    fn decode_blob<'b>(&self, stored: &'b [u8], loc: &BlobLocation) -> Result<Cow<'b, [u8]>> {
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
