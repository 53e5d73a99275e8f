//! vtool's repository format and its backup and restore engines.
//!
//! ```no_run
//! use vtool_snapshot::{backup, restore, keys, Repository, BackupOptions, RestoreOptions, NoProgress};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // init: a restore identity (kept offline) and a backup key (for backup hosts)
//! let identity = age::x25519::Identity::generate();
//! let backend = vtool_transfer::url::create("/srv/vtool-repo")?;
//! let new = Repository::init(backend, vec![identity.to_public()])?;
//!
//! // backup needs only the backup key
//! let opts = BackupOptions { paths: vec!["/var/lib/node".into()], ..Default::default() };
//! let report = backup(&new.repo, &new.backup_key, &opts, &NoProgress)?;
//! println!("fingerprint {}", report.snapshot.fingerprint);
//!
//! // restore needs the identity
//! let key = new.repo.unlock(identity)?;
//! let (_, snap) = new.repo.find_snapshot("latest", Some(&key.chunk_key))?;
//! let ropts = RestoreOptions { target: "/tmp/drill".into(), ..Default::default() };
//! restore(&new.repo, &key, &snap, &ropts, &NoProgress)?;
//! # Ok(()) }
//! ```
//!
//! The on-disk format is specified in `doc/FORMAT.md`; its serde types are in [`repofile`].

mod backup;
pub mod blob;
pub mod cache;
pub mod chunker;
pub mod copy;
pub mod crypto;
mod error;
mod file_type;
pub mod forget;
pub mod glob;
mod id;
pub mod index;
pub mod keys;
pub mod merkle;
pub mod pack;
pub mod prune;
pub mod reader;
pub mod refs;
pub mod repair;
pub mod repofile;
mod repository;
mod restore;
pub mod trash;
pub mod writers;

pub mod sealed;
pub mod tree;

pub use age;
pub use backup::{backup, BackupOptions, BackupReport, Warning};
pub use error::{Error, Result};
pub use file_type::FileType;
pub use id::Id;
pub use repository::{InitOptions, NewRepository, Repository, DEFAULT_PACK_SIZE};
pub use restore::{restore, restore_from, Damage, RestoreOptions, RestoreReport};
pub use time;
pub use vtool_transfer::{NoProgress, Progress};

/// This machine's host name, as recorded in snapshots and drill records.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Current time as RFC 3339 UTC with nanoseconds, for fields only people read.
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// A time as RFC 3339, for messages and fields only people read.
pub fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
