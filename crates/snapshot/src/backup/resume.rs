//! Resuming a file that grew in place: only the part after its old last chunk is cut again.

use std::io::{Seek, SeekFrom};

use super::scan::Entry;
use crate::chunker::Chunker;
use crate::index::MasterIndex;
use crate::repofile::CachedFile;
use crate::Id;

/// A file that grew in place since the last backup (same inode). Chain data is mostly
/// appended to (freezer, static files), so if the old content is still its prefix only the
/// old last chunk onwards is cut and named again: the prefix is only hashed, to prove it
/// unchanged (FastCDC cuts depend only on the bytes since the previous cut, so the old cuts
/// stand; the last one was made by the end of the file).
pub(super) struct Resume {
    pub(super) old_size: u64,
    pub(super) old_content: Id,
    /// Old chunks but the last, reused as they are.
    pub(super) kept: Vec<Id>,
    /// Where the old last chunk started.
    pub(super) last_start: u64,
}

impl Resume {
    pub(super) fn for_file(e: &Entry, c: &CachedFile, index: &MasterIndex) -> Option<Resume> {
        if c.ino != e.ino || c.size >= e.size || c.chunks.len() < 2 {
            return None;
        }
        let mut lengths = Vec::with_capacity(c.chunks.len());
        for id in &c.chunks {
            lengths.push(u64::from(index.get(id)?.blob.raw_length));
        }
        let last_start = c.size.checked_sub(*lengths.last()?)?;
        // A cache row whose chunks do not add up is not trusted.
        if lengths[..lengths.len() - 1].iter().sum::<u64>() != last_start {
            return None;
        }
        Some(Resume {
            old_size: c.size,
            old_content: c.content,
            kept: c.chunks[..c.chunks.len() - 1].to_vec(),
            last_start,
        })
    }
}

/// Hash the unchanged prefix of an appended file. Returns the hasher positioned (with the
/// file) at the old last chunk when the old content is intact, or `None` with the file
/// rewound to its start when it is not.
pub(super) fn resume(
    chunker: &mut Chunker,
    file: &mut std::fs::File,
    r: &Resume,
) -> std::io::Result<Option<blake3::Hasher>> {
    let mut hasher = blake3::Hasher::new();
    let mut intact = chunker.hash_only(&mut hasher, file, r.last_start)?;
    let at_last_start = hasher.clone();
    if intact {
        intact = chunker.hash_only(&mut hasher, file, r.old_size - r.last_start)?
            && Id::from(hasher.finalize()) == r.old_content;
    }
    let start = if intact { r.last_start } else { 0 };
    file.seek(SeekFrom::Start(start))?;
    Ok(intact.then_some(at_last_start))
}
