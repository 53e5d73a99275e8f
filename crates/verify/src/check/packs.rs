//! The pack levels: re-hash every stored pack (no key needed) and, with the identity,
//! decrypt it and check every blob and the index against the pack's trailer.

use std::collections::HashSet;
use std::io::{Cursor, Read, Seek, SeekFrom};

use rayon::prelude::*;
use vtool_snapshot::keys::RestoreKey;
use vtool_snapshot::pack::{blob_slice, read_trailer, unseal_blob, PackLayout};
use vtool_snapshot::repofile::{ChunkerParams, PackedBlob};
use vtool_snapshot::{blob, crypto, FileType, Id, Progress};

use super::{get_opt, CheckError, Checker, ProblemKind};

impl Checker {
    /// Re-hash (and with a key, decrypt and check) the packs of the chosen slice.
    pub(super) fn check_pack_data(
        &mut self,
        slice: Option<(u32, u32)>,
        key: Option<(&RestoreKey, &ChunkerParams, PackLayout)>,
        progress: &dyn Progress,
    ) -> Result<(), CheckError> {
        let in_slice = |id: &Id| slice.is_none_or(|(n, t)| u32::from(id.0[0]) % t == n - 1);
        let mut selected: Vec<(Id, u64)> = self
            .present
            .iter()
            .filter(|(id, _)| in_slice(id))
            .map(|(id, &size)| (*id, size))
            .collect();
        selected.sort();
        let bytes: u64 = selected.iter().map(|(_, s)| s).sum();
        progress.stage(
            if key.is_some() {
                "reading packs"
            } else {
                "hashing packs"
            },
            selected.len() as u64,
            bytes,
        );
        let backend = self.backend.as_ref();
        let indexed = &self.indexed;
        let pool = vtool_snapshot::reader::pack_fetch_pool(backend)
            .map_err(|e| CheckError::Internal(e.to_string()))?;
        let results = pool.install(|| selected
            .par_iter()
            .map(|(id, _)| -> Result<PackOutcome, CheckError> {
                let name = FileType::Pack.name(id);
                let Some(stored) = get_opt(backend, &name)? else {
                    return Ok(PackOutcome::default());
                };
                let mut out = PackOutcome {
                    bytes: stored.len() as u64,
                    hashed: true,
                    ..Default::default()
                };
                let actual = Id::from(blake3::Hasher::new().update_rayon(&stored).finalize());
                if actual != *id {
                    out.found.push(Found {
                        kind: ProblemKind::PackHash,
                        blob: None,
                        message: format!(
                            "stored bytes hash to {}, not to the pack's name (bit rot or tampering)",
                            actual.short()
                        ),
                    });
                }
                if let (Some((key, chunker, layout)), Some(info)) = (key, indexed.get(id)) {
                    match layout {
                        PackLayout::Stream => {
                            read_pack(key, chunker, id, &stored, &info.blobs, &mut out)
                        }
                        PackLayout::SealedBlobs => {
                            read_sealed_pack(key, chunker, id, &stored, &info.blobs, &mut out)
                        }
                    }
                }
                progress.advance(stored.len() as u64);
                Ok(out)
            })
            .collect::<Result<Vec<_>, _>>())?;
        for ((id, _), out) in selected.iter().zip(results) {
            if out.hashed {
                self.report.counts.packs_hashed += 1;
                self.report.checked_packs.push(*id);
            }
            if out.read {
                self.report.counts.packs_read += 1;
                self.read_packs.insert(*id);
            }
            self.report.counts.bytes_read += out.bytes;
            self.report.counts.blobs_checked += out.blobs_checked;
            for f in out.found {
                let p = self.problem(
                    f.kind,
                    FileType::Pack.name(id),
                    Some(*id),
                    f.blob,
                    f.message,
                );
                if let Some(b) = f.blob {
                    self.blob_problems.entry(b).or_insert(p);
                }
            }
        }
        Ok(())
    }
}

struct Found {
    kind: ProblemKind,
    blob: Option<Id>,
    message: String,
}

#[derive(Default)]
struct PackOutcome {
    bytes: u64,
    hashed: bool,
    read: bool,
    blobs_checked: u64,
    found: Vec<Found>,
}

/// Decode a blob's stored bytes and check them against its keyed id.
fn check_blob(
    key: &RestoreKey,
    chunker: &ChunkerParams,
    stored: &[u8],
    b: &PackedBlob,
) -> Result<(), String> {
    let raw = blob::decode(stored, b, chunker).map_err(|e| e.to_string())?;
    if key.chunk_key.blob_id(&raw) != b.id {
        return Err("its content does not match its id".into());
    }
    Ok(())
}

type PackStream<'a> = vtool_snapshot::age::stream::StreamReader<Cursor<&'a [u8]>>;

