//! Reading blobs back with the restore identity, checking each against its id.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use vtool_transfer::Backend;

use crate::index::{BlobLocation, MasterIndex};
use crate::keys::RestoreKey;
use crate::pack::{blob_slice, unseal_blob, OpenedPack, PackLayout};
use crate::repofile::{BlobKind, Snapshot, Tree};
use crate::sealed::Sealed;
use crate::{blob, crypto, merkle, tree, Error, FileType, Id, Repository, Result};

/// Threads for work that fetches whole packs (restore, check): fetching blocks on the disk
/// or network, so [`Backend::concurrency`] more packs in flight than cores keep the cores
/// busy meanwhile.
pub fn pack_fetch_pool(backend: &dyn Backend) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads() + backend.concurrency())
        .build()
        .map_err(|e| Error::Threads(e.to_string()))
}

/// A snapshot opened for reading: its repository, the restore key, the index (loaded once,
/// through the cache when there is one) and the authenticated snapshot itself.
pub struct OpenedSnapshot {
    pub repo: Repository,
    pub key: RestoreKey,
    pub index: MasterIndex,
    pub id: Id,
    pub snapshot: Sealed<Snapshot>,
}

impl OpenedSnapshot {
    /// Authenticate `snapshot` and load the index. `cache_base` as for backups (`None`
    /// reads every index from the repository).
    pub fn open(
        repo: Repository,
        key: RestoreKey,
        id: Id,
        snapshot: Sealed<Snapshot>,
        cache_base: Option<&Path>,
    ) -> Result<Self> {
        repo.verify_snapshot(&snapshot, &key.chunk_key)?;
        let index = repo.load_index_cached(cache_base)?;
        Ok(OpenedSnapshot {
            repo,
            key,
            index,
            id,
            snapshot,
        })
    }

    /// A reader of its blobs; keep one for several passes (restore, then verify) so tree
    /// packs are decrypted once.
    pub fn reader(&self) -> BlobReader<'_> {
        BlobReader::new(&self.repo, &self.key, &self.index)
    }
}

/// One tree pack, once some thread has fetched it.
type TreePackSlot = Arc<Mutex<Option<Arc<OpenedPack>>>>;

