//! A repository on an SSH server, reached over SFTP (`sftp://user@host[:port]/path`).
//!
//! Works against a stock OpenSSH server: nothing but the `sftp` subsystem is needed on the
//! server side, so a restricted account (`ForceCommand internal-sftp`, chroot) is enough.
//!
//! # Authentication and host keys
//!
//! * Keys: the file named by `VTOOL_SSH_KEY`, otherwise the first of `~/.ssh/id_ed25519`,
//!   `~/.ssh/id_ecdsa`, `~/.ssh/id_rsa` that exists and the server accepts; then the keys of a
//!   running ssh-agent (`SSH_AUTH_SOCK`). Passphrase-protected key files must go through the
//!   agent.
//! * The server's host key must be recorded in a known_hosts file (`VTOOL_SSH_KNOWN_HOSTS`,
//!   default `~/.ssh/known_hosts`; for a port other than 22 the entry is `[host]:port`). A key
//!   that differs from the recorded one is always refused. An unknown host is refused unless
//!   `VTOOL_SSH_ACCEPT_NEW_HOST=1` is set, which records its key (trust on first use).
//!
//! | variable | meaning |
//! |---|---|
//! | `VTOOL_SSH_KEY` | private key file to authenticate with (only this file, plus the agent) |
//! | `VTOOL_SSH_KNOWN_HOSTS` | known_hosts file to check and record host keys in |
//! | `VTOOL_SSH_ACCEPT_NEW_HOST=1` | accept and record the key of a host not yet in known_hosts |
//!
//! # Behaviour
//!
//! * Writes go to `.tmp-<random>` in the target directory (created as needed), are fsynced
//!   when the server supports it, and are renamed into place. OpenSSH's SSH_FXP_RENAME never
//!   replaces an existing file, and the target is checked first, so objects are never
//!   overwritten. Temporary files of writers that died are removed once stale (see
//!   [`crate::temp`]), judged by the server's clock.
//! * A small pool of SSH connections ([`SftpConfig::connections`]) is shared by all callers so
//!   parallel callers do not queue behind each other; each transfer keeps many read or write
//!   requests in flight.
//! * A dropped connection is reopened and the operation retried with backoff a few times
//!   ([`SftpConfig::retries`]). Connecting and every request have timeouts, so a dead server
//!   gives an error, not a hang.
//!
//! The backend runs its own small tokio runtime; call it from ordinary threads (not from
//! inside an async runtime).

mod conn;
mod ops;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use conn::Conn;
use ops::Ctx;

use crate::temp::{validate_temp_name, TEMP_PREFIX};
use crate::{validate_name, Backend, BackendError, ObjectInfo, TempFile};

/// Where and how to connect. [`SftpConfig::new`] gives defaults; [`SftpConfig::with_env`]
/// applies the environment variables (what `sftp://` URLs in [`crate::url::open`] use):
///
/// | variable | meaning |
/// |---|---|
/// | `VTOOL_SSH_KEY` | private key file to authenticate with (only this file, plus ssh-agent) |
/// | `VTOOL_SSH_KNOWN_HOSTS` | known_hosts file to check host keys against and record them in |
/// | `VTOOL_SSH_ACCEPT_NEW_HOST=1` | accept and record the key of a host not yet in known_hosts |
///
/// Host keys are checked like OpenSSH does (entry `[host]:port` for ports other than 22): a
/// changed key is always refused; an unknown one unless accepting is asked for.
#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// Repository directory on the server (absolute, or relative to the login directory).
    pub path: String,
    /// Private key file. `None`: try `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
    pub identity_file: Option<PathBuf>,
    /// known_hosts file. `None`: `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Record the key of a host not yet in known_hosts instead of refusing it.
    pub accept_new_host_key: bool,
    /// Also offer the keys of the ssh-agent at `SSH_AUTH_SOCK`.
    pub use_agent: bool,
    /// SSH connections opened (lazily) and shared by concurrent callers.
    pub connections: usize,
    /// Limit for TCP connect, key exchange and authentication.
    pub connect_timeout: Duration,
    /// Limit for the answer to any single SFTP request.
    pub request_timeout: Duration,
    /// How often an operation is retried after its connection dropped.
    pub retries: u32,
}

impl SftpConfig {
    pub fn new(
        user: impl Into<String>,
        host: impl Into<String>,
        port: u16,
        path: impl Into<String>,
    ) -> Self {
        Self {
            user: user.into(),
            host: host.into(),
            port,
            path: path.into(),
            identity_file: None,
            known_hosts: None,
            accept_new_host_key: false,
            use_agent: true,
            connections: 4,
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
            retries: 4,
        }
    }

