//! Content-defined chunking of files with FastCDC (2020).

use std::io::Read;

use crate::repofile::ChunkerParams;

/// Default parameters: ~1 MiB average suits multi-terabyte chain databases.
pub const DEFAULT_PARAMS: ChunkerParams = ChunkerParams {
    min_size: 512 * 1024,
    avg_size: 1024 * 1024,
    max_size: 8 * 1024 * 1024,
};

/// Whether FastCDC can cut with these parameters: every size within the bounds the
/// `fastcdc` crate supports and even (outside them it panics), and min <= avg <= max. A
/// config from a hostile or damaged repository must be refused on open, not crash a backup.
pub fn params_supported(p: &ChunkerParams) -> bool {
    use fastcdc::v2020::{
        AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
    };
    let (min, avg, max) = (
        p.min_size as usize,
        p.avg_size as usize,
        p.max_size as usize,
    );
    (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
        && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
        && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
        && min <= avg
        && avg <= max
        && [min, avg, max].iter().all(|s| s % 2 == 0)
}

/// How much of a file is read and cut at once.
const SEGMENT: usize = 4 * 1024 * 1024;

/// Cuts files into chunks, reusing one buffer across files.
pub struct Chunker {
    params: ChunkerParams,
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new(params: ChunkerParams) -> Self {
        Chunker {
            params,
            buf: vec![0u8; SEGMENT + params.max_size as usize],
        }
    }

    /// Read `reader` to the end, cutting it into chunks passed to `emit` in order, and
    /// return the number of bytes read and the plain BLAKE3 of the whole content.
    ///
    /// Memory use is bounded by one segment plus one maximal chunk, whatever the file size.
    pub fn chunk<R: Read, E>(
        &mut self,
        reader: R,
        emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(u64, blake3::Hash), ChunkError<E>> {
        self.chunk_from(blake3::Hasher::new(), reader, emit)
    }

    /// Like [`Chunker::chunk`], for a reader positioned after content already fed to
    /// `hasher` (an appended file resumed at its last old chunk). Returns the bytes read
    /// here and the hash of everything.
    pub fn chunk_from<R: Read, E>(
        &mut self,
        hasher: blake3::Hasher,
        reader: R,
        emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(u64, blake3::Hash), ChunkError<E>> {
        chunk_into(&mut self.buf, self.params, hasher, reader, emit)
    }

    /// Feed the next `len` bytes of `reader` to `hasher` without cutting them; returns
    /// false if the reader ended first.
    pub fn hash_only<R: Read>(
        &mut self,
        hasher: &mut blake3::Hasher,
        reader: &mut R,
        mut len: u64,
    ) -> std::io::Result<bool> {
        while len > 0 {
            let want = usize::try_from(len)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let n = match reader.read(&mut self.buf[..want]) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update_rayon(&self.buf[..n]);
            len -= n as u64;
        }
        Ok(true)
    }
}

fn chunk_into<R: Read, E>(
    buf: &mut [u8],
    params: ChunkerParams,
    mut hasher: blake3::Hasher,
    mut reader: R,
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(u64, blake3::Hash), ChunkError<E>> {
    let mut filled = 0;
    let mut total = 0u64;
    loop {
        let mut eof = false;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ChunkError::Io(e)),
            }
        }
        let cdc = fastcdc::v2020::FastCDC::new(
            &buf[..filled],
            params.min_size as usize,
            params.avg_size as usize,
            params.max_size as usize,
        );
        let mut consumed = 0;
        for chunk in cdc {
            let end = chunk.offset + chunk.length;
            // The last cut of a segment is only a cut because the buffer ended.
            if !eof && end == filled {
                break;
            }
            emit(&buf[chunk.offset..end]).map_err(ChunkError::Emit)?;
            consumed = end;
        }
        // One hash call per segment lets BLAKE3 spread large segments over all cores.
        hasher.update_rayon(&buf[..consumed]);
        total += consumed as u64;
        if eof {
            return Ok((total, hasher.finalize()));
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
    }
}

/// Failure while chunking: reading the source, or the consumer refused a chunk.
#[derive(Debug)]
pub enum ChunkError<E> {
    Io(std::io::Error),
    Emit(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn only_parameters_fastcdc_supports_pass() {
        let p = |min_size, avg_size, max_size| ChunkerParams {
            min_size,
            avg_size,
            max_size,
        };
        assert!(params_supported(&DEFAULT_PARAMS));
        for bad in [
            p(1, 1024, 4096),
            p(2 << 20, 2 << 20, 8 << 20),
            p(512, 128, 4096),
            p(512, 8 << 20, 8 << 20),
            p(512, 4096, 32 << 20),
            p(512, 3_207_029, 8 << 20),
            p(8192, 4096, 16384),
        ] {
            assert!(!params_supported(&bad), "{bad:?} accepted");
        }
        // The extremes that pass do cut.
        let data = pseudo_random(3 << 20, 7);
        for good in [p(64, 256, 1024), p(1 << 20, 4 << 20, 16 << 20)] {
            assert!(params_supported(&good));
            let (len, _) = Chunker::new(good)
                .chunk::<_, ()>(&data[..], |_| Ok(()))
                .map_err(|_| ())
                .expect("chunk");
            assert_eq!(len as usize, data.len());
        }
    }

    fn cut(data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let (len, hash) = Chunker::new(DEFAULT_PARAMS)
            .chunk::<_, ()>(data, |c| {
                out.push(c.to_vec());
                Ok(())
            })
            .map_err(|_| ())
            .expect("chunk");
        assert_eq!(len as usize, data.len());
        assert_eq!(hash, blake3::hash(data));
        out
    }

    #[test]
    fn chunks_concatenate_to_input_and_respect_bounds() {
        let data = pseudo_random(40 * 1024 * 1024 + 12345, 7);
        let chunks = cut(&data);
        assert_eq!(chunks.concat(), data);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.len() >= DEFAULT_PARAMS.min_size as usize);
            assert!(c.len() <= DEFAULT_PARAMS.max_size as usize);
        }
    }

    #[test]
    fn appending_keeps_earlier_chunks() {
        let data = pseudo_random(30 * 1024 * 1024, 9);
        let before = cut(&data[..25 * 1024 * 1024]);
        let after = cut(&data);
        let shared = before[..before.len() - 1]
            .iter()
            .zip(&after)
            .take_while(|(a, b)| a == b)
            .count();
        assert_eq!(
            shared,
            before.len() - 1,
            "append changed earlier cut points"
        );
    }
}
