//! The backend operations as async SFTP request sequences on one connection.
//!
//! Every function classifies its failures: a status answered by the server is final
//! ([`OpError::Fatal`]), anything else means the connection is gone ([`OpError::Conn`]) and the
//! caller reconnects and retries the whole operation.

use std::sync::Arc;

use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::task::JoinSet;

use super::conn::Conn;
use super::OpError;
use crate::{BackendError, ObjectInfo};

/// Requests in flight per transfer: enough to cover the SSH window and the round trip.
const IN_FLIGHT: usize = 32;
/// Directories listed concurrently.
const LIST_IN_FLIGHT: usize = 16;

const TYPE_MASK: u32 = 0o170000;
const TYPE_DIR: u32 = 0o040000;
const TYPE_FILE: u32 = 0o100000;

/// What a finished request said, with the connection-level failures split off.
pub(super) enum Answer {
    Status(StatusCode, String),
}

pub(super) fn classify(e: SftpError) -> Result<Answer, OpError> {
    match e {
        SftpError::Status(s) => Ok(Answer::Status(s.status_code, s.error_message)),
        SftpError::Limited(why) => Err(OpError::Fatal(BackendError::Other(format!(
            "request exceeds the server's sftp limits: {why}"
        )))),
        SftpError::Timeout => Err(OpError::Conn("the server did not answer in time".into())),
        other => Err(OpError::Conn(other.to_string())),
    }
}

/// Turn a server status into the backend error a user can act on.
pub(super) fn status_error(
    op: &'static str,
    name: &str,
    location: &str,
    code: StatusCode,
    message: &str,
) -> BackendError {
    match code {
        StatusCode::NoSuchFile => BackendError::NotFound(name.to_string()),
        StatusCode::PermissionDenied => {
            BackendError::PermissionDenied(format!("{name} on {location} (server: {message})"))
        }
        _ => BackendError::Io {
            op,
            name: name.to_string(),
            source: std::io::Error::other(format!("sftp server on {location}: {code}: {message}")),
        },
    }
}

/// One attempt's view: the connection it runs on and the repository location for messages.
pub(super) struct Ctx {
    pub conn: Arc<Conn>,
    pub location: Arc<str>,
}

impl Ctx {
    fn fail(&self, op: &'static str, name: &str, e: SftpError) -> OpError {
        match classify(e) {
            Ok(Answer::Status(code, msg)) => {
                OpError::Fatal(status_error(op, name, &self.location, code, &msg))
            }
            Err(e) => e,
        }
    }

    /// Attributes of `path`, `None` if it does not exist.
    pub async fn stat(&self, path: &str, name: &str) -> Result<Option<FileAttributes>, OpError> {
        match self.conn.sftp.stat(path).await {
            Ok(attrs) => Ok(Some(attrs.attrs)),
            Err(e) => match classify(e)? {
                Answer::Status(StatusCode::NoSuchFile, _) => Ok(None),
                Answer::Status(code, msg) => Err(OpError::Fatal(status_error(
                    "stat",
                    name,
                    &self.location,
                    code,
                    &msg,
                ))),
            },
        }
    }

    /// Size of the regular file at `path`, `None` if missing or not a file.
    pub async fn file_size(&self, path: &str, name: &str) -> Result<Option<u64>, OpError> {
        Ok(self
            .stat(path, name)
            .await?
            .filter(is_file)
            .map(|a| a.size.unwrap_or(0)))
    }

    /// `mkdir -p` of an absolute directory path.
    pub async fn mkdir_p(&self, dir: &str, name: &str) -> Result<(), OpError> {
        let mut missing = Vec::new();
        let mut current = dir.trim_end_matches('/').to_string();
        // Walk up until a directory exists or can be created; the common case is one level.
        loop {
            if current.is_empty() {
                break;
            }
            match self
                .conn
                .sftp
                .mkdir(current.as_str(), FileAttributes::default())
                .await
            {
                Ok(_) => break,
                Err(e) => match classify(e)? {
                    Answer::Status(StatusCode::NoSuchFile, _) => {
                        let parent = match current.rfind('/') {
                            Some(i) => current[..i].to_string(),
                            None => String::new(),
                        };
                        missing.push(std::mem::replace(&mut current, parent));
                    }
                    // OpenSSH reports EEXIST as a generic failure: check what is there.
                    Answer::Status(code, msg) => match self.stat(&current, name).await? {
                        Some(a) if is_dir(&a) => break,
                        _ => {
                            return Err(OpError::Fatal(status_error(
                                "create directory for",
                                name,
                                &self.location,
                                code,
                                &msg,
                            )))
                        }
                    },
                },
            }
        }
        for dir in missing.iter().rev() {
            if let Err(e) = self
                .conn
                .sftp
                .mkdir(dir.as_str(), FileAttributes::default())
                .await
            {
                let Answer::Status(code, msg) = classify(e)?;
                // A concurrent put may have created it in the meantime.
                if !matches!(self.stat(dir, name).await?, Some(a) if is_dir(&a)) {
                    return Err(OpError::Fatal(status_error(
                        "create directory for",
                        name,
                        &self.location,
                        code,
                        &msg,
                    )));
                }
            }
        }
        Ok(())
    }

