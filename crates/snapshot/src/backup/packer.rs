//! The engine's storage side: claiming new blobs, a packer thread that encrypts them into
//! packs, an uploader thread that stores finished packs, and index files for stored packs.

use std::collections::HashSet;
use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender};

use crate::blob::EncodedBlob;
use crate::index::MasterIndex;
use crate::keys::BackupKey;
use crate::pack::{FinishedPack, PackWriter};
use crate::repofile::{BlobKind, IndexFile, IndexedPack, FORMAT_VERSION};
use crate::{Error, FileType, Id, Repository, Result};

/// Packs stored before an index file lists them (all are listed at the end).
const PACKS_PER_INDEX: usize = 64;

pub(super) struct NewBlob {
    pub(super) id: Id,
    pub(super) blob: EncodedBlob,
}

pub(super) struct Engine<'a> {
    pub(super) repo: &'a Repository,
    pub(super) key: &'a BackupKey,
    pub(super) index: &'a MasterIndex,
    /// Blobs stored (or being stored) by this backup.
    pub(super) pending: Mutex<HashSet<Id>>,
    /// Packs stored but not yet listed in an index file.
    pub(super) new_packs: Mutex<Vec<IndexedPack>>,
    pub(super) stored_bytes: Mutex<u64>,
    /// Drop the source files' pages behind the readers.
    pub(super) drop_read_pages: bool,
}

impl Engine<'_> {
    /// True if this blob is new to the repository (and claims it).
    pub(super) fn claim(&self, id: Id) -> Result<bool> {
        Ok(!self.index.contains(&id) && self.pending.lock().map_err(Error::poisoned)?.insert(id))
    }

    pub(super) fn store_pack(&self, writer: PackWriter) -> Result<()> {
        self.upload(writer.finish()?)
    }

    pub(super) fn upload(&self, pack: FinishedPack) -> Result<()> {
        let size = pack.bytes.len() as u64;
        self.repo
            .backend()
            .put_owned(&FileType::Pack.name(&pack.id), pack.bytes)?;
        *self.stored_bytes.lock().map_err(Error::poisoned)? += size;
        self.new_packs
            .lock()
            .map_err(Error::poisoned)?
            .push(IndexedPack {
                id: pack.id,
                size,
                blobs: pack.blobs,
            });
        Ok(())
    }

    /// Write an index file for stored packs (all of them when `all`, else in large groups).
    pub(super) fn write_index(&self, all: bool) -> Result<()> {
        let packs = {
            let mut guard = self.new_packs.lock().map_err(Error::poisoned)?;
            if guard.is_empty() || (!all && guard.len() < PACKS_PER_INDEX) {
                return Ok(());
            }
            std::mem::take(&mut *guard)
        };
        self.repo.save_index(&IndexFile {
            version: FORMAT_VERSION,
            packs,
            rebuilt: None,
        })?;
        Ok(())
    }

    /// Store finished packs, so the packer encrypts the next one while this one is written
    /// (and fsynced, or sent over the network).
    pub(super) fn uploader(&self, rx: Receiver<FinishedPack>) -> Result<()> {
        for pack in rx {
            self.upload(pack)?;
        }
        Ok(())
    }

    pub(super) fn packer(&self, rx: Receiver<NewBlob>, done: Sender<FinishedPack>) -> Result<()> {
        let recipients = &self.key.recipients;
        let pack_size = self.repo.config().pack_size;
        let layout = self.repo.pack_layout();
        let mut writer = PackWriter::new(layout, recipients, pack_size as usize + (1 << 20))?;
        for nb in rx {
            writer.add(nb.id, BlobKind::Data, &nb.blob)?;
            if writer.len() >= pack_size {
                let full = std::mem::replace(
                    &mut writer,
                    PackWriter::new(layout, recipients, pack_size as usize + (1 << 20))?,
                );
                // A closed channel means the uploader failed; its error is joined later.
                if done.send(full.finish()?).is_err() {
                    return Ok(());
                }
            }
        }
        if !writer.is_empty() {
            let _ = done.send(writer.finish()?);
        }
        Ok(())
    }
}