    /// Apply `VTOOL_SSH_KEY`, `VTOOL_SSH_KNOWN_HOSTS` and `VTOOL_SSH_ACCEPT_NEW_HOST`.
    pub fn with_env(mut self) -> Self {
        if let Some(key) = std::env::var_os("VTOOL_SSH_KEY").filter(|v| !v.is_empty()) {
            self.identity_file = Some(PathBuf::from(key));
        }
        if let Some(kh) = std::env::var_os("VTOOL_SSH_KNOWN_HOSTS").filter(|v| !v.is_empty()) {
            self.known_hosts = Some(PathBuf::from(kh));
        }
        if let Ok(v) = std::env::var("VTOOL_SSH_ACCEPT_NEW_HOST") {
            self.accept_new_host_key = matches!(v.trim(), "1" | "true" | "yes");
        }
        self
    }

    fn location(&self) -> String {
        let path = self.path.trim_start_matches('/');
        format!("sftp://{}@{}:{}/{}", self.user, self.host, self.port, path)
    }

    fn ssh_dir() -> Option<PathBuf> {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".ssh"))
    }

    fn known_hosts_path(&self) -> Result<PathBuf, OpError> {
        match &self.known_hosts {
            Some(p) => Ok(p.clone()),
            None => Self::ssh_dir()
                .map(|d| d.join("known_hosts"))
                .ok_or_else(|| {
                    OpError::Fatal(BackendError::Other(
                        "HOME is not set: set VTOOL_SSH_KNOWN_HOSTS to a known_hosts file".into(),
                    ))
                }),
        }
    }

    /// Key files to offer, and whether they were named explicitly.
    fn identity_candidates(&self) -> (Vec<PathBuf>, bool) {
        match &self.identity_file {
            Some(p) => (vec![p.clone()], true),
            None => (
                Self::ssh_dir()
                    .map(|d| {
                        ["id_ed25519", "id_ecdsa", "id_rsa"]
                            .map(|f| d.join(f))
                            .to_vec()
                    })
                    .unwrap_or_default(),
                false,
            ),
        }
    }
}

/// Why one attempt of an operation failed.
pub(crate) enum OpError {
    /// A definite answer: retrying would not help.
    Fatal(BackendError),
    /// The connection failed or timed out: reconnect and retry.
    Conn(String),
}

impl From<BackendError> for OpError {
    fn from(e: BackendError) -> Self {
        OpError::Fatal(e)
    }
}

struct Pool {
    cfg: SftpConfig,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
}

impl Pool {
    /// A live connection, round-robin over the slots, (re)connecting a slot when needed.
    async fn get(&self) -> Result<(usize, Arc<Conn>), OpError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = self
            .slots
            .get(i)
            .ok_or_else(|| OpError::Conn("no connection slot".into()))?;
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok((i, Arc::clone(conn)));
        }
        *guard = None;
        let conn = tokio::time::timeout(self.cfg.connect_timeout, Conn::connect(&self.cfg))
            .await
            .map_err(|_| {
                OpError::Conn(format!(
                    "connecting to {}:{} timed out after {:?}",
                    self.cfg.host, self.cfg.port, self.cfg.connect_timeout
                ))
            })??;
        let conn = Arc::new(conn);
        *guard = Some(Arc::clone(&conn));
        Ok((i, conn))
    }

    /// Forget a connection that failed, unless the slot was already reconnected.
    async fn discard(&self, i: usize, conn: &Arc<Conn>) {
        if let Some(slot) = self.slots.get(i) {
            let mut guard = slot.lock().await;
            if guard.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                *guard = None;
            }
        }
    }
}

/// A repository directory on an SFTP server; see the [module documentation](self) and
/// [`SftpConfig`].
pub struct SftpBackend {
    pool: Pool,
    /// Root directory on the server, without a trailing slash (empty for `/`).
    root: String,
    location: Arc<str>,
    // Declared last: dropped after the connections whose tasks run on it.
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for SftpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpBackend")
            .field("location", &self.location)
            .finish()
    }
}

impl SftpBackend {
    /// Connect and open an existing repository directory ([`BackendError::NoRepository`] if
    /// it does not exist). Authentication and host-key problems are reported here.
    pub fn open(config: SftpConfig) -> Result<Self, BackendError> {
        Self::connect(config, false)
    }