/// Decrypt one pack and check every indexed blob; a pack that does not decrypt whole is
/// read blob by blob so that only the blobs really lost are reported.
fn read_pack(
    key: &RestoreKey,
    chunker: &ChunkerParams,
    id: &Id,
    stored: &[u8],
    blobs: &[PackedBlob],
    out: &mut PackOutcome,
) {
    let what = format!("pack {}", id.short());
    let plain = match crypto::decrypt(&key.identity, stored, &what) {
        Ok(p) => p,
        Err(vtool_snapshot::Error::WrongKey(e)) => {
            out.found.push(Found {
                kind: ProblemKind::PackUnreadable,
                blob: None,
                message: e,
            });
            return;
        }
        Err(_) => {
            read_pack_damaged(key, chunker, stored, &what, blobs, out);
            return;
        }
    };
    out.read = true;
    compare_trailer(&plain, blobs, out);
    for b in blobs {
        out.blobs_checked += 1;
        let result = blob_slice(&plain, b)
            .map_err(|e| e.to_string())
            .and_then(|s| check_blob(key, chunker, s, b));
        if let Err(message) = result {
            out.found.push(Found {
                kind: ProblemKind::Blob,
                blob: Some(b.id),
                message,
            });
        }
    }
}

/// Check every indexed blob of a format 3 pack, each decrypted on its own: a damaged blob
/// costs only itself.
fn read_sealed_pack(
    key: &RestoreKey,
    chunker: &ChunkerParams,
    id: &Id,
    stored: &[u8],
    blobs: &[PackedBlob],
    out: &mut PackOutcome,
) {
    out.read = true;
    compare_trailer(stored, blobs, out);
    for b in blobs {
        out.blobs_checked += 1;
        let result = blob_slice(stored, b)
            .and_then(|sealed| unseal_blob(&key.identity, sealed, b, id))
            .map_err(|e| e.to_string())
            .and_then(|encoded| check_blob(key, chunker, &encoded, b));
        if let Err(message) = result {
            out.found.push(Found {
                kind: ProblemKind::Blob,
                blob: Some(b.id),
                message,
            });
        }
    }
}

/// Report indexed blobs the pack's trailer does not place where the index does.
fn compare_trailer(data: &[u8], blobs: &[PackedBlob], out: &mut PackOutcome) {
    match read_trailer(data) {
        Ok(trailer) => {
            let in_trailer: HashSet<(Id, u64, u32)> =
                trailer.iter().map(|b| (b.id, b.offset, b.length)).collect();
            for b in blobs {
                if !in_trailer.contains(&(b.id, b.offset, b.length)) {
                    out.found.push(Found {
                        kind: ProblemKind::PackTrailer,
                        blob: Some(b.id),
                        message: "the index places this blob where the pack's trailer does not"
                            .into(),
                    });
                }
            }
        }
        Err(e) => out.found.push(Found {
            kind: ProblemKind::PackTrailer,
            blob: None,
            message: e.to_string(),
        }),
    }
}

fn read_pack_damaged(
    key: &RestoreKey,
    chunker: &ChunkerParams,
    stored: &[u8],
    what: &str,
    blobs: &[PackedBlob],
    out: &mut PackOutcome,
) {
    let mut sorted: Vec<&PackedBlob> = blobs.iter().collect();
    sorted.sort_by_key(|b| b.offset);
    let mut reader: Option<PackStream> = None;
    for b in sorted {
        out.blobs_checked += 1;
        if reader.is_none() {
            match crypto::stream_reader(&key.identity, Cursor::new(stored), what) {
                Ok(r) => reader = Some(r),
                Err(e) => {
                    out.found.push(Found {
                        kind: ProblemKind::PackUnreadable,
                        blob: None,
                        message: format!("the pack does not decrypt: {e}"),
                    });
                    return;
                }
            }
        }
        out.read = true;
        let Some(r) = reader.as_mut() else {
            return;
        };
        // The plaintext is shorter than the stored bytes: refuse hostile lengths before
        // allocating.
        let fits = b
            .offset
            .checked_add(u64::from(b.length))
            .is_some_and(|end| end <= stored.len() as u64);
        let data = if fits {
            let mut buf = vec![0u8; b.length as usize];
            r.seek(SeekFrom::Start(b.offset))
                .and_then(|_| r.read_exact(&mut buf))
                .map(|_| buf)
                .map_err(|e| format!("encrypted data is damaged ({e})"))
        } else {
            Err("the index places it outside the pack".into())
        };
        let result = data.and_then(|d| check_blob(key, chunker, &d, b));
        if let Err(message) = result {
            // A failed age reader cannot be reused: start a fresh one for the next blob.
            reader = None;
            out.found.push(Found {
                kind: ProblemKind::Blob,
                blob: Some(b.id),
                message,
            });
        }
    }
}
