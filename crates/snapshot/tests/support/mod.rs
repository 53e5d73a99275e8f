//! The engine tests' repository: a throwaway repository with its two keys, opened through
//! the library. Data, listings and comparisons come from `vtool_testkit`.
#![allow(dead_code)] // each test file uses its own part

use std::fs;
use std::path::{Path, PathBuf};

use vtool_snapshot::age::x25519::Identity;
use vtool_snapshot::keys::BackupKey;
use vtool_snapshot::{
    backup, restore, BackupOptions, BackupReport, NoProgress, Repository, RestoreOptions,
    RestoreReport,
};
use vtool_transfer::{Backend, LocalBackend};

/// A repository in a temporary directory with its two keys.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
    pub backup_key: BackupKey,
    pub identity: Identity,
}

impl TestRepo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = Identity::generate();
        let backend = LocalBackend::create(dir.path().join("repo")).expect("backend");
        let new = Repository::init(Box::new(backend), vec![identity.to_public()]).expect("init");
        TestRepo {
            dir,
            repo: new.repo,
            backup_key: new.backup_key,
            identity,
        }
    }

    /// A repository whose packs are cut at `pack_size` bytes of plaintext (the config is
    /// edited after `init`), so a few MiB of data spread over several packs.
    pub fn with_pack_size(pack_size: u64) -> Self {
        let mut t = TestRepo::new();
        let path = t.path().join("config");
        let mut config = t.repo.config().clone();
        config.pack_size = pack_size;
        let sealed = vtool_snapshot::sealed::seal(
            vtool_snapshot::sealed::SealedKind::Config,
            &config,
            &t.backup_key.chunk_key,
        )
        .expect("seal config");
        fs::write(&path, sealed).expect("write config");
        t.repo = t.reopen();
        assert_eq!(t.repo.config().pack_size, pack_size);
        t
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn local(&self) -> LocalBackend {
        LocalBackend::open(self.path()).expect("open backend")
    }

    /// A fresh handle on the same repository.
    pub fn reopen(&self) -> Repository {
        Repository::open(Box::new(self.local())).expect("open repository")
    }

    /// A private cache directory for this repository's tests.
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn backup(&self, paths: &[&Path], cache: bool) -> BackupReport {
        let opts = BackupOptions {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            cache_base: cache.then(|| self.cache()),
            ..Default::default()
        };
        backup(&self.repo, &self.backup_key, &opts, &NoProgress).expect("backup")
    }

    /// Restore a snapshot (id prefix or `latest`) into `target`.
    pub fn restore(&self, snapshot: &str, target: &Path) -> vtool_snapshot::Result<RestoreReport> {
        let key = self.repo.unlock(self.identity.clone())?;
        let (_, snap) = self.repo.find_snapshot(snapshot, Some(&key.chunk_key))?;
        restore(
            &self.repo,
            &key,
            &snap,
            &RestoreOptions {
                target: target.to_path_buf(),
                ..Default::default()
            },
            &NoProgress,
        )
    }

    /// Names of every object in the repository, sorted.
    pub fn objects(&self) -> Vec<String> {
        let mut names: Vec<String> = ["config", "keys", "packs", "index", "snapshots"]
            .iter()
            .flat_map(|d| {
                if *d == "config" {
                    vec!["config".to_string()]
                } else {
                    self.local()
                        .list(d)
                        .expect("list")
                        .into_iter()
                        .map(|o| o.name)
                        .collect()
                }
            })
            .collect();
        names.sort();
        names
    }

    /// Pack objects with their sizes, largest first.
    pub fn packs(&self) -> Vec<(String, u64)> {
        let mut packs: Vec<(String, u64)> = self
            .local()
            .list("packs")
            .expect("list")
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        packs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        packs
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}
