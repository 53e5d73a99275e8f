use std::io;

/// What went wrong talking to a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("object {0} does not exist")]
    NotFound(String),
    #[error("object {0} already exists; repository objects are never overwritten")]
    AlreadyExists(String),
    #[error("refused object name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(
        "{0} is not a vtool repository (no such directory); run `vtool init` first or check --repo"
    )]
    NoRepository(String),
    #[error("no space left while writing {0}; the repository is unchanged, free space and re-run")]
    NoSpace(String),
    #[error("permission denied for {0}")]
    PermissionDenied(String),
    #[error("object {name} is {size} bytes; range {offset}+{len} is out of bounds")]
    OutOfRange {
        name: String,
        size: u64,
        offset: u64,
        len: u64,
    },
    #[error("{op} {name}: {source}")]
    Io {
        op: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    /// The server's host key differs from the one recorded in known_hosts.
    #[error("HOST KEY MISMATCH for {host}: the server presented {fingerprint}, but {known_hosts} line {line} records a different key for it. This can be a man-in-the-middle attack; refusing to connect. If the server's key was changed on purpose, remove that line and reconnect")]
    HostKeyMismatch {
        host: String,
        fingerprint: String,
        known_hosts: String,
        line: usize,
    },
    /// The server's host key is not recorded in known_hosts and accepting new keys was not asked for.
    #[error("unknown host {host}: its host key {fingerprint} is not in {known_hosts}; check the fingerprint with the server's administrator, then set VTOOL_SSH_ACCEPT_NEW_HOST=1 once to record it")]
    UnknownHost {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    /// No offered key was accepted by the server.
    #[error("SSH authentication as {user}@{host} failed (tried: {tried}); authorize one of these keys on the server, set VTOOL_SSH_KEY to the right private key, or load it into ssh-agent")]
    AuthFailed {
        user: String,
        host: String,
        tried: String,
    },
    /// An operation this kind of backend does not have (rename on an object store).
    #[error("{location} does not support {op}")]
    Unsupported { op: &'static str, location: String },
    #[error("{0}")]
    Other(String),
}

impl BackendError {
    /// Classify an I/O error for `name`, keeping the cases a user can act on distinct.
    pub fn from_io(op: &'static str, name: &str, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => BackendError::NotFound(name.to_string()),
            io::ErrorKind::AlreadyExists => BackendError::AlreadyExists(name.to_string()),
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                BackendError::PermissionDenied(name.to_string())
            }
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                BackendError::NoSpace(name.to_string())
            }
            _ => BackendError::Io {
                op,
                name: name.to_string(),
                source,
            },
        }
    }

    /// True for errors worth retrying (dropped connections, timeouts).
    pub fn is_transient(&self) -> bool {
        match self {
            BackendError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}
