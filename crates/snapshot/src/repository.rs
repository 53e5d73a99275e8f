//! Opening, creating and reading a repository's objects.

use rayon::prelude::*;
use vtool_transfer::{Backend, BackendError, LockSupport};

use crate::cache::Cache;
use crate::index::{decode_index, encode_index, MasterIndex};
use crate::keys::{BackupKey, ChunkKey, RestoreKey};
use crate::pack::PackLayout;
use crate::repofile::{Config, IndexFile, KeyObject, Snapshot, FORMAT_VERSION};
use crate::sealed::{list_sealed, seal, Sealed, SealedKind, SealedListing};
use crate::{chunker, crypto, Error, FileType, Id, Result};

/// A snapshot is a few KiB of JSON; anything far larger is not one of ours.
const MAX_SNAPSHOT_SIZE: u64 = 16 << 20;

/// Default pack plaintext size.
pub const DEFAULT_PACK_SIZE: u64 = 16 * 1024 * 1024;

/// An open repository.
pub struct Repository {
    backend: Box<dyn Backend>,
    config: Sealed<Config>,
}

/// Every snapshot object: readable ones oldest first, damaged ones named.
pub type SnapshotListing = SealedListing<Snapshot>;

/// What `init` hands out.
pub struct NewRepository {
    pub repo: Repository,
    pub backup_key: BackupKey,
    /// Object stores: whether the bucket has Object Lock; `None` elsewhere.
    pub object_lock: Option<LockSupport>,
}

/// How `init` sets a repository up.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Keep every object restores need from deletion this many days (S3 Object Lock,
    /// extended by each prune for what remaining snapshots need); refused where the
    /// store cannot.
    pub object_lock_days: Option<u32>,
}

impl Repository {
    /// Create a repository in an empty location. `recipients` must contain at least the
    /// public key of the restore identity.
    pub fn init(
        backend: Box<dyn Backend>,
        recipients: Vec<age::x25519::Recipient>,
    ) -> Result<NewRepository> {
        Self::init_with(backend, recipients, &InitOptions::default())
    }

    pub fn init_with(
        backend: Box<dyn Backend>,
        recipients: Vec<age::x25519::Recipient>,
        opts: &InitOptions,
    ) -> Result<NewRepository> {
        if backend.stat("config")?.is_some() {
            return Err(Error::AlreadyInitialized(backend.location()));
        }
        if recipients.is_empty() {
            return Err(Error::WrongKey(
                "a repository needs at least one recipient".into(),
            ));
        }
        let conditional_put = backend.probe_conditional_put()?;
        let object_lock = backend.probe_object_lock()?;
        if let Some(days) = opts.object_lock_days {
            // Before the key and config, so that they are retained too.
            match &object_lock {
                // Set up by an init that died before its config: it stands.
                Some(LockSupport::Enabled) if backend.retention_days().is_some() => {}
                Some(LockSupport::Enabled) => backend.enable_retention(days)?,
                Some(LockSupport::Absent(why)) => {
                    return Err(Error::Usage(format!(
                        "--object-lock-days: the bucket of {} has no Object Lock ({why}); create a bucket with Object Lock enabled, or leave the option out",
                        backend.location()
                    )))
                }
                None => {
                    return Err(Error::Usage(format!(
                        "--object-lock-days needs an s3:// repository on a bucket with Object Lock; {} cannot refuse deletes itself (on SFTP, use an account that cannot delete: README, \"Append-only storage\")",
                        backend.location()
                    )))
                }
            }
        }
        let config = Config {
            conditional_put,
            version: FORMAT_VERSION,
            id: Id(rand::random()),
            created: crate::now_rfc3339(),
            chunker: chunker::DEFAULT_PARAMS,
            pack_size: DEFAULT_PACK_SIZE,
            zstd_level: 3,
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
        };
        let backup_key = BackupKey {
            repo_id: config.id,
            format: FORMAT_VERSION,
            recipients,
            chunk_key: ChunkKey::generate(),
        };
        let key_json = serde_json::to_vec(&backup_key.key_object())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let key_obj = crypto::encrypt(&backup_key.recipients, &key_json)?;
        // The key object first: a config without it would be unusable.
        FileType::Key.store(backend.as_ref(), &key_obj)?;
        let config_bytes = seal(SealedKind::Config, &config, &backup_key.chunk_key)?;
        backend.put("config", &config_bytes)?;
        let config = Sealed::parse(SealedKind::Config, &config_bytes).map_err(Error::Corrupt)?;
        Ok(NewRepository {
            repo: Repository { backend, config },
            backup_key,
            object_lock,
        })
    }

