//! What a prune reads before deciding anything: snapshots and their refs, writers, trash,
//! index files and the packs present.

use std::collections::{HashMap, HashSet};

use vtool_transfer::Backend;

use crate::keys::ChunkKey;
use crate::repofile::{IndexFile, Snapshot, WriterOutcome};
use crate::trash::Trash;
use crate::writers::{self, WriterState};
use crate::{refs, Error, FileType, Id, Repository, Result};

pub(super) struct State {
    pub(super) trash: Trash,
    pub(super) writers: Vec<WriterState>,
    /// Every snapshot object that authenticates, trashed ones included.
    pub(super) snapshots: Vec<(Id, Snapshot)>,
    /// Decoded index files by id.
    pub(super) index_files: Vec<(Id, IndexFile)>,
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
        for (name, file) in repo.index_files(None)? {
            match (FileType::Index.id_of(&name), file) {
                (Some(id), Ok(f)) => index_files.push((id, f)),
                (_, Err(why)) => notes.push(format!("{why}; its packs count as unindexed")),
                (None, Ok(_)) => notes.push(format!("{name} is not a valid index name; ignored")),
            }
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
            present,
            notes,
        })
    }

    /// Every blob needed by the snapshots not in `leaving`, and by backups that ended but
    /// whose snapshot is not there (yet): their end marker names the refs.
    pub(super) fn used(
        &mut self,
        backend: &dyn Backend,
        leaving: &HashSet<Id>,
    ) -> Result<HashSet<Id>> {
        let present: HashSet<Id> = self.snapshots.iter().map(|(id, _)| *id).collect();
        let mut used = HashSet::new();
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
        for r in wanted {
            let ids = refs::load(backend, &r).map_err(|e| {
                Error::Corrupt(format!(
                    "refs object {} cannot be read ({e}); nothing was deleted. Run `vtool check`",
                    r.short()
                ))
            })?;
            used.extend(ids);
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
                match refs::load(backend, &r) {
                    Ok(ids) => used.extend(ids),
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
