//! Unattended operation of vtool: the `vtool.toml` schema, the schedule of what is due, the
//! per-host run lock, the node_exporter textfile metrics and healthchecks-style pings, and
//! `vtool run`, which drives the ordinary `vtool` commands with them.

pub mod config;
pub mod duration;
pub mod facts;
pub mod lock;
pub mod metrics;
pub mod ping;
pub mod run;
pub mod schedule;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::{Config, ConfigError};
pub use run::{run, Event, RunOptions, RunReport};

/// Exit status of a `vtool run` that found another run holding the lock.
pub const EXIT_BUSY: u8 = 4;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "another vtool run holds {} ({holder}); waited {}s (--lock-wait)",
        path.display(),
        waited.as_secs()
    )]
    Busy {
        path: PathBuf,
        holder: String,
        waited: Duration,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {}: {reason}", path.display())]
    State { path: PathBuf, reason: String },
    #[error("repository {url}: {reason}")]
    Repository { url: String, reason: String },
}

impl OpsError {
    pub fn io(path: &Path, source: std::io::Error) -> OpsError {
        OpsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// RFC 3339 text of a time, for messages.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
