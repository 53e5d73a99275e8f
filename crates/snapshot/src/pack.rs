//! Packs: many blobs in one age stream, named by the BLAKE3 of the stored bytes.

use std::io::Write;

use crate::blob::EncodedBlob;
use crate::repofile::{BlobKind, PackTrailer, PackedBlob};
use crate::{crypto, Error, Id, Result};

/// Builds one pack in memory.
pub struct PackWriter {
    stream: age::stream::StreamWriter<Vec<u8>>,
    blobs: Vec<PackedBlob>,
    plain_len: u64,
}

/// A finished pack, ready to store.
pub struct FinishedPack {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub blobs: Vec<PackedBlob>,
}

impl PackWriter {
    pub fn new(recipients: &[age::x25519::Recipient], capacity: usize) -> Result<Self> {
        Ok(PackWriter {
            stream: crypto::stream_writer(recipients, Vec::with_capacity(capacity))?,
            blobs: Vec::new(),
            plain_len: 0,
        })
    }

    /// Bytes of plaintext written so far.
    pub fn len(&self) -> u64 {
        self.plain_len
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn add(&mut self, id: Id, kind: BlobKind, blob: &EncodedBlob) -> Result<()> {
        self.stream
            .write_all(&blob.data)
            .map_err(|e| Error::Internal(format!("encrypt pack: {e}")))?;
        self.blobs.push(PackedBlob {
            id,
            kind,
            offset: self.plain_len,
            length: blob.data.len() as u32,
            raw_length: blob.raw_length,
            compressed: blob.compressed,
        });
        self.plain_len += blob.data.len() as u64;
        Ok(())
    }

    /// Append the trailer, close the age stream and name the pack.
    pub fn finish(mut self) -> Result<FinishedPack> {
        let trailer = serde_json::to_vec(&PackTrailer {
            blobs: self.blobs.clone(),
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let err = |e: std::io::Error| Error::Internal(format!("encrypt pack: {e}"));
        self.stream.write_all(&trailer).map_err(err)?;
        self.stream
            .write_all(&(trailer.len() as u32).to_le_bytes())
            .map_err(err)?;
        let bytes = self.stream.finish().map_err(err)?;
        Ok(FinishedPack {
            id: Id::from(blake3::Hasher::new().update_rayon(&bytes).finalize()),
            bytes,
            blobs: self.blobs,
        })
    }
}

/// Decrypt a whole pack and return its plaintext.
pub fn decrypt_pack(identity: &age::x25519::Identity, id: &Id, stored: &[u8]) -> Result<Vec<u8>> {
    crypto::decrypt(identity, stored, &format!("pack {}", id.short()))
}

/// The stored bytes of a blob within a decrypted pack, bounds-checked against hostile indexes.
pub fn blob_slice<'a>(plain: &'a [u8], blob: &PackedBlob) -> Result<&'a [u8]> {
    let start = usize::try_from(blob.offset).map_err(|_| Error::Corrupt("blob offset".into()))?;
    start
        .checked_add(blob.length as usize)
        .and_then(|end| plain.get(start..end))
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "blob {} lies outside its pack (offset {}, length {}, pack plaintext {} bytes)",
                blob.id.short(),
                blob.offset,
                blob.length,
                plain.len()
            ))
        })
}

/// Read the trailer of a decrypted pack (the list of its blobs).
pub fn read_trailer(plain: &[u8]) -> Result<Vec<PackedBlob>> {
    let bad = || Error::Corrupt("pack trailer is damaged".into());
    let len_at = plain.len().checked_sub(4).ok_or_else(bad)?;
    let len = u32::from_le_bytes(plain[len_at..].try_into().map_err(|_| bad())?) as usize;
    let start = len_at.checked_sub(len).ok_or_else(bad)?;
    let trailer: PackTrailer = serde_json::from_slice(&plain[start..len_at]).map_err(|_| bad())?;
    Ok(trailer.blobs)
}
