//! What a prune reads before deciding anything: snapshots and their refs, writers, trash,
//! the index and the packs present.
//!
//! Memory is what limits a prune of a large repository (ten million blobs), so the index is
//! held compactly: per pack its size and, per blob, the first 8 bytes of the id and the
//! stored length; the used set is such prefixes too. A prefix shared by two blobs can only
//! make an unused blob look used (space kept, never data lost); wherever a decision could
//! delete data, the full ids are read again (index files, pack trailers).

use std::collections::{HashMap, HashSet};

use vtool_transfer::Backend;

use crate::index::read_index_file;
use crate::keys::ChunkKey;
use crate::repofile::{IndexFile, Snapshot, WriterOutcome};
use crate::trash::Trash;
use crate::writers::{self, WriterState};
use crate::{refs, Error, FileType, Id, Repository, Result};

/// The first 8 bytes of a blob id.
pub(super) fn prefix(id: &Id) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_le_bytes(b)
}

/// A pack as the index describes it, compactly: blob id prefix and stored length.
pub(super) struct PackEntry {
    pub(super) blobs: Box<[(u64, u32)]>,
}

pub(super) struct State {
    pub(super) trash: Trash,
    pub(super) writers: Vec<WriterState>,
    /// Every snapshot object that authenticates, trashed ones included.
    pub(super) snapshots: Vec<(Id, Snapshot)>,
    /// Every readable index file and the packs it lists.
    pub(super) index_files: Vec<(Id, Vec<Id>)>,
    /// Every pack some index lists (the first listing wins).
    pub(super) packs: HashMap<Id, PackEntry>,
    /// Packs present, with their stored sizes.
    pub(super) present: HashMap<Id, u64>,
    pub(super) notes: Vec<String>,
}

impl State {
    pub(super) fn load(repo: &Repository, key: &ChunkKey) -> Result<State> {
        let backend = repo.backend();
        let mut notes = Vec::new();
        let trash = Trash::load(backend, key)?;
        for r in &trash.rejected {
            notes.push(format!("{r} is damaged or does not authenticate; ignored"));
        }
        let writers = writers::list(backend)?;
        let listing = repo.all_snapshots()?;
        for d in &listing.damaged {
            notes.push(format!("{} is damaged ({}); ignored", d.object, d.reason));
        }
        let mut snapshots = Vec::new();
        for (id, sealed) in listing.objects {
            if repo.verify_snapshot(&sealed, key).is_ok() {
                snapshots.push((id, sealed.into_value()));
            } else {
                notes.push(format!(
                    "{} does not authenticate (not written by a key holder); ignored",
                    FileType::Snapshot.name(&id)
                ));
            }
        }
        let mut index_files = Vec::new();
        let mut packs: HashMap<Id, PackEntry> = HashMap::new();
        // One file at a time: only the compact form stays.
        for obj in backend.list(FileType::Index.dir())? {
            let Some(id) = FileType::Index.id_of(&obj.name) else {
                notes.push(format!("{} is not a valid index name; ignored", obj.name));
                continue;
            };
            let file = match read_index(backend, &id) {
                Ok(f) => f,
                Err(why) => {
                    notes.push(format!("{why}; its packs count as unindexed"));
                    continue;
                }
            };
            let mut listed = Vec::with_capacity(file.packs.len());
            for p in file.packs {
                listed.push(p.id);
                packs.entry(p.id).or_insert_with(|| PackEntry {
                    blobs: p.blobs.iter().map(|b| (prefix(&b.id), b.length)).collect(),
                });
            }
            index_files.push((id, listed));
        }
        let present = backend
            .list(FileType::Pack.dir())?
            .into_iter()
            .filter_map(|o| Some((FileType::Pack.id_of(&o.name)?, o.size)))
            .collect();
        Ok(State {
            trash,
            writers,
            snapshots,
            index_files,
            packs,
            present,
            notes,
        })
    }

    /// The prefixes of every blob needed by the snapshots not in `leaving`, and by backups
    /// that ended but whose snapshot is not there (yet): their end marker names the refs.
    pub(super) fn used(
        &mut self,
        backend: &dyn Backend,
        leaving: &HashSet<Id>,
    ) -> Result<HashSet<u64>> {
        let present: HashSet<Id> = self.snapshots.iter().map(|(id, _)| *id).collect();
        let mut wanted: Vec<Id> = Vec::new();
        for (id, s) in &self.snapshots {
            if leaving.contains(id) {
                continue;
            }
            match s.refs {
                Some(r) => wanted.push(r),
                None => {
                    return Err(Error::Usage(format!(
                        "snapshot {} has no refs object (it was written before format 3), so prune cannot tell what it needs without the identity; forget it or keep the repository unpruned",
                        id.short()
                    )))
                }
            }
        }
        wanted.sort();
        wanted.dedup();
        let mut used = HashSet::new();
        for r in wanted {
            refs::visit(backend, &r, |b| {
                used.insert(prefix(b));
            })
            .map_err(|e| {
                Error::Corrupt(format!(
                    "refs object {} cannot be read ({e}); nothing was deleted. Run `vtool check`",
                    r.short()
                ))
            })?;
        }
        // A backup that claimed its end but whose snapshot is not there (yet, or ever: it
        // was killed in between) keeps what it references.
        for w in &self.writers {
            let Some(end) = &w.end else { continue };
            if let (WriterOutcome::Finished, Some(s), Some(r)) =
                (end.outcome, end.snapshot, end.refs)
            {
                if present.contains(&s) {
                    continue;
                }
                let mut pinned = Vec::new();
                match refs::visit(backend, &r, |b| pinned.push(prefix(b))) {
                    Ok(()) => used.extend(pinned),
                    Err(e) => self.notes.push(format!(
                        "writer {} ended without its snapshot and its refs cannot be read ({e}); it keeps nothing",
                        w.id.short()
                    )),
                }
            }
        }
        Ok(used)
    }
}

/// Read and decode one index file, checked against its name.
pub(super) fn read_index(backend: &dyn Backend, id: &Id) -> std::result::Result<IndexFile, String> {
    read_index_file(backend, &FileType::Index.name(id))
}
