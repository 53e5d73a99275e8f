//! Packs: many blobs in one stored object, named by the BLAKE3 of the stored bytes.
//!
//! Two layouts exist, fixed by the repository's format ([`PackLayout::for_format`]): formats
//! 1 and 2 encrypt the whole pack as one age stream; format 3 seals each blob as its own age
//! stream and ends the pack with a plaintext trailer, so a backup host can move blobs
//! between packs (prune) without being able to decrypt them.

use std::borrow::Cow;
use std::io::Write;

use crate::blob::EncodedBlob;
use crate::repofile::{BlobKind, PackTrailer, PackedBlob};
use crate::{crypto, Error, Id, Result};

/// How a pack holds its blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackLayout {
    /// Formats 1 and 2: blobs and trailer in one age stream; offsets are into the plaintext.
    Stream,
    /// Format 3: each blob its own age stream, then the trailer in plaintext; offsets and
    /// lengths are of the stored (encrypted) bytes.
    SealedBlobs,
}

impl PackLayout {
    /// The layout of every pack in a repository of format `version`.
    pub fn for_format(version: u32) -> Self {
        if version >= 3 {
            PackLayout::SealedBlobs
        } else {
            PackLayout::Stream
        }
    }
}

/// Builds one pack in memory.
pub struct PackWriter {
    body: Body,
    blobs: Vec<PackedBlob>,
    len: u64,
}

enum Body {
    Stream(age::stream::StreamWriter<Vec<u8>>),
    Sealed {
        recipients: Vec<age::x25519::Recipient>,
        bytes: Vec<u8>,
    },
}

/// A finished pack, ready to store.
pub struct FinishedPack {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub blobs: Vec<PackedBlob>,
}

fn encrypt_error(e: std::io::Error) -> Error {
    Error::Internal(format!("encrypt pack: {e}"))
}

impl PackWriter {
    pub fn new(
        layout: PackLayout,
        recipients: &[age::x25519::Recipient],
        capacity: usize,
    ) -> Result<Self> {
        let body = match layout {
            PackLayout::Stream => Body::Stream(crypto::stream_writer(
                recipients,
                Vec::with_capacity(capacity),
            )?),
            PackLayout::SealedBlobs => Body::Sealed {
                recipients: recipients.to_vec(),
                bytes: Vec::with_capacity(capacity),
            },
        };
        Ok(PackWriter {
            body,
            blobs: Vec::new(),
            len: 0,
        })
    }

