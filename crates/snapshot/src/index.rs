//! The in-memory index: blob id → where it is stored.

use std::collections::HashMap;

use crate::repofile::{BlobKind, IndexFile, IndexedPack, PackedBlob};
use crate::{Error, Id, Result};

/// Where a blob lives.
#[derive(Debug, Clone, Copy)]
pub struct BlobLocation {
    pub pack: Id,
    pub blob: PackedBlob,
}

/// Every blob of every index file of a repository.
#[derive(Debug, Default)]
pub struct MasterIndex {
    /// The first copy listed of each blob.
    blobs: HashMap<Id, BlobLocation>,
    /// Further copies of blobs stored more than once: by concurrent backups, or listed by an
    /// index someone planted (blob ids are plaintext and the recipients public, so a storage
    /// host can list a known id in a pack of its own). Readers try them in order when a copy
    /// fails to verify.
    more: HashMap<Id, Vec<BlobLocation>>,
    packs: HashMap<Id, u64>,
    /// Index files that could not be used, with why.
    pub damaged: Vec<String>,
}

impl MasterIndex {
    pub fn add_pack(&mut self, pack: &IndexedPack) {
        self.packs.insert(pack.id, pack.size);
        for blob in &pack.blobs {
            let loc = BlobLocation {
                pack: pack.id,
                blob: *blob,
            };
            match self.blobs.get(&blob.id) {
                None => {
                    self.blobs.insert(blob.id, loc);
                }
                // The same pack listed by two index files (e.g. one rebuilt by `repair`).
                Some(first) if first.pack == pack.id && first.blob == *blob => {}
                Some(_) => {
                    let more = self.more.entry(blob.id).or_default();
                    if !more.iter().any(|m| m.pack == pack.id && m.blob == *blob) {
                        more.push(loc);
                    }
                }
            }
        }
    }

    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack);
        }
    }

    /// Drop every copy held by `packs` (packs a prune condemned: a backup must not
    /// deduplicate against them).
    pub fn without_packs(mut self, packs: &std::collections::HashSet<Id>) -> MasterIndex {
        if packs.is_empty() {
            return self;
        }
        let mut kept = MasterIndex {
            damaged: std::mem::take(&mut self.damaged),
            ..Default::default()
        };
        for (id, first) in self.blobs {
            let more = self.more.remove(&id).unwrap_or_default();
            for loc in std::iter::once(first).chain(more) {
                if packs.contains(&loc.pack) {
                    continue;
                }
                kept.packs
                    .insert(loc.pack, self.packs.get(&loc.pack).copied().unwrap_or(0));
                match kept.blobs.entry(id) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(loc);
                    }
                    std::collections::hash_map::Entry::Occupied(_) => {
                        kept.more.entry(id).or_default().push(loc)
                    }
                }
            }
        }
        kept
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// The first copy listed of a blob.
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Every copy listed of a blob, the first first.
    pub fn copies<'s>(&'s self, id: &Id) -> impl Iterator<Item = &'s BlobLocation> + 's {
        let first = self.blobs.get(id);
        first
            .into_iter()
            .chain(self.more.get(id).into_iter().flatten())
    }

    /// Every copy of a blob listed as `kind`, in order; none is repository damage.
    pub fn locate_all(&self, id: &Id, kind: BlobKind) -> Result<Vec<&BlobLocation>> {
        let copies: Vec<_> = self.copies(id).filter(|l| l.blob.kind == kind).collect();
        if copies.is_empty() {
            return Err(self.miss(id));
        }
        Ok(copies)
    }

    /// Look a blob up, expecting a given kind (its first copy of that kind); a miss is
    /// repository damage.
    pub fn locate(&self, id: &Id, kind: BlobKind) -> Result<&BlobLocation> {
        self.copies(id)
            .find(|l| l.blob.kind == kind)
            .ok_or_else(|| self.miss(id))
    }

    fn miss(&self, id: &Id) -> Error {
        Error::Corrupt(if self.blobs.contains_key(id) {
            format!("blob {} has the wrong kind", id.short())
        } else {
            format!(
                "blob {} is not in any index (missing pack or index)",
                id.short()
            )
        })
    }

    /// Stored size of every indexed pack.
    pub fn packs(&self) -> &HashMap<Id, u64> {
        &self.packs
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// The first copy of every blob.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.values()
    }
}

/// Encode an index file: JSON, zstd-compressed.
pub fn encode_index(file: &IndexFile) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(file).map_err(|e| Error::Internal(e.to_string()))?;
    zstd::bulk::compress(&json, 3).map_err(|e| Error::Internal(format!("compress index: {e}")))
}

/// Read index file `name` from `backend`, checked against its name and decoded; `Err` says
/// why it cannot be used.
pub fn read_index_file(
    backend: &dyn vtool_transfer::Backend,
    name: &str,
) -> std::result::Result<IndexFile, String> {
    let data = backend.get(name).map_err(|e| format!("{name}: {e}"))?;
    if !crate::FileType::Index.named_right(name, &data) {
        return Err(format!("{name} does not match its content hash"));
    }
    decode_index(name, &data).map_err(|e| e.to_string())
}

/// Decode an index file, refusing absurd sizes from a hostile repository.
pub fn decode_index(name: &str, data: &[u8]) -> Result<IndexFile> {
    use std::io::Read;
    const MAX_INDEX: u64 = 1 << 30;
    let bad = |e: String| Error::Corrupt(format!("index {name}: {e}"));
    let mut json = Vec::new();
    zstd::stream::read::Decoder::new(data)
        .map_err(|e| bad(e.to_string()))?
        .take(MAX_INDEX)
        .read_to_end(&mut json)
        .map_err(|e| bad(format!("does not decompress: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| bad(format!("malformed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(id: &[u8], kind: BlobKind, raw_length: u32) -> IndexedPack {
        IndexedPack {
            id: Id::hash(id),
            size: 100,
            blobs: vec![PackedBlob {
                id: Id::hash(b"blob"),
                kind,
                offset: 0,
                length: 10,
                raw_length,
                compressed: false,
            }],
        }
    }

    #[test]
    fn every_copy_is_kept_in_order_and_a_pack_listed_twice_once() {
        let mut index = MasterIndex::default();
        let planted = pack(b"planted", BlobKind::Tree, 10);
        let genuine = pack(b"genuine", BlobKind::Data, 10);
        index.add_pack(&planted);
        index.add_pack(&genuine);
        index.add_pack(&genuine);
        let blob = Id::hash(b"blob");
        let packs: Vec<Id> = index.copies(&blob).map(|l| l.pack).collect();
        assert_eq!(packs, vec![planted.id, genuine.id]);
        // A copy of the wrong kind does not hide the right one.
        assert_eq!(
            index.locate(&blob, BlobKind::Data).map(|l| l.pack).ok(),
            Some(genuine.id)
        );
        assert_eq!(
            index
                .locate_all(&blob, BlobKind::Tree)
                .map(|c| c.len())
                .ok(),
            Some(1)
        );
        assert!(index.locate(&Id::hash(b"other"), BlobKind::Data).is_err());
        assert_eq!(index.blob_count(), 1);
    }
}
