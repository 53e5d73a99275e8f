//! Page-cache hygiene for bulk data that is read or written once.
//!
//! A backup reads the whole node and writes a repository about as large; a check or a
//! restore reads every pack once. Left in the page cache, those pages evict the running
//! node's hot set, and every new page costs a fresh allocation: measured on the 2-core
//! benchmark VM, writing 1.6 GB took 0.8–2.9 s of kernel time through the cache and a steady
//! 0.4 s when each file's pages were dropped after its fsync (reads: 0.8–2.3 s against
//! 0.6 s). So bulk paths drop what they are done with. The calls are advice: an error
//! (a filesystem without `fadvise`) changes nothing, so it is ignored.

use std::fs::File;
use std::io::Read;

use rustix::fs::{fadvise, Advice};

/// Bytes a [`DropBehind`] reader lets accumulate before dropping them: large enough that
/// the advice costs nothing next to the reads, small enough to stay out of the way.
const DROP_EVERY: u64 = 8 << 20;
/// The largest page-cache folio: advice drops only whole folios, so a range is widened to
/// this alignment, or the folios astride its ends would stay behind.
const FOLIO: u64 = 2 << 20;

/// Reads at least this large are pack data, read once by a check, restore or copy; smaller
/// objects (indexes, snapshots, keys) stay cached for the next command.
const BULK_READ: usize = 1 << 20;

/// Drop the pages of a file that is written and synced, or read, in full.
pub fn forget(file: &File) {
    let _ = fadvise(file, 0, None, Advice::DontNeed);
}

/// [`forget`] after a read of `len` bytes, if that read was bulk data.
pub fn forget_bulk(file: &File, len: usize) {
    if len >= BULK_READ {
        forget(file);
    }
}

/// Reads a file front to back and drops the pages behind the read position.
pub struct DropBehind<'a> {
    file: &'a File,
    pos: u64,
    dropped: u64,
    enabled: bool,
    finished: bool,
}

impl<'a> DropBehind<'a> {
    /// `pos` is the file's current read position (what lies before it was read already and
    /// is dropped with the first batch); `enabled: false` reads without advice (a live node
    /// whose cache should stay as it is).
    pub fn new(file: &'a File, pos: u64, enabled: bool) -> Self {
        if enabled {
            let _ = fadvise(file, pos, None, Advice::Sequential);
        }
        DropBehind {
            file,
            pos,
            dropped: 0,
            enabled,
            finished: !enabled,
        }
    }

    /// Drop what lies behind the read position. The range starts a folio early (the folio
    /// astride the last drop's end) and ends at the position: past it lies readahead.
    fn drop_read(&mut self) {
        let start = self.dropped - self.dropped % FOLIO;
        advise_dontneed(self.file, start, self.pos - start);
        self.dropped = self.pos;
    }

    /// At the end (or when the reader stops early) everything read goes, to the last folio.
    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            forget(self.file);
        }
    }
}

impl Read for DropBehind<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (&*self.file).read(buf)?;
        self.pos += n as u64;
        if n == 0 {
            self.finish();
        } else if self.enabled && self.pos - self.dropped >= DROP_EVERY {
            self.drop_read();
        }
        Ok(n)
    }
}

impl Drop for DropBehind<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Bytes written behind the newest write before their pages are dropped: by then the
/// writeback the first advice started has long finished on any disk vtool restores to.
const WRITE_LAG: u64 = 64 << 20;
/// Writes kept open at most (each holds its file), whatever their size.
const WRITE_LAG_FILES: usize = 256;

/// Drops the pages of data written once (a restore) after the kernel has written them back.
/// Advice on dirty pages starts their writeback and drops nothing; the same advice, given
/// again [`WRITE_LAG`] bytes later, finds them clean and drops them.
#[derive(Default)]
pub struct WriteBehind {
    queue: std::sync::Mutex<Lagging>,
}

/// Writes whose pages are still to be dropped, oldest first, and their bytes.
#[derive(Default)]
struct Lagging {
    writes: std::collections::VecDeque<(File, u64, u64)>,
    bytes: u64,
}

impl WriteBehind {
    /// `len` bytes were just written at `offset` of `file`.
    pub fn written(&self, file: File, offset: u64, len: u64) {
        advise_dontneed(&file, offset, len);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.bytes += len;
        q.writes.push_back((file, offset, len));
        while q.bytes > WRITE_LAG || q.writes.len() > WRITE_LAG_FILES {
            let Some((f, offset, len)) = q.writes.pop_front() else {
                break;
            };
            // Widened to whole folios: the parts of them not written yet are holes or
            // dirty, which the advice leaves alone.
            let start = offset - offset % FOLIO;
            advise_dontneed(&f, start, (offset + len).next_multiple_of(FOLIO) - start);
            q.bytes -= len;
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        let q = self.queue.get_mut().unwrap_or_else(|p| p.into_inner());
        for (f, offset, len) in q.writes.drain(..) {
            advise_dontneed(&f, offset, len);
        }
    }
}

fn advise_dontneed(file: &File, offset: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = fadvise(file, offset, Some(len), Advice::DontNeed);
    }
}
