//! The local cache: copies of index files and the files cache. Only ever a cache: any
//! damage or absence costs speed, never correctness.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::repofile::CachedFile;
use crate::{FileType, Id};

/// Cache directory of one repository.
pub struct Cache {
    dir: PathBuf,
}

/// Files cache: absolute path → what was stored for it last time.
pub type FilesCache = HashMap<String, CachedFile>;

impl Cache {
    /// `base` is `$VTOOL_CACHE_DIR`, or `$XDG_CACHE_HOME/vtool`, or `~/.cache/vtool`.
    pub fn open(base: &Path, repo_id: &Id) -> Option<Self> {
        let dir = base.join(repo_id.to_hex());
        std::fs::create_dir_all(dir.join("index")).ok()?;
        Some(Cache { dir })
    }

    /// The default cache base directory.
    pub fn default_base() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("VTOOL_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(d).join("vtool"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vtool"))
    }

    pub fn read_index(&self, name: &str) -> Option<Vec<u8>> {
        let data = std::fs::read(self.dir.join(name)).ok()?;
        // A damaged cached copy is ignored and fetched again.
        FileType::Index.named_right(name, &data).then_some(data)
    }

    pub fn write_index(&self, name: &str, data: &[u8]) {
        let _ = vtool_transfer::write_atomic(&self.dir.join(name), data);
    }

    pub fn load_files(&self) -> FilesCache {
        let Ok(data) = std::fs::read(self.dir.join("files.zst")) else {
            return FilesCache::new();
        };
        zstd::decode_all(&data[..])
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .unwrap_or_default()
    }

    pub fn save_files(&self, files: &FilesCache) -> std::io::Result<()> {
        let json = serde_json::to_vec(files).map_err(std::io::Error::other)?;
        let data = zstd::bulk::compress(&json, 3)?;
        vtool_transfer::write_atomic(&self.dir.join("files.zst"), &data)
    }
}