    pub fn open(backend: Box<dyn Backend>) -> Result<Self> {
        let Some(config) = read_config(backend.as_ref())? else {
            return Err(Error::NotARepository(backend.location()));
        };
        if config.version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(config.version));
        }
        if config.is_unsealed() && config.version >= 2 {
            return Err(Error::Corrupt(format!(
                "config claims format {} but is not sealed: it was replaced by someone without the keys",
                config.version
            )));
        }
        if !chunker::params_supported(&config.chunker) || config.pack_size > 1 << 30 {
            return Err(Error::Corrupt(
                "config holds absurd chunker or pack sizes".into(),
            ));
        }
        Ok(Repository { backend, config })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How this repository's packs hold their blobs (from its format).
    pub fn pack_layout(&self) -> PackLayout {
        PackLayout::for_format(self.config.version)
    }

    /// Whether the config carries a MAC (format 2 on); a format 1 config cannot be
    /// authenticated.
    pub fn config_is_sealed(&self) -> bool {
        !self.config.is_unsealed()
    }

    /// Check the config was written by a holder of the keys: its chunker, pack and zstd
    /// parameters come from an object a storage host could rewrite. `key_format` is the
    /// format the key was made for: from 2 on the config must be sealed.
    pub fn authenticate_config(&self, key: &ChunkKey, key_format: u32) -> Result<()> {
        if self.config.is_unsealed() {
            if key_format >= 2 {
                return Err(Error::Corrupt(format!(
                    "config authentication failed: the key is for format {key_format} but the config is not sealed; it was replaced by someone without the keys. Bring `config` back from another copy of the repository"
                )));
            }
            return Ok(());
        }
        if !self.config.verify(SealedKind::Config, key) {
            return Err(Error::Corrupt(
                "config authentication failed: it was altered or forged by someone without the keys. Bring `config` back from another copy of the repository".into(),
            ));
        }
        Ok(())
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Make sure a backup key belongs to this repository.
    pub fn check_backup_key(&self, key: &BackupKey) -> Result<()> {
        if key.repo_id != self.config.id {
            return Err(Error::WrongKey(format!(
                "the backup key belongs to repository {}, not {} ({})",
                key.repo_id.short(),
                self.config.id.short(),
                self.backend.location()
            )));
        }
        self.authenticate_config(&key.chunk_key, key.format)
    }

    /// Recover the restore key with an identity and authenticate the config with it.
    pub fn unlock(&self, identity: age::x25519::Identity) -> Result<RestoreKey> {
        let key = self.recover_key(identity)?;
        self.authenticate_config(&key.chunk_key, key.format)?;
        Ok(key)
    }

    /// Recover the restore key with an identity, without authenticating the config (for
    /// `check`, which reports a forged config as one problem among others).
    ///
    /// A key object that no longer hashes to its name, or whose age header is malformed or
    /// fails its MAC, is damaged (a data problem). Only an intact key object that has no
    /// stanza for this identity means the identity is the wrong one: age cannot tell a
    /// flipped stanza from a foreign one, the content hash can.
    pub fn recover_key(&self, identity: age::x25519::Identity) -> Result<RestoreKey> {
        let mut damaged = Vec::new();
        let mut foreign = None;
        for obj in self.backend.list("keys")? {
            let data = self.backend.get(&obj.name)?;
            if !FileType::Key.named_right(&obj.name, &data) {
                damaged.push((obj.name, "it does not match its content hash".to_string()));
                continue;
            }
            match crypto::decrypt(&identity, &data, &obj.name) {
                Ok(plain) => {
                    let key: KeyObject = serde_json::from_slice(&plain)
                        .map_err(|e| Error::Corrupt(format!("{} is malformed: {e}", obj.name)))?;
                    if key.repo_id != self.config.id {
                        return Err(Error::Corrupt(format!(
                            "{} belongs to another repository",
                            obj.name
                        )));
                    }
                    return RestoreKey::from_key_object(identity, &key);
                }
                Err(Error::WrongKey(_)) => foreign = Some(obj.name),
                Err(e) => {
                    let why = match e {
                        Error::Corrupt(m) => m
                            .trim_start_matches(&obj.name)
                            .trim_start_matches(": ")
                            .to_string(),
                        other => other.to_string(),
                    };
                    damaged.push((obj.name, why));
                }
            }
        }
        if !damaged.is_empty() {
            let list: Vec<String> = damaged
                .iter()
                .map(|(name, why)| format!("key object {name} is damaged ({why})"))
                .collect();
            return Err(Error::Corrupt(format!(
                "{}; move the damaged object aside and bring it back from another copy of the repository (`vtool copy` sends what is missing)",
                list.join("; ")
            )));
        }
        match foreign {
            Some(name) => Err(Error::WrongKey(format!(
                "this identity ({}) cannot decrypt {name}, which is intact: the identity belongs to another repository. Use the one `vtool init --identity-out` wrote for {}",
                identity.to_public(),
                self.backend.location()
            ))),
            None => Err(Error::Corrupt("the repository has no key object".into())),
        }
    }

    /// Every snapshot object, readable ones oldest first. A damaged object is named in
    /// [`SnapshotListing::damaged`] and hides nothing else. Nothing is authenticated here:
    /// listing needs no key.
    ///
    /// Snapshots a `forget` put in the trash are left out (see [`Repository::all_snapshots`]).
    /// A keyless listing cannot authenticate trash records, so a planted one hides snapshots
    /// from it, which is no more than a storage host can do by deleting them.
    pub fn snapshots(&self) -> Result<SnapshotListing> {
        let mut listing = self.all_snapshots()?;
        let trashed = crate::trash::listed_snapshots(self.backend.as_ref())?;
        listing.objects.retain(|(id, _)| !trashed.contains(id));
        Ok(listing)
    }

    /// Every snapshot object, trashed ones included, oldest first.
    pub fn all_snapshots(&self) -> Result<SnapshotListing> {
        let mut listing: SnapshotListing =
            list_sealed(self.backend.as_ref(), FileType::Snapshot, MAX_SNAPSHOT_SIZE)?;
        listing
            .objects
            .sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(listing)
    }

    /// Find a snapshot by id prefix or `latest`, authenticated when `key` is given.
    /// `latest` is the newest complete snapshot that authenticates, so a planted newer one
    /// cannot take its place.
    pub fn find_snapshot(
        &self,
        spec: &str,
        key: Option<&ChunkKey>,
    ) -> Result<(Id, Sealed<Snapshot>)> {
        self.snapshots()?.find(spec, key)
    }

    /// Store a snapshot object, sealed with the chunk key. Written last. Returns its id and
    /// the snapshot as stored.
    pub fn save_snapshot(&self, snap: &Snapshot, key: &ChunkKey) -> Result<(Id, Sealed<Snapshot>)> {
        let (id, sealed) = self.seal_snapshot(snap, key)?;
        Ok((id, self.store_snapshot(&sealed)?))
    }

    /// Seal a snapshot without storing it: its id is known before it is written (a backup
    /// names it in its writer's end marker first).
    pub fn seal_snapshot(&self, snap: &Snapshot, key: &ChunkKey) -> Result<(Id, Vec<u8>)> {
        let data = seal(SealedKind::Snapshot, snap, key)?;
        Ok((Id::hash(&data), data))
    }

    /// Store a sealed snapshot; returns it as stored.
    pub fn store_snapshot(&self, data: &[u8]) -> Result<Sealed<Snapshot>> {
        FileType::Snapshot.store(self.backend.as_ref(), data)?;
        Sealed::parse(SealedKind::Snapshot, data).map_err(Error::Corrupt)
    }

    /// Check that a snapshot was written by a holder of the repository's keys.
    pub fn verify_snapshot(&self, snap: &Sealed<Snapshot>, key: &ChunkKey) -> Result<()> {
        authenticate_snapshot(snap, key)
    }

    pub fn save_index(&self, file: &IndexFile) -> Result<Id> {
        let data = encode_index(file)?;
        match FileType::Index.store(self.backend.as_ref(), &data) {
            Ok(id) => Ok(id),
            // Named by its content: the one there is this very file (a prune that was
            // undone and runs again writes the same replacement index).
            Err(vtool_transfer::BackendError::AlreadyExists(_)) => Ok(Id::hash(&data)),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Repository::load_index`] through the local cache under `cache_base`, if any.
    pub fn load_index_cached(&self, cache_base: Option<&std::path::Path>) -> Result<MasterIndex> {
        let cache = cache_base.and_then(|b| Cache::open(b, &self.config.id));
        self.load_index(cache.as_ref())
    }

    /// Load every index, from the local cache where possible. A damaged index file is left
    /// out and named in [`MasterIndex::damaged`] (one planted file must not stop every backup
    /// and restore; what it listed shows up as missing blobs, which `check` attributes).
    pub fn load_index(&self, cache: Option<&Cache>) -> Result<MasterIndex> {
        let objects = self.backend.list("index")?;
        let files = objects
            .par_iter()
            .map(|obj| -> Result<std::result::Result<_, String>> {
                let cached = cache.and_then(|c| c.read_index(&obj.name));
                let data = match cached {
                    Some(d) => d,
                    None => {
                        let d = self.backend.get(&obj.name)?;
                        if !FileType::Index.named_right(&obj.name, &d) {
                            return Ok(Err(format!(
                                "{} does not match its content hash",
                                obj.name
                            )));
                        }
                        if let Some(c) = cache {
                            c.write_index(&obj.name, &d);
                        }
                        d
                    }
                };
                Ok(decode_index(&obj.name, &data).map_err(|e| e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut index = MasterIndex::default();
        for f in files {
            match f {
                Ok(f) => index.add_file(&f),
                Err(why) => index.damaged.push(why),
            }
        }
        Ok(index)
    }
}

impl SnapshotListing {
    /// Pick by id prefix or `latest` (see [`Repository::find_snapshot`]).
    pub fn find(self, spec: &str, key: Option<&ChunkKey>) -> Result<(Id, Sealed<Snapshot>)> {
        let all = self.objects;
        if spec == "latest" {
            // An incomplete snapshot (a first pass taken while the data was changing) is
            // never what "latest" should restore; it is still reachable by its id.
            return all
                .into_iter()
                .rev()
                .filter(|(_, s)| !s.is_incomplete())
                .find(|(_, s)| key.is_none_or(|k| s.verify(SealedKind::Snapshot, k)))
                .ok_or_else(|| Error::SnapshotNotFound(spec.into()));
        }
        let spec_lc = spec.to_ascii_lowercase();
        let mut hits = all
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec_lc));
        match (hits.next(), hits.next()) {
            (Some(hit), None) if !spec.is_empty() => {
                if let Some(key) = key {
                    authenticate_snapshot(&hit.1, key)?;
                }
                Ok(hit)
            }
            (Some(_), Some(_)) => Err(Error::AmbiguousSnapshot(spec.into())),
            _ => Err(Error::SnapshotNotFound(spec.into())),
        }
    }
}

fn authenticate_snapshot(snap: &Sealed<Snapshot>, key: &ChunkKey) -> Result<()> {
    if !snap.verify(SealedKind::Snapshot, key) {
        return Err(Error::Corrupt(
            "snapshot authentication failed: it was altered or forged by someone without the keys"
                .into(),
        ));
    }
    Ok(())
}

/// The config stored in `backend`, parsed but not yet checked; `None` when there is none.
pub(crate) fn read_config(backend: &dyn Backend) -> Result<Option<Sealed<Config>>> {
    let data = match backend.get("config") {
        Ok(d) => d,
        Err(BackendError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Sealed::parse(SealedKind::Config, &data)
        .map(Some)
        .map_err(|e| Error::Corrupt(format!("config object is malformed: {e}")))
}

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    use super::*;
    use crate::repofile::SnapshotSummary;

    #[test]
    fn latest_compares_times_not_their_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = vtool_transfer::LocalBackend::create(dir.path()).expect("backend");
        let identity = age::x25519::Identity::generate();
        let new = Repository::init(Box::new(backend), vec![identity.to_public()]).expect("init");
        let key = &new.backup_key.chunk_key;
        // As text ".12Z" sorts after ".123Z" ('Z' > '3'), yet it is the earlier time.
        let mut ids = Vec::new();
        for time in ["2026-12-03T10:00:00.123Z", "2026-12-03T10:00:00.12Z"] {
            let snap = Snapshot {
                version: FORMAT_VERSION,
                time: OffsetDateTime::parse(time, &Rfc3339).expect("time"),
                hostname: "h".into(),
                username: "u".into(),
                paths: vec!["/n".into()],
                tags: Vec::new(),
                tree: Id::hash(b"tree"),
                fingerprint: Id::hash(b"fp"),
                summary: SnapshotSummary::default(),
                labels: Default::default(),
                refs: None,
                holds: Vec::new(),
            };
            ids.push(new.repo.save_snapshot(&snap, key).expect("save").0);
        }
        let (latest, _) = new.repo.find_snapshot("latest", Some(key)).expect("latest");
        assert_eq!(latest, ids[0]);
    }
}
