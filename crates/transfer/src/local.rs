use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::page_cache;
use crate::temp::{validate_temp_name, TEMP_PREFIX};
use crate::{validate_name, Backend, BackendError, ObjectInfo, TempFile};

/// A repository in a local directory (a disk, a mounted drive, a NFS share).
///
/// Objects are written to a temporary dot-file, fsynced, then hard-linked into place, which
/// fails instead of replacing an existing object; the directory is fsynced after.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// Open an existing repository directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, BackendError> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(BackendError::NoRepository(root.display().to_string()));
        }
        Ok(Self { root })
    }

    /// Create the repository directory (and parents) if needed, then open it.
    pub fn create(root: impl AsRef<Path>) -> Result<Self, BackendError> {
        let root = root.as_ref();
        fs::create_dir_all(root)
            .map_err(|e| BackendError::from_io("create", &root.display().to_string(), e))?;
        Self::open(root)
    }

    fn path(&self, name: &str) -> Result<PathBuf, BackendError> {
        validate_name(name)?;
        Ok(self.root.join(name))
    }

    /// Visit every regular file below `dir` (`""`: the whole repository) with its name,
    /// file name and metadata, not descending into dot-directories.
    fn walk(
        &self,
        dir: &str,
        mut visit: impl FnMut(String, &str, &fs::Metadata),
    ) -> Result<(), BackendError> {
        let mut stack = vec![dir.to_string()];
        while let Some(d) = stack.pop() {
            let entries = match fs::read_dir(self.root.join(&d)) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BackendError::from_io("list", &d, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| BackendError::from_io("list", &d, e))?;
                let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let name = if d.is_empty() {
                    file_name.clone()
                } else {
                    format!("{d}/{file_name}")
                };
                let meta = entry
                    .metadata()
                    .map_err(|e| BackendError::from_io("stat", &name, e))?;
                if meta.is_dir() && !file_name.starts_with('.') {
                    stack.push(name);
                } else if meta.is_file() {
                    visit(name, &file_name, &meta);
                }
            }
        }
        Ok(())
    }

    /// The filesystem's idea of now (an NFS server's clock may differ from ours): the mtime
    /// of a probe file, or the local clock where none can be written.
    fn clock(&self) -> SystemTime {
        tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.root)
            .and_then(|probe| probe.as_file().metadata()?.modified())
            .unwrap_or_else(|_| SystemTime::now())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    page_cache::forget(tmp.as_file());
    // hard_link refuses to replace an existing object, unlike rename.
    fs::hard_link(tmp.path(), path)?;
    drop(tmp);
    sync_dir(dir)
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let path = self.path(name)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| BackendError::from_io("create dir for", name, e))?;
        }
        write_new(&path, data).map_err(|e| BackendError::from_io("write", name, e))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        let io = |e| BackendError::from_io("read", name, e);
        let mut file = File::open(self.path(name)?).map_err(io)?;
        let mut buf = Vec::with_capacity(file.metadata().map_or(0, |m| m.len() as usize));
        file.read_to_end(&mut buf).map_err(io)?;
        page_cache::forget_bulk(&file, buf.len());
        Ok(buf)
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        let io = |e| BackendError::from_io("read", name, e);
        let mut file = File::open(self.path(name)?).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(BackendError::OutOfRange {
                name: name.to_string(),
                size,
                offset,
                len,
            });
        }
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut buf = vec![0; len as usize];
        file.read_exact(&mut buf).map_err(io)?;
        page_cache::forget_bulk(&file, buf.len());
        Ok(buf)
    }

    fn stat(&self, name: &str) -> Result<Option<u64>, BackendError> {
        match fs::metadata(self.path(name)?) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BackendError::from_io("stat", name, e)),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        validate_name(dir)?;
        let mut out = Vec::new();
        self.walk(dir, |name, file_name, meta| {
            // Dot-files are temporary files of unfinished writes.
            if !file_name.starts_with('.') {
                out.push(ObjectInfo {
                    name,
                    size: meta.len(),
                });
            }
        })?;
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), BackendError> {
        let path = self.path(name)?;
        fs::remove_file(&path).map_err(|e| BackendError::from_io("delete", name, e))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(|e| BackendError::from_io("sync", name, e))?;
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), BackendError> {
        let src = self.path(from)?;
        let dst = self.path(to)?;
        if let Some(dir) = dst.parent() {
            fs::create_dir_all(dir).map_err(|e| BackendError::from_io("create dir for", to, e))?;
        }
        // Link then unlink: never replaces an existing `to`.
        fs::hard_link(&src, &dst).map_err(|e| BackendError::from_io("rename", to, e))?;
        fs::remove_file(&src).map_err(|e| BackendError::from_io("rename", from, e))?;
        for dir in [src.parent(), dst.parent()].into_iter().flatten() {
            sync_dir(dir).map_err(|e| BackendError::from_io("sync", to, e))?;
        }
        Ok(())
    }

    fn list_temp(&self) -> Result<Vec<TempFile>, BackendError> {
        let now = self.clock();
        let mut out = Vec::new();
        self.walk("", |name, file_name, meta| {
            if file_name.starts_with(TEMP_PREFIX) {
                let modified = meta.modified().unwrap_or(now);
                out.push(TempFile {
                    name,
                    size: meta.len(),
                    // A future mtime reads as fresh: never removed on a clock's word.
                    age: now.duration_since(modified).unwrap_or_default(),
                });
            }
        })?;
        Ok(out)
    }

    fn remove_temp(&self, name: &str) -> Result<(), BackendError> {
        validate_temp_name(name)?;
        fs::remove_file(self.root.join(name)).map_err(|e| BackendError::from_io("delete", name, e))
    }
}
