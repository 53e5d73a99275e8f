pub mod backup;
pub mod check;
pub mod checksums;
pub mod completions;
pub mod copy;
pub mod custody;
pub mod diff;
pub mod drill;
pub mod drills;
pub mod forget;
pub mod gate;
pub mod init;
pub mod keys;
pub mod liveness;
pub mod man;
pub mod migrate;
pub mod profiles;
pub mod prune;
pub mod repair;
pub mod report;
pub mod reports;
pub mod restore;
pub mod run;
pub mod slashing;
pub mod snapshots;
pub mod tower;

use anyhow::Context;
use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::Snapshot;
use vtool_snapshot::sealed::{Sealed, SealedKind};
use vtool_snapshot::{Id, Repository};

/// `--repo` as every repository command takes it.
#[derive(clap::Args, Debug, Clone)]
pub struct RepoArg {
    /// Repository: a path or sftp://user@host[:port]/path.
    #[arg(long, env = "VTOOL_REPO")]
    pub repo: String,
}

impl RepoArg {
    pub fn open(&self) -> anyhow::Result<Repository> {
        let backend = vtool_transfer::url::open(&self.repo)
            .with_context(|| format!("cannot open repository {}", self.repo))?;
        Ok(Repository::open(backend)?)
    }
}

/// `--identity` as every command that decrypts takes it.
#[derive(clap::Args, Debug, Clone)]
pub struct IdentityArg {
    /// The restore identity from `vtool init --identity-out`.
    #[arg(long, env = "VTOOL_IDENTITY")]
    pub identity: std::path::PathBuf,
}

impl IdentityArg {
    /// Recover the repository's restore key with the identity.
    pub fn unlock(&self, repo: &Repository) -> anyhow::Result<vtool_snapshot::keys::RestoreKey> {
        let identity = vtool_snapshot::keys::load_identity(&self.identity)?;
        Ok(repo.unlock(identity)?)
    }
}

/// `--identity` or `--backup-key`, for commands that only need the chunk key: to
/// authenticate records (drills) or to seal them (forget, prune, which a backup host runs
/// while the identity stays offline).
#[derive(clap::Args, Debug, Clone)]
pub struct ChunkKeyArgs {
    /// The restore identity from `vtool init --identity-out`.
    #[arg(long, env = "VTOOL_IDENTITY", conflicts_with = "backup_key")]
    pub identity: Option<std::path::PathBuf>,
    /// The backup key from `vtool init --backup-key-out`.
    #[arg(long)]
    pub backup_key: Option<std::path::PathBuf>,
}

impl ChunkKeyArgs {
    /// The chunk key from whichever was given, checked against the repository.
    pub fn chunk_key(
        &self,
        repo: &Repository,
    ) -> anyhow::Result<Option<vtool_snapshot::keys::ChunkKey>> {
        Ok(match (&self.identity, &self.backup_key) {
            (Some(path), _) => {
                let identity = vtool_snapshot::keys::load_identity(path)?;
                Some(repo.unlock(identity)?.chunk_key)
            }
            (None, Some(path)) => {
                let key = vtool_snapshot::keys::BackupKey::load(path)?;
                repo.check_backup_key(&key)?;
                Some(key.chunk_key)
            }
            (None, None) => None,
        })
    }

    /// As [`ChunkKeyArgs::chunk_key`], for a command that cannot go on without one.
    pub fn require(
        &self,
        repo: &Repository,
        command: &str,
    ) -> anyhow::Result<vtool_snapshot::keys::ChunkKey> {
        self.chunk_key(repo)?.ok_or_else(|| {
            anyhow::anyhow!(
                "{command} needs a key: pass --backup-key FILE (the identity can stay offline) or --identity FILE"
            )
        })
    }
}

/// A snapshot to read, as restore, diff and checksums take it.
#[derive(clap::Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    #[command(flatten)]
    pub identity: IdentityArg,
    /// Snapshot id (any unique prefix) or `latest`.
    pub snapshot: String,
    /// Do not use the local cache of index files (every one is fetched).
    #[arg(long)]
    pub no_cache: bool,
}

impl SnapshotArgs {
    /// Open the repository, unlock it, find and authenticate the snapshot, load the index.
    pub fn open_reader(&self) -> anyhow::Result<vtool_snapshot::reader::OpenedSnapshot> {
        open_snapshot(&self.repo, &self.identity, &self.snapshot, self.no_cache)
    }
}