    /// Write `data` to a new file at `tmp` (which must not exist), with pipelined writes.
    pub async fn write_new(&self, tmp: &str, name: &str, data: &[u8]) -> Result<(), OpError> {
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
        let handle = self
            .conn
            .sftp
            .open(tmp, flags, FileAttributes::default())
            .await
            .map_err(|e| self.fail("write", name, e))?
            .handle;
        let written = self.write_all(&handle, name, data).await;
        let synced = match written {
            Ok(()) if self.conn.has_fsync => self
                .conn
                .sftp
                .fsync(handle.as_str())
                .await
                .map(|_| ())
                .map_err(|e| self.fail("sync", name, e)),
            other => other,
        };
        let closed = self
            .conn
            .sftp
            .close(handle.as_str())
            .await
            .map(|_| ())
            .map_err(|e| self.fail("close", name, e));
        synced.and(closed)
    }

    async fn write_all(&self, handle: &str, name: &str, data: &[u8]) -> Result<(), OpError> {
        let chunk = self.conn.write_len.max(1);
        let mut tasks = JoinSet::new();
        let mut offset = 0usize;
        loop {
            while tasks.len() >= IN_FLIGHT || (offset >= data.len() && !tasks.is_empty()) {
                if let Some(done) = tasks.join_next().await {
                    flatten_join(done).map_err(|e| self.fail("write", name, e))?;
                }
            }
            if offset >= data.len() {
                return Ok(());
            }
            let end = (offset + chunk).min(data.len());
            let buf = data[offset..end].to_vec();
            let sftp = Arc::clone(&self.conn.sftp);
            let handle = handle.to_string();
            let at = offset as u64;
            tasks.spawn(async move { sftp.write(handle, at, buf).await.map(|_| ()) });
            offset = end;
        }
    }

