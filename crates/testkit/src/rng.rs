//! A seeded random source (xorshift64*), so generated test data and failures reproduce.

use std::time::Duration;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A random duration in `0..max`.
    pub fn delay(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.below(max.as_micros().max(1) as u64))
    }

    /// Incompressible bytes that do not dedup, like a compressed LevelDB table.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Compressible but aperiodic records, like a freezer (ancient) file.
    pub fn records(&mut self, len: usize, first: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 256);
        let mut n = first;
        while out.len() < len {
            out.extend_from_slice(format!("block {n:012} parent ").as_bytes());
            let r = self.next_u64();
            for i in 0..40 {
                // 16-symbol alphabet: ~4 bits of entropy per byte.
                out.push(b"0123456789abcdef"[((r >> (i % 16 * 4)) as usize ^ i) & 15]);
            }
            out.extend_from_slice(b" txs ");
            out.extend_from_slice((r % 400).to_string().as_bytes());
            out.push(b'\n');
            n += 1;
        }
        out.truncate(len);
        out
    }
}
