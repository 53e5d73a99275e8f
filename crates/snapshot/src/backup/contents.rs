//! Storing file contents: the bounded pipeline from reader threads through naming and
//! compressing chunks on the rayon pool to the packer and uploader threads.

use std::sync::atomic::AtomicUsize;

use crossbeam_channel::bounded;
use rayon::prelude::*;

use super::packer::{Engine, NewBlob};
use super::reader::{read_files, FileEvent, Item, ReadJob, READERS};
use super::resume::Resume;
use super::scan::Scan;
use super::Warning;
use crate::blob::{self, EncodedBlob};
use crate::pack::FinishedPack;
use crate::{Error, Id, Progress, Result};

pub(super) struct ReadStats {
    pub(super) files: u64,
    pub(super) bytes: u64,
}

/// An [`Item`] after the rayon stage: chunks are named (and encoded when new), file
/// events pass through unchanged.
enum Processed {
    Chunk {
        file: usize,
        id: Id,
        len: u64,
        new: Option<EncodedBlob>,
    },
    Known {
        file: usize,
        ids: Vec<Id>,
        bytes: u64,
    },
    Event(FileEvent),
}

impl Engine<'_> {
    fn name_and_encode(&self, item: Item, level: i32) -> Result<Processed> {
        Ok(match item {
            Item::Chunk { file, data } => {
                let id = self.key.chunk_key.blob_id(&data);
                let len = data.len() as u64;
                let new = if self.claim(id)? {
                    Some(blob::encode(data, level))
                } else {
                    None
                };
                Processed::Chunk { file, id, len, new }
            }
            Item::Known { file, ids, bytes } => Processed::Known { file, ids, bytes },
            Item::Event(event) => Processed::Event(event),
        })
    }

    pub(super) fn store_contents(
        &self,
        scan: &mut Scan,
        to_read: Vec<(usize, Option<Resume>)>,
        progress: &dyn Progress,
        warnings: &mut Vec<Warning>,
    ) -> Result<ReadStats> {
        let jobs: Vec<ReadJob> = to_read
            .into_iter()
            .map(|(i, resume)| {
                let e = &scan.entries[i];
                ReadJob {
                    file: i,
                    path: e.path.clone(),
                    stamp: (e.size, e.mtime_ns, e.ctime_ns),
                    resume,
                }
            })
            .collect();
        let params = self.repo.config().chunker;
        let level = self.repo.config().zstd_level;
        let (batch_tx, batch_rx) = bounded::<Vec<Item>>(READERS);
        let (blob_tx, blob_rx) = bounded::<NewBlob>(4);
        let mut stats = ReadStats { files: 0, bytes: 0 };

        let next = AtomicUsize::new(0);
        let drop_pages = self.drop_read_pages;
        std::thread::scope(|s| -> Result<()> {
            for _ in 0..READERS {
                let (jobs, next, tx) = (&jobs, &next, batch_tx.clone());
                s.spawn(move || read_files(jobs, next, params, drop_pages, tx));
            }
            drop(batch_tx);
            let (pack_tx, pack_rx) = bounded::<FinishedPack>(1);
            // One packer encrypts faster than the rest of the pipeline produces; each more
            // would hold another pack in memory (as does the pack queued for the uploaders).
            // Uploaders as many as the backend keeps busy: each holds the pack it sends.
            let uploads = self.repo.backend().concurrency().max(1);
            let mut workers = vec![s.spawn(move || self.packer(blob_rx, pack_tx))];
            for _ in 0..uploads {
                let rx = pack_rx.clone();
                workers.push(s.spawn(move || self.uploader(rx)));
            }
            drop(pack_rx);

            let mut outcome = Ok(());
            'batches: for batch in batch_rx.iter() {
                let processed: Vec<Result<Processed>> = batch
                    .into_par_iter()
                    .map(|item| self.name_and_encode(item, level))
                    .collect();
                for p in processed {
                    let p = match p {
                        Ok(p) => p,
                        Err(e) => {
                            outcome = Err(e);
                            break 'batches;
                        }
                    };
                    match p {
                        Processed::Chunk { file, id, len, new } => {
                            scan.entries[file].chunks.push(id);
                            progress.advance(len);
                            if let Some(blob) = new {
                                // A closed channel means a packer failed; its error is joined below.
                                if blob_tx.send(NewBlob { id, blob }).is_err() {
                                    break 'batches;
                                }
                            }
                        }
                        Processed::Known { file, ids, bytes } => {
                            scan.entries[file].chunks.extend(ids);
                            progress.advance(bytes);
                        }
                        Processed::Event(FileEvent::Done {
                            file,
                            size,
                            content,
                            changed,
                        }) => {
                            let e = &mut scan.entries[file];
                            e.content = Some(content);
                            e.size = size;
                            e.cacheable = !changed;
                            stats.files += 1;
                            stats.bytes += size;
                            if changed {
                                let w = Warning {
                                    path: e.path.display().to_string(),
                                    message: "changed while it was read; the stored copy may be inconsistent \
                                              (stop the program writing it, or use --pre/--post hooks)"
                                        .into(),
                                };
                                progress.warn(&w.path, &w.message);
                                warnings.push(w);
                            }
                        }
                        Processed::Event(FileEvent::Failed { file, message }) => {
                            let e = &mut scan.entries[file];
                            e.failed = true;
                            let w = Warning {
                                path: e.path.display().to_string(),
                                message: format!("not backed up: {message}"),
                            };
                            progress.warn(&w.path, &w.message);
                            warnings.push(w);
                        }
                    }
                }
                if let Err(e) = self.write_index(false) {
                    outcome = Err(e);
                    break;
                }
            }
            // Dropping the receiver stops the reader; closing the blob channel flushes packers.
            drop(batch_rx);
            drop(blob_tx);
            for p in workers {
                match p.join() {
                    Ok(Err(e)) => outcome = outcome.and(Err(e)),
                    Err(_) => outcome = outcome.and(Err(Error::poisoned(()))),
                    Ok(Ok(())) => {}
                }
            }
            outcome
        })?;
        Ok(stats)
    }
}