    /// Connect, creating the repository directory (and parents) if needed.
    pub fn create(config: SftpConfig) -> Result<Self, BackendError> {
        Self::connect(config, true)
    }

    fn connect(config: SftpConfig, create: bool) -> Result<Self, BackendError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vtool-sftp")
            .enable_all()
            .build()
            .map_err(|e| BackendError::from_io("start runtime for", "sftp", e))?;
        let location = config.location();
        let root = match config.path.trim_end_matches('/') {
            "" if config.path.starts_with('/') => String::new(),
            "" => ".".to_string(),
            p => p.to_string(),
        };
        let slots = (0..config.connections.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        let backend = SftpBackend {
            pool: Pool {
                cfg: config,
                slots,
                next: AtomicUsize::new(0),
            },
            root,
            location: Arc::from(location),
            rt,
        };
        let root_dir = if backend.root.is_empty() {
            "/".to_string()
        } else {
            backend.root.clone()
        };
        let location = backend.location.to_string();
        backend.run("open", &location, |ctx, _| {
            let root_dir = root_dir.clone();
            let location = location.clone();
            async move {
                match ctx.stat(&root_dir, &location).await? {
                    Some(a) if ops::is_dir(&a) => Ok(()),
                    Some(_) => Err(OpError::Fatal(BackendError::NoRepository(format!(
                        "{location} (not a directory)"
                    )))),
                    None if create => ctx.mkdir_p(&root_dir, &location).await,
                    None => Err(OpError::Fatal(BackendError::NoRepository(location))),
                }
            }
        })?;
        Ok(backend)
    }

    fn full(&self, name: &str) -> String {
        format!("{}/{name}", self.root)
    }

    /// Run one operation on a pooled connection; on a connection failure drop that
    /// connection, wait, reconnect and run it again (`attempt` counts from 0).
    fn run<T, F, Fut>(&self, op: &'static str, name: &str, mut f: F) -> Result<T, BackendError>
    where
        F: FnMut(Ctx, u32) -> Fut,
        Fut: Future<Output = Result<T, OpError>>,
    {
        self.rt.block_on(async {
            let retries = self.pool.cfg.retries;
            let mut attempt = 0u32;
            loop {
                let result = match self.pool.get().await {
                    Ok((slot, conn)) => {
                        let ctx = Ctx {
                            conn: Arc::clone(&conn),
                            location: Arc::clone(&self.location),
                        };
                        let r = f(ctx, attempt).await;
                        if matches!(r, Err(OpError::Conn(_))) {
                            self.pool.discard(slot, &conn).await;
                        }
                        r
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(v) => return Ok(v),
                    Err(OpError::Fatal(e)) => return Err(e),
                    Err(OpError::Conn(_)) if attempt < retries => {
                        let backoff = Duration::from_millis(250u64 << attempt.min(4));
                        tokio::time::sleep(backoff).await;
                        attempt += 1;
                    }
                    Err(OpError::Conn(reason)) => {
                        return Err(BackendError::Io {
                            op,
                            name: name.to_string(),
                            source: io::Error::new(
                                io::ErrorKind::ConnectionAborted,
                                format!(
                                    "connection to {} failed ({} attempts): {reason}",
                                    self.location,
                                    attempt + 1
                                ),
                            ),
                        })
                    }
                }
            }
        })
    }
}

impl SftpBackend {
    /// Remove the file `name` (already validated).
    fn remove(&self, name: &str) -> Result<(), BackendError> {
        let full = self.full(name);
        self.run("delete", name, |ctx, attempt| {
            let full = full.clone();
            async move {
                match ctx.remove(&full, name).await {
                    // The attempt cut off by the lost connection already removed it.
                    Err(OpError::Fatal(BackendError::NotFound(_))) if attempt > 0 => Ok(()),
                    other => other,
                }
            }
        })
    }
}

/// Seconds since the epoch on the server's clock: the mtime of a probe file written
/// there, so a client clock that is off cannot make another writer's live file look old.
async fn server_clock(ctx: &Ctx, probe: &str) -> Option<u64> {
    ctx.write_new(probe, probe, b"").await.ok()?;
    let attrs = ctx.stat(probe, probe).await;
    let _ = ctx.conn.sftp.remove(probe).await;
    attrs.ok()??.mtime.map(u64::from)
}

fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

fn random_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}

impl Backend for SftpBackend {
    fn location(&self) -> String {
        self.location.to_string()
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        validate_name(name)?;
        let full = self.full(name);
        let dir = parent(&full).to_string();
        let tmp_base = format!("{dir}/{TEMP_PREFIX}{}", random_suffix());
        self.run("write", name, |ctx, attempt| {
            let (full, dir, tmp_base) = (full.clone(), dir.clone(), tmp_base.clone());
            async move {
                // Temporary files of earlier, interrupted attempts: best-effort cleanup.
                for earlier in 0..attempt {
                    let _ = ctx.conn.sftp.remove(format!("{tmp_base}-{earlier}")).await;
                }
                if ctx.file_size(&full, name).await?.is_some() {
                    // After a lost connection the previous attempt may have finished: that
                    // is success if the stored object is ours.
                    if attempt > 0 && ctx.read_range(&full, name, None).await? == data {
                        return Ok(());
                    }
                    return Err(OpError::Fatal(BackendError::AlreadyExists(
                        name.to_string(),
                    )));
                }
                let tmp = format!("{tmp_base}-{attempt}");
                let written = match ctx.write_new(&tmp, name, data).await {
                    Err(OpError::Fatal(BackendError::NotFound(_))) => {
                        ctx.mkdir_p(&dir, name).await?;
                        ctx.write_new(&tmp, name, data).await
                    }
                    other => other,
                };
                let result = match written {
                    Ok(()) => ctx.rename_new(&tmp, &full, name).await,
                    Err(e) => Err(e),
                };
                if matches!(result, Err(OpError::Fatal(_))) {
                    let _ = ctx.conn.sftp.remove(tmp).await;
                }
                result
            }
        })
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        validate_name(name)?;
        let full = self.full(name);
        self.run("read", name, |ctx, _| {
            let full = full.clone();
            async move { ctx.read_range(&full, name, None).await }
        })
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        validate_name(name)?;
        let full = self.full(name);
        self.run("read", name, |ctx, _| {
            let full = full.clone();
            async move { ctx.read_range(&full, name, Some((offset, len))).await }
        })
    }

