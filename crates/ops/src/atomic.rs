//! Replace a file so readers see the old or the new content, never a part.

use std::io::Write;
use std::path::Path;

use crate::OpsError;

/// Write a temporary file in the same directory, fsync it, rename it over `path`, fsync the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OpsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A leading dot and no `.prom` ending: node_exporter's textfile collector skips it.
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| OpsError::io(path, e))
}
