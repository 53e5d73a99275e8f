//! Turning chunks into stored blobs: zstd when it pays, raw when it does not.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::repofile::{BlobKind, ChunkerParams, PackedBlob};
use crate::tree::MAX_TREE_SIZE;
use crate::{Error, Result};

/// A chunk ready to be packed.
pub struct EncodedBlob {
    pub data: Vec<u8>,
    pub raw_length: u32,
    pub compressed: bool,
}

const PROBE_LEN: usize = 64 * 1024;

thread_local! {
    /// One compressor per level and thread: probing (level 1) and compressing alternate, and
    /// building a zstd context per call would cost more than compressing a sample.
    static COMPRESSORS: RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
}

fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSORS.with(|cell| {
        let mut list = cell.borrow_mut();
        let pos = match list.iter().position(|(l, _)| *l == level) {
            Some(p) => p,
            None => {
                list.push((level, zstd::bulk::Compressor::new(level).ok()?));
                list.len() - 1
            }
        };
        list[pos].1.compress(data).ok()
    })
}

/// Compress `raw` unless it does not shrink. Large chunks are probed with a fast
/// compression of a 64 KiB sample first, so already-compressed chain-DB tables cost
/// almost nothing.
pub fn encode(raw: Vec<u8>, level: i32) -> EncodedBlob {
    let raw_length = raw.len() as u32;
    let stored_raw = |raw| EncodedBlob {
        data: raw,
        raw_length,
        compressed: false,
    };
    if raw.len() > 4 * PROBE_LEN {
        let mid = raw.len() / 2;
        let sample = &raw[mid - PROBE_LEN / 2..mid + PROBE_LEN / 2];
        match compress(sample, 1) {
            Some(c) if c.len() * 100 < sample.len() * 95 => {}
            _ => return stored_raw(raw),
        }
    }
    match compress(&raw, level) {
        Some(c) if c.len() * 100 < raw.len() * 97 => EncodedBlob {
            data: c,
            raw_length,
            compressed: true,
        },
        _ => stored_raw(raw),
    }
}

/// Largest plaintext a blob of `kind` may have: a chunk at most the chunker's maximum, a
/// tree at most [`MAX_TREE_SIZE`].
pub fn max_raw_length(kind: BlobKind, chunker: &ChunkerParams) -> u32 {
    match kind {
        BlobKind::Data => chunker.max_size,
        BlobKind::Tree => MAX_TREE_SIZE,
    }
}

/// Recover a blob's plaintext from its stored form, as `b` describes it. A length beyond
/// what its kind allows is refused before anything is allocated, and zstd never inflates
/// past the claimed length: a planted bomb costs at most one maximal blob of memory.
pub fn decode<'s>(
    stored: &'s [u8],
    b: &PackedBlob,
    chunker: &ChunkerParams,
) -> Result<Cow<'s, [u8]>> {
    let limit = max_raw_length(b.kind, chunker);
    if b.raw_length > limit {
        return Err(Error::Corrupt(format!(
            "blob {} claims {} bytes, more than a {} blob may hold ({limit})",
            b.id.short(),
            b.raw_length,
            match b.kind {
                BlobKind::Data => "data",
                BlobKind::Tree => "tree",
            }
        )));
    }
    let raw_length = b.raw_length;
    if !b.compressed {
        if stored.len() != raw_length as usize {
            return Err(Error::Corrupt(format!(
                "raw blob is {} bytes, index says {raw_length}",
                stored.len()
            )));
        }
        // Most chain data does not compress: no copy for it.
        return Ok(Cow::Borrowed(stored));
    }
    // The output buffer is exactly the claimed length: a frame that inflates further fails
    // as soon as the buffer is full.
    let out = zstd::bulk::decompress(stored, raw_length as usize)
        .map_err(|e| Error::Corrupt(format!("blob does not decompress: {e}")))?;
    if out.len() != raw_length as usize {
        return Err(Error::Corrupt(
            "blob decompresses to the wrong length".into(),
        ));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Id;

    const PARAMS: ChunkerParams = crate::chunker::DEFAULT_PARAMS;

    fn described(b: &EncodedBlob, kind: BlobKind) -> PackedBlob {
        PackedBlob {
            id: Id::hash(&b.data),
            kind,
            offset: 0,
            length: b.data.len() as u32,
            raw_length: b.raw_length,
            compressed: b.compressed,
        }
    }

    #[test]
    fn random_data_is_stored_raw_and_text_compressed() {
        let random: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let b = encode(random.clone(), 3);
        let d = described(&b, BlobKind::Data);
        assert_eq!(decode(&b.data, &d, &PARAMS).expect("decode"), random);
        let text = b"validator attestation ".repeat(50_000);
        let b = encode(text.clone(), 3);
        assert!(b.compressed && b.data.len() < text.len() / 10);
        let d = described(&b, BlobKind::Data);
        assert_eq!(decode(&b.data, &d, &PARAMS).expect("decode"), text);
    }

    #[test]
    fn bombs_are_refused_without_inflating() {
        // 1 GiB of zeros compresses to a few dozen KiB.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).expect("encoder");
        for _ in 0..1024 {
            std::io::Write::write_all(&mut enc, &[0u8; 1 << 20]).expect("compress");
        }
        let bomb = enc.finish().expect("compress");
        assert!(bomb.len() < 1 << 20);
        let mut b = PackedBlob {
            id: Id::hash(&bomb),
            kind: BlobKind::Data,
            offset: 0,
            length: bomb.len() as u32,
            raw_length: 1 << 30,
            compressed: true,
        };
        // Claims more than a chunk or a tree may hold: refused before allocating.
        assert!(decode(&bomb, &b, &PARAMS).is_err());
        b.kind = BlobKind::Tree;
        assert!(decode(&bomb, &b, &PARAMS).is_err());
        // Claims a plausible length: inflation stops there.
        b.kind = BlobKind::Data;
        b.raw_length = PARAMS.max_size;
        assert!(decode(&bomb, &b, &PARAMS).is_err());
    }
}