    fn stat(&self, name: &str) -> Result<Option<u64>, BackendError> {
        validate_name(name)?;
        let full = self.full(name);
        self.run("stat", name, |ctx, _| {
            let full = full.clone();
            async move { ctx.file_size(&full, name).await }
        })
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        validate_name(dir)?;
        let root = self.root.clone();
        self.run("list", dir, |ctx, _| {
            let root = root.clone();
            async move { ctx.list(&root, dir).await }
        })
    }

    fn delete(&self, name: &str) -> Result<(), BackendError> {
        validate_name(name)?;
        self.remove(name)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), BackendError> {
        validate_name(from)?;
        validate_name(to)?;
        let (src, dst) = (self.full(from), self.full(to));
        let dst_dir = parent(&dst).to_string();
        self.run("rename", to, |ctx, attempt| {
            let (src, dst, dst_dir) = (src.clone(), dst.clone(), dst_dir.clone());
            async move {
                let src_size = ctx.file_size(&src, from).await?;
                if src_size.is_none() {
                    // The attempt cut off by the lost connection may have done it.
                    if attempt > 0 && ctx.file_size(&dst, to).await?.is_some() {
                        return Ok(());
                    }
                    return Err(OpError::Fatal(BackendError::NotFound(from.to_string())));
                }
                ctx.mkdir_p(&dst_dir, to).await?;
                ctx.rename_new(&src, &dst, to).await
            }
        })
    }

    fn list_temp(&self) -> Result<Vec<TempFile>, BackendError> {
        let root = self.root.clone();
        let probe = self.full(&format!("{TEMP_PREFIX}clock-{}", random_suffix()));
        self.run("list temporary files in", &self.location, |ctx, _| {
            let (root, probe) = (root.clone(), probe.clone());
            async move {
                let now = match server_clock(&ctx, &probe).await {
                    Some(t) => t,
                    // Read-only account or copy: our own clock is the best there is.
                    None => std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                };
                let files = ctx.walk(&root, "").await?;
                Ok(files
                    .into_iter()
                    .filter(|f| f.file_name.starts_with(TEMP_PREFIX))
                    .map(|f| TempFile {
                        name: f.name,
                        size: f.attrs.size.unwrap_or(0),
                        // No mtime, or one in the future: fresh, never removed on a guess.
                        age: Duration::from_secs(
                            f.attrs
                                .mtime
                                .map_or(0, |m| now.saturating_sub(u64::from(m))),
                        ),
                    })
                    .collect())
            }
        })
    }

    fn remove_temp(&self, name: &str) -> Result<(), BackendError> {
        validate_temp_name(name)?;
        self.remove(name)
    }
}