/// Reads and authenticates blobs of one repository.
pub struct BlobReader<'a> {
    pub repo: &'a Repository,
    pub key: &'a RestoreKey,
    pub index: &'a MasterIndex,
    /// Opened tree packs; they are small and read many times.
    tree_packs: Mutex<HashMap<Id, TreePackSlot>>,
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

    /// Fetch a whole pack and open it (a stream pack is decrypted).
    pub fn open_pack(&self, pack: &Id) -> Result<OpenedPack> {
        let stored = self.repo.backend().get(&FileType::Pack.name(pack))?;
        OpenedPack::open(self.repo.pack_layout(), &self.key.identity, pack, stored)
    }

    /// Decode one blob from an opened pack and check it against its id.
    pub fn open_blob(&self, pack: &OpenedPack, loc: &BlobLocation) -> Result<Vec<u8>> {
        let encoded = pack.blob(&self.key.identity, &loc.blob)?;
        Ok(self.decode_blob(&encoded, loc)?.into_owned())
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
        let stored = self.repo.backend().get(&FileType::Pack.name(pack))?;
        if self.repo.pack_layout() == PackLayout::SealedBlobs {
            for (i, loc) in wanted.iter().enumerate() {
                let blob = blob_slice(&stored, &loc.blob)
                    .and_then(|sealed| unseal_blob(&self.key.identity, sealed, &loc.blob, pack))
                    .and_then(|encoded| Ok(self.decode_blob(&encoded, loc)?.into_owned()));
                match blob {
                    Ok(data) => f(i, Ok(&data))?,
                    Err(e) => f(i, Err(e))?,
                }
            }
            return Ok(());
        }
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
        let data = blob::decode(stored, &loc.blob, &self.repo.config().chunker)?;
        if self.key.chunk_key.blob_id(&data) != loc.blob.id {
            return Err(Error::Corrupt(format!(
                "blob {} in pack {} does not match its id",
                loc.blob.id.short(),
                loc.pack.short()
            )));
        }
        Ok(data)
    }

    /// Read one blob from the first of its copies that verifies, with `plain` handing out
    /// opened packs (the caller's cache). Only the last copy's error is returned.
    pub fn read_blob(
        &self,
        id: &Id,
        kind: BlobKind,
        plain: impl Fn(&Id) -> Result<Arc<OpenedPack>>,
    ) -> Result<Vec<u8>> {
        let mut last = None;
        for loc in self.index.locate_all(id, kind)? {
            match plain(&loc.pack).and_then(|p| self.open_blob(&p, loc)) {
                Ok(data) => return Ok(data),
                Err(e) if falls_back(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Corrupt(format!("blob {} has no copy", id.short()))))
    }

    /// Fetch every blob of `wanted`, each from the first of its copies that verifies, and
    /// hand `f` its position in `wanted` and its plaintext. Packs are read in parallel, each
    /// once per round; a blob whose copy fails is tried from its next copy in the next
    /// round. Returns the blobs no copy of which could be read, with the last error.
    pub fn fetch_verified(
        &self,
        wanted: &[(Id, BlobKind)],
        f: impl Fn(usize, &[u8]) -> Result<()> + Sync,
    ) -> Result<Vec<(usize, String)>> {
        let mut copies = Vec::with_capacity(wanted.len());
        let mut failed: HashMap<usize, String> = HashMap::new();
        for (i, (id, kind)) in wanted.iter().enumerate() {
            match self.index.locate_all(id, *kind) {
                Ok(c) => copies.push(c),
                Err(e) => {
                    failed.insert(i, e.to_string());
                    copies.push(Vec::new());
                }
            }
        }
        let mut todo: Vec<usize> = (0..wanted.len())
            .filter(|i| !failed.contains_key(i))
            .collect();
        let pool = pack_fetch_pool(self.repo.backend())?;
        for round in 0.. {
            let attempted: Vec<usize> = todo
                .iter()
                .copied()
                .filter(|&i| copies[i].len() > round)
                .collect();
            if attempted.is_empty() {
                break;
            }
            let mut by_pack: HashMap<Id, Vec<usize>> = HashMap::new();
            for &i in &attempted {
                by_pack.entry(copies[i][round].pack).or_default().push(i);
            }
            let errors = Mutex::new(HashMap::new());
            let note = |i: usize, e: String| -> Result<()> {
                errors.lock().map_err(Error::poisoned)?.insert(i, e);
                Ok(())
            };
            let packs: Vec<_> = by_pack.into_iter().collect();
            pool.install(|| {
                packs
                    .par_iter()
                    .try_for_each(|(pack, blobs)| -> Result<()> {
                        let mut blobs = blobs.clone();
                        blobs.sort_by_key(|&i| copies[i][round].blob.offset);
                        let locs: Vec<&BlobLocation> =
                            blobs.iter().map(|&i| copies[i][round]).collect();
                        let streamed = self.for_each_blob(pack, &locs, |j, blob| match blob {
                            Ok(data) => f(blobs[j], data),
                            Err(e) => note(blobs[j], e.to_string()),
                        });
                        match streamed {
                            Err(e) if falls_back(&e) => {
                                for &i in &blobs {
                                    note(i, format!("pack {}: {e}", pack.short()))?;
                                }
                                Ok(())
                            }
                            other => other,
                        }
                    })
            })?;
            let mut errors = errors.into_inner().map_err(Error::poisoned)?;
            todo.clear();
            for i in attempted {
                match errors.remove(&i) {
                    Some(e) => {
                        failed.insert(i, e);
                        todo.push(i);
                    }
                    None => {
                        failed.remove(&i);
                    }
                }
            }
        }
        let mut out: Vec<_> = failed.into_iter().collect();
        out.sort();
        Ok(out)
    }

    /// Load a tree and check it against the Merkle hash its parent (or the snapshot) records.
    pub fn tree(&self, id: &Id, expected_merkle: &Id) -> Result<Tree> {
        let data = self.read_blob(id, BlobKind::Tree, |pack| self.tree_pack(pack))?;
        let tree = tree::decode_tree(&data)?;
        if merkle::tree_hash(&tree)? != *expected_merkle {
            return Err(Error::Corrupt(format!(
                "tree {} does not match the Merkle hash recorded above it",
                id.short()
            )));
        }
        Ok(tree)
    }

    /// An opened tree pack, from the cache when it was read before. Walks run in parallel:
    /// threads that want the same pack wait for the one fetching it rather than each
    /// fetching it again (one GET per pack, not one per directory, on an object store).
    fn tree_pack(&self, pack: &Id) -> Result<Arc<OpenedPack>> {
        let slot = self
            .tree_packs
            .lock()
            .map_err(Error::poisoned)?
            .entry(*pack)
            .or_default()
            .clone();
        let mut slot = slot.lock().map_err(Error::poisoned)?;
        if let Some(p) = &*slot {
            return Ok(p.clone());
        }
        let p = Arc::new(self.open_pack(pack)?);
        *slot = Some(p.clone());
        Ok(p)
    }
}

/// Whether another copy may serve where this error stopped one: the copy is damaged,
/// missing, or encrypted to someone else (planted).
fn falls_back(e: &Error) -> bool {
    e.is_data_problem() || matches!(e, Error::WrongKey(_))
}