    /// Read `len` bytes at `offset` from `path`; `expect_size` checks the file size first.
    pub async fn read_range(
        &self,
        path: &str,
        name: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>, OpError> {
        let handle = self
            .conn
            .sftp
            .open(path, OpenFlags::READ, FileAttributes::default())
            .await
            .map_err(|e| self.fail("read", name, e))?
            .handle;
        let result = self.read_open(&handle, name, range).await;
        // The handle is closed either way; a failed close does not change what was read.
        let _ = self.conn.sftp.close(handle.as_str()).await;
        result
    }

    async fn read_open(
        &self,
        handle: &str,
        name: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>, OpError> {
        let size = self
            .conn
            .sftp
            .fstat(handle)
            .await
            .map_err(|e| self.fail("read", name, e))?
            .attrs
            .size
            .unwrap_or(0);
        let (offset, len) = range.unwrap_or((0, size));
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(OpError::Fatal(BackendError::OutOfRange {
                name: name.to_string(),
                size,
                offset,
                len,
            }));
        }
        let total = usize::try_from(len).map_err(|_| {
            OpError::Fatal(BackendError::Other(format!(
                "{name}: {len} bytes do not fit in memory"
            )))
        })?;
        let mut out = vec![0u8; total];
        let chunk = self.conn.read_len.max(1) as usize;
        let mut tasks = JoinSet::new();
        let mut next = 0usize;
        loop {
            while tasks.len() >= IN_FLIGHT || (next >= total && !tasks.is_empty()) {
                if let Some(done) = tasks.join_next().await {
                    let (at, bytes) = flatten_join(done).map_err(|e| self.fail("read", name, e))?;
                    let at: usize = at;
                    let bytes: Vec<u8> = bytes;
                    if let Some(dst) = out.get_mut(at..at + bytes.len()) {
                        dst.copy_from_slice(&bytes);
                    }
                }
            }
            if next >= total {
                return Ok(out);
            }
            let want = chunk.min(total - next);
            let sftp = Arc::clone(&self.conn.sftp);
            let handle = handle.to_string();
            let at = next;
            let file_offset = offset + next as u64;
            tasks.spawn(async move {
                // The server may answer with fewer bytes than asked: ask again for the rest.
                let mut buf = Vec::with_capacity(want);
                while buf.len() < want {
                    let data = sftp
                        .read(
                            handle.as_str(),
                            file_offset + buf.len() as u64,
                            (want - buf.len()) as u32,
                        )
                        .await?
                        .data;
                    if data.is_empty() {
                        return Err(SftpError::UnexpectedBehavior(
                            "empty read before the end of the object".into(),
                        ));
                    }
                    buf.extend_from_slice(&data);
                }
                buf.truncate(want);
                Ok((at, buf))
            });
            next += want;
        }
    }

    /// Rename `from` to `to` (absolute paths) without replacing an existing `to`.
    ///
    /// OpenSSH implements SSH_FXP_RENAME of a file as link()+unlink(), so an existing target
    /// makes it fail instead of being replaced; we also check first for servers that do not.
    pub async fn rename_new(&self, from: &str, to: &str, name: &str) -> Result<(), OpError> {
        if self.stat(to, name).await?.is_some() {
            return Err(OpError::Fatal(BackendError::AlreadyExists(
                name.to_string(),
            )));
        }
        match self.conn.sftp.rename(from, to).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let Answer::Status(code, msg) = classify(e)?;
                if code != StatusCode::NoSuchFile && self.stat(to, name).await?.is_some() {
                    return Err(OpError::Fatal(BackendError::AlreadyExists(
                        name.to_string(),
                    )));
                }
                Err(OpError::Fatal(status_error(
                    "rename",
                    name,
                    &self.location,
                    code,
                    &msg,
                )))
            }
        }
    }

    pub async fn remove(&self, path: &str, name: &str) -> Result<(), OpError> {
        self.conn
            .sftp
            .remove(path)
            .await
            .map(|_| ())
            .map_err(|e| self.fail("delete", name, e))
    }

    /// Every regular file below `dir` (relative name `prefix`), skipping dot-names.
    pub async fn list(&self, root: &str, prefix: &str) -> Result<Vec<ObjectInfo>, OpError> {
        let files = self.walk(root, prefix).await?;
        Ok(files
            .into_iter()
            // Dot-files are temporary files of unfinished writes.
            .filter(|f| !f.file_name.starts_with('.'))
            .map(|f| ObjectInfo {
                name: f.name,
                size: f.attrs.size.unwrap_or(0),
            })
            .collect())
    }

    /// Every regular file below `prefix` (`""`: all of `root`), dot-files included, not
    /// descending into dot-directories.
    pub async fn walk(&self, root: &str, prefix: &str) -> Result<Vec<Listed>, OpError> {
        let mut out = Vec::new();
        let mut pending = vec![prefix.to_string()];
        let mut tasks = JoinSet::new();
        loop {
            while tasks.len() < LIST_IN_FLIGHT {
                let Some(rel) = pending.pop() else { break };
                let sftp = Arc::clone(&self.conn.sftp);
                let path = match (root, rel.as_str()) {
                    ("", "") => "/".to_string(),
                    (root, "") => root.to_string(),
                    (root, rel) => format!("{root}/{rel}"),
                };
                tasks.spawn(async move { (read_dir(&sftp, &path).await, rel) });
            }
            let Some(done) = tasks.join_next().await else {
                return Ok(out);
            };
            let (entries, rel) =
                done.map_err(|e| OpError::Conn(format!("listing task failed: {e}")))?;
            let entries = match entries {
                Ok(entries) => entries,
                Err(e) => match classify(e)? {
                    Answer::Status(StatusCode::NoSuchFile, _) => continue,
                    Answer::Status(code, msg) => {
                        return Err(OpError::Fatal(status_error(
                            "list",
                            &rel,
                            &self.location,
                            code,
                            &msg,
                        )))
                    }
                },
            };
            for (file_name, attrs) in entries {
                let name = if rel.is_empty() {
                    file_name.clone()
                } else {
                    format!("{rel}/{file_name}")
                };
                if is_dir(&attrs) && !file_name.starts_with('.') {
                    pending.push(name);
                } else if is_file(&attrs) {
                    out.push(Listed {
                        name,
                        file_name,
                        attrs,
                    });
                }
            }
        }
    }
}

/// A regular file found by [`Ctx::walk`].
pub(super) struct Listed {
    /// Relative to the repository root.
    pub name: String,
    pub file_name: String,
    pub attrs: FileAttributes,
}

async fn read_dir(
    sftp: &russh_sftp::client::RawSftpSession,
    path: &str,
) -> Result<Vec<(String, FileAttributes)>, SftpError> {
    let handle = sftp.opendir(path).await?.handle;
    let mut entries = Vec::new();
    let result = loop {
        match sftp.readdir(handle.as_str()).await {
            Ok(name) => entries.extend(name.files.into_iter().map(|f| (f.filename, f.attrs))),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(entries),
            Err(e) => break Err(e),
        }
    };
    let _ = sftp.close(handle.as_str()).await;
    result
}

fn flatten_join<T>(
    done: Result<Result<T, SftpError>, tokio::task::JoinError>,
) -> Result<T, SftpError> {
    done.map_err(|e| SftpError::UnexpectedBehavior(format!("transfer task failed: {e}")))?
}

pub(super) fn is_file(a: &FileAttributes) -> bool {
    a.permissions.is_some_and(|p| p & TYPE_MASK == TYPE_FILE)
}

pub(super) fn is_dir(a: &FileAttributes) -> bool {
    a.permissions.is_some_and(|p| p & TYPE_MASK == TYPE_DIR)
}
