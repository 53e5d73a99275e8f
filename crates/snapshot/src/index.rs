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
    blobs: HashMap<Id, BlobLocation>,
    packs: HashMap<Id, u64>,
    /// Index files that could not be used, with why.
    pub damaged: Vec<String>,
}

impl MasterIndex {
    pub fn add_pack(&mut self, pack: &IndexedPack) {
        self.packs.insert(pack.id, pack.size);
        for blob in &pack.blobs {
            self.blobs.entry(blob.id).or_insert(BlobLocation {
                pack: pack.id,
                blob: *blob,
            });
        }
    }

    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack);
        }
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Look a blob up, expecting a given kind; a miss is repository damage.
    pub fn locate(&self, id: &Id, kind: BlobKind) -> Result<&BlobLocation> {
        match self.blobs.get(id) {
            Some(loc) if loc.blob.kind == kind => Ok(loc),
            Some(_) => Err(Error::Corrupt(format!(
                "blob {} has the wrong kind",
                id.short()
            ))),
            None => Err(Error::Corrupt(format!(
                "blob {} is not in any index (missing pack or index)",
                id.short()
            ))),
        }
    }

    /// Stored size of every indexed pack.
    pub fn packs(&self) -> &HashMap<Id, u64> {
        &self.packs
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn blobs(&self) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.values()
    }
}

/// Encode an index file: JSON, zstd-compressed.
pub fn encode_index(file: &IndexFile) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(file).map_err(|e| Error::Corrupt(e.to_string()))?;
    zstd::bulk::compress(&json, 3).map_err(|e| Error::Corrupt(format!("compress index: {e}")))
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
