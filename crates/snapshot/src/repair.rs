//! Rebuilding indexes from the packs themselves (`vtool repair index`).
//!
//! Every pack ends in a trailer listing its blobs (see [`crate::pack::read_trailer`]), inside
//! the age encryption (formats 1 and 2) or after the sealed blobs (format 3), so a lost or damaged index costs nothing but a re-read: the packs that
//! no intact index lists are decrypted with the restore identity, their trailers checked
//! (every entry inside the pack's data, and with [`RepairIndexOptions::verify_blobs`] every
//! blob against its keyed id) and new index files written for them. Nothing is deleted or
//! overwritten: a damaged index file stays where it is (loading and `check` already skip
//! and report it), the new ones simply list its packs again.
//!
//! This lives beside the repository format rather than in `vtool-verify` because it writes
//! repository objects ([`Repository::save_index`]) from the format's own parts (pack
//! trailers, index files); checking only reports.

use std::borrow::Cow;
use std::collections::HashSet;

use rayon::prelude::*;
use serde::Serialize;
use vtool_transfer::BackendError;

use crate::keys::RestoreKey;
use crate::pack::{blob_slice, decrypt_pack, split_trailer, unseal_blob, PackLayout};
use crate::repofile::{ChunkerParams, IndexFile, IndexedPack, PackedBlob, FORMAT_VERSION};
use crate::{blob, Error, FileType, Id, Progress, Repository, Result};

/// Packs per new index file, as a backup writes them.
const PACKS_PER_INDEX: usize = 64;

/// What `repair index` should do.
#[derive(Debug, Clone)]
pub struct RepairIndexOptions {
    /// Find and check the packs to re-index, but write nothing.
    pub dry_run: bool,
    /// Decode every blob and check it against its keyed id; blobs that fail are left out of
    /// the new index. Without it only the pack's hash and the trailer's bounds are checked.
    pub verify_blobs: bool,
}

impl Default for RepairIndexOptions {
    fn default() -> Self {
        RepairIndexOptions {
            dry_run: false,
            verify_blobs: true,
        }
    }
}

/// A pack that could not be re-indexed, with why.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadablePack {
    pub object: String,
    pub reason: String,
}

/// A blob a pack's trailer lists that failed verification and was left out.
#[derive(Debug, Clone, Serialize)]
pub struct BadBlob {
    pub pack: String,
    pub blob: String,
    pub reason: String,
}

/// What `repair index` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexReport {
    pub dry_run: bool,
    /// Packs stored in the repository.
    pub packs: u64,
    /// Of them, listed by an intact index and left alone.
    pub packs_indexed: u64,
    /// Index files that could not be used, with why (kept; their packs are re-indexed).
    pub damaged_indexes: Vec<String>,
    /// Packs decrypted and re-indexed (or, on a dry run, that would be).
    pub packs_reindexed: u64,
    pub blobs_reindexed: u64,
    pub bytes_read: u64,
    /// Index objects written (none on a dry run).
    pub new_indexes: Vec<String>,
    pub unreadable: Vec<UnreadablePack>,
    pub bad_blobs: Vec<BadBlob>,
}

impl RepairIndexReport {
    /// True when every pack is indexed again with all its blobs.
    pub fn complete(&self) -> bool {
        self.unreadable.is_empty() && self.bad_blobs.is_empty()
    }
}