    /// Bytes of blob data written so far (plaintext or sealed, as the layout stores them).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn add(&mut self, id: Id, kind: BlobKind, blob: &EncodedBlob) -> Result<()> {
        let length = match &mut self.body {
            Body::Stream(stream) => {
                stream.write_all(&blob.data).map_err(encrypt_error)?;
                blob.data.len()
            }
            Body::Sealed { recipients, bytes } => {
                crypto::encrypt_into(recipients, &blob.data, bytes)?
            }
        };
        self.push(PackedBlob {
            id,
            kind,
            offset: self.len,
            length: length as u32,
            raw_length: blob.raw_length,
            compressed: blob.compressed,
        });
        Ok(())
    }

    /// Append a blob already sealed in another pack (`sealed` are its stored bytes there),
    /// without decrypting it: how prune repacks with only the backup key.
    pub fn add_sealed(&mut self, from: &PackedBlob, sealed: &[u8]) -> Result<()> {
        let Body::Sealed { bytes, .. } = &mut self.body else {
            return Err(Error::Internal(
                "only format 3 packs can take sealed blobs".into(),
            ));
        };
        if sealed.len() != from.length as usize {
            return Err(Error::Corrupt(format!(
                "blob {} is {} bytes, its pack's index says {}",
                from.id.short(),
                sealed.len(),
                from.length
            )));
        }
        bytes.extend_from_slice(sealed);
        self.push(PackedBlob {
            offset: self.len,
            ..*from
        });
        Ok(())
    }

    fn push(&mut self, blob: PackedBlob) {
        self.len += u64::from(blob.length);
        self.blobs.push(blob);
    }

    /// Append the trailer, close the pack and name it.
    pub fn finish(self) -> Result<FinishedPack> {
        let trailer = serde_json::to_vec(&PackTrailer {
            blobs: self.blobs.clone(),
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let length = (trailer.len() as u32).to_le_bytes();
        let bytes = match self.body {
            Body::Stream(mut stream) => {
                stream.write_all(&trailer).map_err(encrypt_error)?;
                stream.write_all(&length).map_err(encrypt_error)?;
                stream.finish().map_err(encrypt_error)?
            }
            Body::Sealed { mut bytes, .. } => {
                bytes.extend_from_slice(&trailer);
                bytes.extend_from_slice(&length);
                bytes
            }
        };
        Ok(FinishedPack {
            id: Id::from(blake3::Hasher::new().update_rayon(&bytes).finalize()),
            bytes,
            blobs: self.blobs,
        })
    }
}

/// A fetched pack, ready to hand out its blobs' encoded (zstd or raw) bytes.
pub enum OpenedPack {
    /// A stream pack's decrypted plaintext.
    Plain(Vec<u8>),
    /// A format 3 pack as stored; each blob is decrypted on its own.
    Sealed { id: Id, stored: Vec<u8> },
}

impl OpenedPack {
    /// Open a pack's stored bytes: a stream pack is decrypted whole, a format 3 pack kept.
    pub fn open(
        layout: PackLayout,
        identity: &age::x25519::Identity,
        id: &Id,
        stored: Vec<u8>,
    ) -> Result<Self> {
        Ok(match layout {
            PackLayout::Stream => OpenedPack::Plain(crypto::decrypt(
                identity,
                &stored,
                &format!("pack {}", id.short()),
            )?),
            PackLayout::SealedBlobs => OpenedPack::Sealed { id: *id, stored },
        })
    }

    /// The encoded bytes of one blob, bounds-checked against hostile indexes.
    pub fn blob(&self, identity: &age::x25519::Identity, b: &PackedBlob) -> Result<Cow<'_, [u8]>> {
        match self {
            OpenedPack::Plain(plain) => Ok(Cow::Borrowed(blob_slice(plain, b)?)),
            OpenedPack::Sealed { id, stored } => {
                unseal_blob(identity, blob_slice(stored, b)?, b, id).map(Cow::Owned)
            }
        }
    }
}

/// Decrypt one blob of format 3 pack `pack` from its stored bytes.
pub fn unseal_blob(
    identity: &age::x25519::Identity,
    sealed: &[u8],
    b: &PackedBlob,
    pack: &Id,
) -> Result<Vec<u8>> {
    let what = format!("blob {} in pack {}", b.id.short(), pack.short());
    crypto::decrypt(identity, sealed, &what)
}

/// Decrypt a whole stream pack and return its plaintext.
pub fn decrypt_pack(identity: &age::x25519::Identity, id: &Id, stored: &[u8]) -> Result<Vec<u8>> {
    crypto::decrypt(identity, stored, &format!("pack {}", id.short()))
}

/// The bytes of a blob within a pack's plaintext (stream) or stored bytes (format 3),
/// bounds-checked against hostile indexes.
pub fn blob_slice<'a>(data: &'a [u8], blob: &PackedBlob) -> Result<&'a [u8]> {
    let start = usize::try_from(blob.offset).map_err(|_| Error::Corrupt("blob offset".into()))?;
    start
        .checked_add(blob.length as usize)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "blob {} lies outside its pack (offset {}, length {}, pack {} bytes)",
                blob.id.short(),
                blob.offset,
                blob.length,
                data.len()
            ))
        })
}

/// Read the trailer (the list of a pack's blobs) from a stream pack's plaintext or a
/// format 3 pack's stored bytes.
pub fn read_trailer(data: &[u8]) -> Result<Vec<PackedBlob>> {
    split_trailer(data).map(|(_, blobs)| blobs)
}

/// The blob data before the trailer, and the trailer's entries.
pub fn split_trailer(data: &[u8]) -> Result<(&[u8], Vec<PackedBlob>)> {
    let bad = || Error::Corrupt("pack trailer is damaged".into());
    let len_at = data.len().checked_sub(4).ok_or_else(bad)?;
    let len = u32::from_le_bytes(data[len_at..].try_into().map_err(|_| bad())?) as usize;
    let start = len_at.checked_sub(len).ok_or_else(bad)?;
    let trailer: PackTrailer = serde_json::from_slice(&data[start..len_at]).map_err(|_| bad())?;
    Ok((&data[..start], trailer.blobs))
}