/// [`SnapshotArgs::open_reader`] for commands whose snapshot argument differs.
pub fn open_snapshot(
    repo: &RepoArg,
    identity: &IdentityArg,
    spec: &str,
    no_cache: bool,
) -> anyhow::Result<vtool_snapshot::reader::OpenedSnapshot> {
    let repo = repo.open()?;
    let key = identity.unlock(&repo)?;
    let (id, snap) = find_snapshot(&repo, spec, Some(&key.chunk_key))?;
    let cache = cache_base(no_cache);
    Ok(vtool_snapshot::reader::OpenedSnapshot::open(
        repo,
        key,
        id,
        snap,
        cache.as_deref(),
    )?)
}

/// Find a snapshot by id prefix or `latest` (authenticated when `key` is given), and say on
/// stderr which objects were passed over as damaged or forged.
pub fn find_snapshot(
    repo: &Repository,
    spec: &str,
    key: Option<&ChunkKey>,
) -> anyhow::Result<(Id, Sealed<Snapshot>)> {
    let listing = repo.snapshots()?;
    for d in &listing.damaged {
        eprintln!(
            "warning: {} is damaged ({}); passed over. `vtool check` lists all damage",
            d.object, d.reason
        );
    }
    if let Some(key) = key {
        for (id, s) in &listing.objects {
            if !s.verify(SealedKind::Snapshot, key) {
                eprintln!(
                    "warning: snapshots/{id} fails authentication (altered or forged by someone without the keys); passed over"
                );
            }
        }
    }
    Ok(listing.find(spec, key)?)
}

/// Base of the local cache, unless disabled.
pub fn cache_base(no_cache: bool) -> Option<std::path::PathBuf> {
    if no_cache {
        None
    } else {
        vtool_snapshot::cache::Cache::default_base()
    }
}

/// Where keystore passwords are, and how much memory proving them may use.
#[derive(clap::Args)]
pub struct PasswordArgs {
    /// Directory of password files named by public key (0x… or without 0x, optional .txt);
    /// default: a `secrets/` directory beside the keystores, if any.
    #[arg(long, conflicts_with = "password_file")]
    passwords: Option<std::path::PathBuf>,
    /// One password file for every keystore.
    #[arg(long)]
    password_file: Option<std::path::PathBuf>,
    /// Memory the key derivations may use at once, in MiB (scrypt n=2^18 needs 256 MiB each).
    #[arg(long, default_value_t = 1024)]
    memory_budget_mib: u64,
}

impl PasswordArgs {
    /// The options for proving the keystores under `dir`.
    pub fn check_options(&self, dir: &std::path::Path) -> vtool_validator::CheckOptions {
        vtool_validator::CheckOptions {
            passwords: vtool_validator::PasswordSource::or_default_for(
                self.explicit().as_ref(),
                dir,
            ),
            memory_budget: self.memory_budget(),
        }
    }

    /// The password source given on the command line, if any.
    pub fn explicit(&self) -> Option<vtool_validator::PasswordSource> {
        use vtool_validator::PasswordSource;
        match (&self.passwords, &self.password_file) {
            (Some(d), _) => Some(PasswordSource::Dir(d.clone())),
            (None, Some(f)) => Some(PasswordSource::File(f.clone())),
            (None, None) => None,
        }
    }

    pub fn memory_budget(&self) -> u64 {
        self.memory_budget_mib.max(1) << 20
    }
}

/// The validator keys a command is about: the keystores in a directory, or pubkeys given.
#[derive(clap::Args, Debug, Clone)]
pub struct PubkeyArgs {
    /// A directory of EIP-2335 keystores (any client's layout); their pubkeys are used.
    #[arg(long, value_name = "DIR", required_unless_present = "pubkey")]
    pub keys: Option<std::path::PathBuf>,
    /// A validator public key (0x and 96 hex digits); repeatable.
    #[arg(long, value_name = "HEX", num_args = 1.., conflicts_with = "keys")]
    pub pubkey: Vec<String>,
}

impl PubkeyArgs {
    /// The keys, `0x`-prefixed lowercase, sorted, each once.
    pub fn pubkeys(&self) -> anyhow::Result<Vec<String>> {
        use anyhow::Context;
        let mut out = match &self.keys {
            Some(dir) => vtool_validator::keystore_pubkeys(dir).with_context(|| {
                format!(
                    "cannot read the pubkeys of the keystores in {}",
                    dir.display()
                )
            })?,
            None => Vec::new(),
        };
        for p in &self.pubkey {
            out.push(
                vtool_validator::keystore::normalize_pubkey(p)
                    .with_context(|| format!("--pubkey {p}: not a 48-byte hex public key"))?,
            );
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}
