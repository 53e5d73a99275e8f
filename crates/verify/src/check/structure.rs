//! The structure level, which needs no key: every object named by its hash, every index
//! decoded, every indexed pack present with its size; with the key, the config and drill
//! records authenticated.

use rayon::prelude::*;
use vtool_snapshot::index::decode_index;
use vtool_snapshot::keys::RestoreKey;
use vtool_snapshot::repofile::{
    BlobKind, CheckRecord, CheckState, DrillRecord, GateReport, IndexFile,
};
use vtool_snapshot::sealed::{Sealed, SealedKind};
use vtool_snapshot::{FileType, Id, Repository};

use super::{get_opt, CheckError, Checker, DamagedPath, IndexedInfo, ProblemKind, Unreferenced};

impl Checker {
    /// Fetch every object of a content-addressed kind in parallel, checking its name is its
    /// BLAKE3. Returns (name, bytes, name matches) for the objects still present.
    #[allow(clippy::type_complexity)]
    fn fetch_named(&self, kind: FileType) -> Result<Vec<(String, Vec<u8>, bool)>, CheckError> {
        let mut objects = self.backend.list(kind.dir())?;
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        let backend = self.backend.as_ref();
        let fetched = objects
            .par_iter()
            .map(|o| -> Result<_, CheckError> {
                Ok(get_opt(backend, &o.name)?.map(|d| {
                    let ok = kind.named_right(&o.name, &d);
                    (o.name.clone(), d, ok)
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(fetched.into_iter().flatten().collect())
    }

    pub(super) fn check_keys(&mut self) -> Result<(), CheckError> {
        let keys = self.fetch_named(FileType::Key)?;
        self.report.counts.keys = keys.len() as u64;
        if keys.is_empty() {
            self.problem(
                ProblemKind::Key,
                "keys",
                None,
                None,
                "the repository has no key object: nothing can be restored from it".into(),
            );
        }
        for (name, _, ok) in keys {
            if !ok {
                self.problem(
                    ProblemKind::Key,
                    name,
                    None,
                    None,
                    "key object does not match its content hash (damaged)".into(),
                );
            }
        }
        Ok(())
    }

    pub(super) fn check_indexes(&mut self) -> Result<(), CheckError> {
        let indexes = self.fetch_named(FileType::Index)?;
        self.report.counts.indexes = indexes.len() as u64;
        let decoded: Vec<_> = indexes
            .into_par_iter()
            .map(|(name, data, ok)| {
                let file = decode_index(&name, &data).map_err(|e| e.to_string());
                (name, ok, file)
            })
            .collect();
        for (name, ok, file) in decoded {
            let file: IndexFile = match (ok, file) {
                (false, _) => {
                    self.problem(
                        ProblemKind::Index,
                        name,
                        None,
                        None,
                        "index object does not match its content hash (damaged or planted); \
                         backup and restore refuse to load the index while it is there"
                            .into(),
                    );
                    continue;
                }
                (true, Err(e)) => {
                    self.problem(ProblemKind::Index, name, None, None, e);
                    continue;
                }
                (true, Ok(f)) => f,
            };
            for pack in &file.packs {
                match self.indexed.get(&pack.id) {
                    Some(prev) if prev.size != pack.size => {
                        let message = format!(
                            "{} lists it with {} bytes, {} with {}",
                            prev.index, prev.size, name, pack.size
                        );
                        self.problem(
                            ProblemKind::Index,
                            name.clone(),
                            Some(pack.id),
                            None,
                            message,
                        );
                    }
                    Some(_) => {}
                    None => {
                        self.indexed.insert(
                            pack.id,
                            IndexedInfo {
                                size: pack.size,
                                index: name.clone(),
                                blobs: pack.blobs.clone(),
                            },
                        );
                    }
                }
            }
            self.master.add_file(&file);
        }
        self.report.counts.packs_indexed = self.indexed.len() as u64;
        Ok(())
    }

    /// Authenticate the config with the chunk key: its chunker, pack and zstd parameters
    /// come from an object a storage host could rewrite. Without a key, say it was not.
    /// Authenticate the config with the key; `false` when it fails, so that nothing is read
    /// by the parameters (pack layout, chunker sizes) of a config someone else wrote.
    pub(super) fn check_config(&mut self, repo: &Repository, key: Option<&RestoreKey>) -> bool {
        match key {
            Some(key) => {
                if let Err(e) = repo.authenticate_config(&key.chunk_key, key.format) {
                    self.problem(ProblemKind::Config, "config", None, None, e.to_string());
                    self.report.notes.push(
                        "nothing was read with the identity: the config does not authenticate"
                            .into(),
                    );
                    return false;
                } else if !repo.config_is_sealed() {
                    self.report.notes.push(
                        "the config is format 1, which carries no MAC: it could not be authenticated".into(),
                    );
                }
            }
            None => self.report.notes.push(
                "the config could not be authenticated without a key (give --identity)".into(),
            ),
        }
        true
    }

    /// Drill records, check records and gate reports: damaged ones always, forged ones with
    /// a key (a forged record could claim a drill, a check or a gate passed).
    pub(super) fn check_records(&mut self, key: Option<&RestoreKey>) -> Result<(), CheckError> {
        let key = key.map(|k| &k.chunk_key);
        let drills = self.list::<DrillRecord>(key)?;
        self.report.counts.drills = (drills.records.len() + drills.invalid.len()) as u64;
        self.report.counts.drills_authenticated = drills
            .records
            .iter()
            .filter(|d| d.authenticity == crate::Authenticity::Authentic)
            .count() as u64;
        self.record_problems(drills, ProblemKind::Drill, ProblemKind::DrillAuth);
        let checks = self.list::<CheckRecord>(key)?;
        self.record_problems(checks, ProblemKind::Record, ProblemKind::RecordAuth);
        let reports = self.list::<GateReport>(key)?;
        self.record_problems(reports, ProblemKind::Record, ProblemKind::RecordAuth);
        Ok(())
    }

    fn list<T: crate::Record>(
        &self,
        key: Option<&vtool_snapshot::keys::ChunkKey>,
    ) -> Result<crate::Listing<T>, CheckError> {
        crate::list_records::<T>(self.backend.as_ref(), key).map_err(|e| match e {
            vtool_snapshot::Error::Backend(b) => CheckError::Backend(b),
            other => CheckError::Internal(other.to_string()),
        })
    }

    fn record_problems<T: crate::Record>(
        &mut self,
        listing: crate::Listing<T>,
        damaged: ProblemKind,
        forged: ProblemKind,
    ) {
        let noun = T::FILE_TYPE.sealed().map_or("record", |k| k.noun());
        for bad in listing.invalid {
            self.problem(
                damaged,
                bad.object,
                None,
                None,
                format!("{noun} is damaged: {}", bad.reason),
            );
        }
        for d in listing.records {
            if d.authenticity == crate::Authenticity::Forged {
                self.problem(
                    forged,
                    d.name,
                    None,
                    None,
                    format!("{noun} authentication failed: it was altered or forged by someone without the keys; do not trust its outcome"),
                );
            }
        }
    }

    /// Check state objects only schedule work, but a damaged one is still damage.
    pub(super) fn check_states(&mut self) -> Result<(), CheckError> {
        for (name, data, ok) in self.fetch_named(FileType::CheckState)? {
            let why = if !ok {
                "does not match its content hash (damaged)".to_string()
            } else if let Err(e) = serde_json::from_slice::<CheckState>(&data) {
                format!("is malformed: {e}")
            } else {
                continue;
            };
            self.problem(
                ProblemKind::CheckState,
                name,
                None,
                None,
                format!("check state object {why}"),
            );
        }
        Ok(())
    }

    pub(super) fn check_snapshots(&mut self) -> Result<(), CheckError> {
        let snaps = self.fetch_named(FileType::Snapshot)?;
        self.report.counts.snapshots = snaps.len() as u64;
        for (name, data, ok) in snaps {
            if !ok {
                self.problem(
                    ProblemKind::Snapshot,
                    name,
                    None,
                    None,
                    "snapshot object does not match its content hash (damaged)".into(),
                );
                continue;
            }
            match Sealed::parse(SealedKind::Snapshot, &data) {
                Ok(s) => self.snapshots.push((Id::hash(&data), s)),
                Err(e) => {
                    self.problem(
                        ProblemKind::Snapshot,
                        name,
                        None,
                        None,
                        format!("snapshot object is malformed: {e}"),
                    );
                }
            }
        }
        self.snapshots
            .sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        // A prune trusts the refs object to say what each snapshot needs.
        let named: Vec<(Id, Id)> = self
            .snapshots
            .iter()
            .filter_map(|(id, s)| Some((*id, s.refs?)))
            .collect();
        for (snap, refs) in named {
            if let Err(e) = vtool_snapshot::refs::visit(self.backend.as_ref(), &refs, |_| {}) {
                self.problem(
                    ProblemKind::Refs,
                    FileType::Refs.name(&refs),
                    None,
                    None,
                    format!(
                        "snapshot {}'s refs object cannot be read ({e}); prune refuses to run until it is back (copy it from another copy of the repository)",
                        snap.short()
                    ),
                );
            }
        }
        // The root tree's id is in the plaintext snapshot: its index entry can be checked
        // without a key (this catches a lost index even without the identity).
        let roots: Vec<(Id, Id)> = self.snapshots.iter().map(|(id, s)| (*id, s.tree)).collect();
        for (snap, tree) in roots {
            let message = match self.master.locate(&tree, BlobKind::Tree) {
                Ok(_) => continue,
                Err(_) if self.master.get(&tree).is_some() => {
                    "the snapshot's root tree is indexed as a data blob"
                }
                Err(_) => "the snapshot's root tree is in no index (lost index or pack)",
            };
            let damaged = DamagedPath {
                snapshot: snap.short(),
                path: "/".into(),
            };
            let p = match self.tree_problems.get(&tree) {
                Some(&p) => p,
                None => {
                    let p = self.problem(
                        ProblemKind::Tree,
                        format!("snapshots/{snap}"),
                        None,
                        Some(tree),
                        message.into(),
                    );
                    self.tree_problems.insert(tree, p);
                    p
                }
            };
            self.report.problems[p].damaged.push(damaged);
        }
        Ok(())
    }

    pub(super) fn check_pack_structure(&mut self) -> Result<(), CheckError> {
        for obj in self.backend.list("packs")? {
            match FileType::Pack.id_of(&obj.name) {
                Some(id) => {
                    self.present.insert(id, obj.size);
                }
                None => self
                    .report
                    .notes
                    .push(format!("{} is not a pack name; vtool ignores it", obj.name)),
            }
        }
        self.report.counts.packs_present = self.present.len() as u64;
        let mut found = Vec::new();
        for (id, info) in &self.indexed {
            match self.present.get(id) {
                None => found.push((
                    ProblemKind::PackMissing,
                    *id,
                    format!("listed in {} but missing", info.index),
                )),
                Some(&size) if size != info.size => found.push((
                    ProblemKind::PackSize,
                    *id,
                    format!(
                        "{} bytes, {} lists {} ({})",
                        size,
                        info.index,
                        info.size,
                        if size < info.size {
                            "truncated"
                        } else {
                            "grown"
                        }
                    ),
                )),
                Some(_) => {}
            }
        }
        found.sort_by_key(|f| f.1);
        for (kind, id, message) in found {
            self.problem(kind, FileType::Pack.name(&id), Some(id), None, message);
        }
        let mut unreferenced: Vec<_> = self
            .present
            .iter()
            .filter(|(id, _)| !self.indexed.contains_key(id))
            .map(|(id, &size)| Unreferenced {
                object: FileType::Pack.name(id),
                size,
            })
            .collect();
        unreferenced.sort_by(|a, b| a.object.cmp(&b.object));
        self.report.counts.packs_unreferenced = unreferenced.len() as u64;
        self.report.unreferenced = unreferenced;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_names() {
        let id = Id::hash(b"x");
        assert_eq!(FileType::Pack.id_of(&FileType::Pack.name(&id)), Some(id));
        let hex = id.to_hex();
        assert_eq!(FileType::Pack.id_of(&format!("packs/zz/{hex}")), None);
        assert_eq!(FileType::Pack.id_of("packs/ab/short"), None);
    }
}
