//! Turning chunks into stored blobs: zstd when it pays, raw when it does not.

use std::borrow::Cow;
use std::cell::RefCell;

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

/// Recover a chunk's plaintext from its stored form.
pub fn decode(stored: &[u8], raw_length: u32, compressed: bool) -> Result<Cow<'_, [u8]>> {
    if !compressed {
        if stored.len() != raw_length as usize {
            return Err(Error::Corrupt(format!(
                "raw blob is {} bytes, index says {raw_length}",
                stored.len()
            )));
        }
        // Most chain data does not compress: no copy for it.
        return Ok(Cow::Borrowed(stored));
    }
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

    #[test]
    fn random_data_is_stored_raw_and_text_compressed() {
        let random: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let b = encode(random.clone(), 3);
        assert_eq!(
            decode(&b.data, b.raw_length, b.compressed).expect("decode"),
            random
        );
        let text = b"validator attestation ".repeat(50_000);
        let b = encode(text.clone(), 3);
        assert!(b.compressed && b.data.len() < text.len() / 10);
        assert_eq!(
            decode(&b.data, b.raw_length, b.compressed).expect("decode"),
            text
        );
    }
}
