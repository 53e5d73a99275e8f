use std::path::PathBuf;

use vtool_transfer::BackendError;

/// Errors of the repository engine. Each says what is wrong and, where possible, what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{0} is not a vtool repository (no config object); check --repo or run `vtool init`")]
    NotARepository(String),
    #[error("{0} already holds a repository; refusing to initialise it again")]
    AlreadyInitialized(String),
    #[error("repository format version {0} is newer than this vtool understands; upgrade vtool")]
    UnsupportedVersion(u32),
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("wrong key: {0}")]
    WrongKey(String),
    #[error("repository data is damaged: {0}")]
    Corrupt(String),
    #[error("no snapshot matches {0:?}; list them with `vtool snapshots`")]
    SnapshotNotFound(String),
    #[error("{0:?} matches several snapshots; give more digits of the id")]
    AmbiguousSnapshot(String),
    #[error("source path {0} does not exist")]
    SourceMissing(PathBuf),
    #[error("two backup paths end in the same name {0:?}; back them up separately")]
    DuplicateRootName(String),
    #[error("restore target {0} is not empty; choose an empty or new directory")]
    TargetNotEmpty(PathBuf),
    #[error("refusing unsafe entry name {0:?} in the repository (path traversal attempt?)")]
    UnsafeName(String),
    // Not a `#[source]`: the message already carries it, and the CLI prints error chains.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("directory {0} lists more than the repository format allows in one tree (256 MiB of entries); back up part of it separately or exclude some of it")]
    TreeTooLarge(PathBuf),
    #[error("invalid pattern {0}")]
    Pattern(String),
    /// Encoding, encryption or a worker thread failed: a bug or the machine, never the data.
    #[error("internal error: {0}; this is a bug in vtool, please report it")]
    Internal(String),
    #[error("cannot start worker threads: {0}")]
    Threads(String),
    #[error("{0}; run the backup again")]
    Stale(String),
    /// Options that make no sense together or would do harm.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }

    /// A lock held by a thread that panicked (the panic itself is reported by its join).
    pub(crate) fn poisoned<T>(_: T) -> Self {
        Error::Internal("a worker thread panicked".into())
    }

    /// True when the error means stored data is missing or damaged (exit status 3).
    pub fn is_data_problem(&self) -> bool {
        matches!(
            self,
            Error::Corrupt(_) | Error::Backend(BackendError::NotFound(_))
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