/// Re-index every pack that no intact index lists. Per-pack damage is reported, not
/// returned; `Err` means the repository could not be listed or written.
pub fn repair_index(
    repo: &Repository,
    key: &RestoreKey,
    opts: &RepairIndexOptions,
    progress: &dyn Progress,
) -> Result<RepairIndexReport> {
    let backend = repo.backend();
    // Straight from the repository: a cached copy might hide what is stored now.
    let index = repo.load_index(None)?;
    let mut report = RepairIndexReport {
        dry_run: opts.dry_run,
        damaged_indexes: index.damaged.clone(),
        ..Default::default()
    };
    let mut todo = Vec::new();
    for obj in backend.list("packs")? {
        let Some(id) = FileType::Pack.id_of(&obj.name) else {
            report.unreadable.push(UnreadablePack {
                object: obj.name,
                reason: "not a pack name (packs/<2 hex>/<64 hex>)".into(),
            });
            continue;
        };
        report.packs += 1;
        if index.packs().contains_key(&id) {
            report.packs_indexed += 1;
        } else {
            todo.push((id, obj.size));
        }
    }
    todo.sort();
    progress.stage(
        "reading packs",
        todo.len() as u64,
        todo.iter().map(|(_, s)| s).sum(),
    );

    let chunker = repo.config().chunker;
    let layout = repo.pack_layout();
    let pool = crate::reader::pack_fetch_pool(repo.backend())?;
    let scanned = pool.install(|| {
        todo.par_iter()
            .map(|(id, _)| -> Result<Scanned> {
                let name = FileType::Pack.name(id);
                let stored = match backend.get(&name) {
                    Ok(d) => d,
                    // Gone since it was listed (a concurrent prune): nothing to index.
                    Err(BackendError::NotFound(_)) => return Ok(Scanned::Gone),
                    Err(e) => return Err(e.into()),
                };
                let size = stored.len() as u64;
                let scanned = scan_pack(layout, key, id, &stored, opts.verify_blobs, &chunker);
                progress.advance(size);
                Ok(match scanned {
                    Ok((blobs, bad)) => Scanned::Pack {
                        pack: IndexedPack {
                            id: *id,
                            size,
                            blobs,
                        },
                        bad,
                    },
                    Err(reason) => Scanned::Unreadable { size, reason },
                })
            })
            .collect::<Result<Vec<_>>>()
    })?;

    let mut packs = Vec::new();
    for ((id, _), s) in todo.iter().zip(scanned) {
        match s {
            Scanned::Gone => {}
            Scanned::Unreadable { size, reason } => {
                report.bytes_read += size;
                report.unreadable.push(UnreadablePack {
                    object: FileType::Pack.name(id),
                    reason,
                });
            }
            Scanned::Pack { pack, bad } => {
                report.bytes_read += pack.size;
                report
                    .bad_blobs
                    .extend(bad.into_iter().map(|(blob, reason)| BadBlob {
                        pack: FileType::Pack.name(id),
                        blob: blob.to_hex(),
                        reason,
                    }));
                report.packs_reindexed += 1;
                report.blobs_reindexed += pack.blobs.len() as u64;
                packs.push(pack);
            }
        }
    }
    if !opts.dry_run {
        for group in packs.chunks(PACKS_PER_INDEX) {
            let id = repo.save_index(&IndexFile {
                version: FORMAT_VERSION,
                packs: group.to_vec(),
                rebuilt: Some(crate::now_rfc3339()),
            })?;
            report.new_indexes.push(FileType::Index.name(&id));
        }
    }
    Ok(report)
}

enum Scanned {
    Gone,
    Unreadable {
        size: u64,
        reason: String,
    },
    Pack {
        pack: IndexedPack,
        bad: Vec<(Id, String)>,
    },
}

/// The blobs of one pack worth indexing, and those left out with why; `Err` when the pack
/// as a whole cannot be trusted.
#[allow(clippy::type_complexity)]
fn scan_pack(
    layout: PackLayout,
    key: &RestoreKey,
    id: &Id,
    stored: &[u8],
    verify: bool,
    chunker: &ChunkerParams,
) -> std::result::Result<(Vec<PackedBlob>, Vec<(Id, String)>), String> {
    let actual = Id::from(blake3::Hasher::new().update_rayon(stored).finalize());
    if actual != *id {
        return Err(format!(
            "its stored bytes hash to {}, not to its name (bit rot or tampering)",
            actual.short()
        ));
    }
    let plain;
    let (data, trailer) = match layout {
        // A format 3 trailer is plaintext; the blobs are decrypted one by one to verify them.
        PackLayout::SealedBlobs => split_trailer(stored).map_err(|e| reason(&e))?,
        PackLayout::Stream => {
            plain = decrypt_pack(&key.identity, id, stored).map_err(|e| reason(&e))?;
            split_trailer(&plain).map_err(|e| reason(&e))?
        }
    };
    let mut keep = Vec::with_capacity(trailer.len());
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    for b in trailer {
        let checked = blob_slice(data, &b)
            .map_err(|_| "the trailer places it outside the pack's data".to_string())
            .and_then(|stored| {
                if !verify {
                    return Ok(());
                }
                let encoded = match layout {
                    PackLayout::Stream => Cow::Borrowed(stored),
                    PackLayout::SealedBlobs => Cow::Owned(
                        unseal_blob(&key.identity, stored, &b, id).map_err(|e| reason(&e))?,
                    ),
                };
                verify_blob(key, &encoded, &b, chunker)
            });
        match checked {
            Ok(()) if seen.insert(b.id) => keep.push(b),
            Ok(()) => {} // listed twice in one pack: the first copy serves
            Err(why) => bad.push((b.id, why)),
        }
    }
    Ok((keep, bad))
}

fn verify_blob(
    key: &RestoreKey,
    stored: &[u8],
    b: &PackedBlob,
    chunker: &ChunkerParams,
) -> std::result::Result<(), String> {
    // Bounded by what the format allows: a planted pack (the recipients are public) must not
    // make repair inflate gigabytes.
    let raw = blob::decode(stored, b, chunker).map_err(|e| reason(&e))?;
    if key.chunk_key.blob_id(&raw) != b.id {
        return Err("its content does not match its id".into());
    }
    Ok(())
}

/// A per-pack error as one line, without the "repository data is damaged" prefix.
fn reason(e: &Error) -> String {
    match e {
        Error::Corrupt(m) | Error::WrongKey(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::EncodedBlob;
    use crate::pack::PackWriter;
    use crate::repofile::BlobKind;

    #[test]
    fn blobs_that_fail_verification_are_left_out_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = vtool_transfer::LocalBackend::create(dir.path()).expect("backend");
        let identity = age::x25519::Identity::generate();
        let new = Repository::init(Box::new(backend), vec![identity.to_public()]).expect("init");
        let (repo, chunk_key) = (new.repo, new.backup_key.chunk_key);
        let key = RestoreKey {
            identity,
            chunk_key: chunk_key.clone(),
            format: new.backup_key.format,
        };
        let raw = |data: &[u8], raw_length: u32, compressed: bool| EncodedBlob {
            data: data.to_vec(),
            raw_length,
            compressed,
        };
        let mut w =
            PackWriter::new(repo.pack_layout(), &new.backup_key.recipients, 1024).expect("writer");
        let good = chunk_key.blob_id(b"good chunk");
        w.add(good, BlobKind::Data, &raw(b"good chunk", 10, false))
            .expect("add");
        let liar = chunk_key.blob_id(b"something else");
        w.add(liar, BlobKind::Data, &raw(b"wrong bytes", 11, false))
            .expect("add");
        // A zstd frame claiming 4 GiB: refused before anything is inflated.
        let bomb = Id::hash(b"bomb");
        let frame = zstd::bulk::compress(&[0u8; 64], 1).expect("zstd");
        w.add(bomb, BlobKind::Data, &raw(&frame, u32::MAX, true))
            .expect("add");
        let pack = w.finish().expect("finish");
        repo.backend()
            .put(&FileType::Pack.name(&pack.id), &pack.bytes)
            .expect("put");

        let opts = RepairIndexOptions::default();
        let r = repair_index(&repo, &key, &opts, &crate::NoProgress).expect("repair");
        assert_eq!((r.packs, r.packs_reindexed, r.blobs_reindexed), (1, 1, 1));
        let mut bad: Vec<&str> = r.bad_blobs.iter().map(|b| b.blob.as_str()).collect();
        bad.sort();
        let mut want = vec![liar.to_hex(), bomb.to_hex()];
        want.sort();
        assert_eq!(bad, want);
        assert!(!r.complete());
        let index = repo.load_index(None).expect("index");
        assert!(index.contains(&good) && !index.contains(&liar) && !index.contains(&bomb));

        // The rebuilt index now lists the pack: a second run has nothing to do.
        let r = repair_index(
            &repo,
            &key,
            &RepairIndexOptions {
                dry_run: true,
                verify_blobs: false,
            },
            &crate::NoProgress,
        )
        .expect("repair");
        assert_eq!((r.packs_indexed, r.packs_reindexed), (1, 0));
    }
}
