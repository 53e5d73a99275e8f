//! Temporary files of unfinished puts, and removing the stale ones.
//!
//! Every backend writes an object to a `.tmp-…` dot-file beside it and then links or renames
//! it into place. A writer killed in between (kill -9, power loss, a dropped link) leaves
//! the dot-file behind; [`crate::Backend::list`] never shows it, so nothing else would ever
//! remove it.
//!
//! A temporary file is **stale** once it has not been modified for [`STALE_TEMP_AGE`], by
//! the storage's own clock. That is safe for any number of concurrent writers on any
//! backend, with no lock or writer id a remote filesystem would have to honour: a live put
//! writes its file continuously (mtime advancing with every write) and then renames it
//! within seconds. Its longest pause is one fsync, or on SFTP one request timeout (60 s)
//! times its retries with backoff, about five minutes; an hour is far beyond that. Ages are
//! measured against the mtime of a probe file the backend writes, so a client whose clock
//! is off from the server's (SFTP, NFS) cannot make a live file look old; where no probe
//! can be written (a read-only copy) the local clock is used.
//! Should a hung writer outlive the hour after all, its rename fails and its put reports
//! an error: no object is ever lost or half-written by a removal.

use std::time::Duration;

use serde::Serialize;

use crate::{validate_name, Backend, BackendError};

/// How long a temporary file must have been untouched before it counts as abandoned.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Prefix of every temporary file name.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A temporary file left by a put, as listed by [`Backend::list_temp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    /// Path relative to the repository root, e.g. `packs/ab/.tmp-x1Yz`.
    pub name: String,
    pub size: u64,
    /// Time since it was last modified, by the storage's clock where it could be read.
    pub age: Duration,
}

/// What temporary files a repository holds (reported by `check`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TempSurvey {
    pub files: u64,
    pub bytes: u64,
    /// Untouched for at least [`STALE_TEMP_AGE`]: left by interrupted writers.
    pub stale: u64,
    pub stale_bytes: u64,
}

/// What [`remove_stale_temp`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TempCleanup {
    pub removed: u64,
    pub removed_bytes: u64,
    /// Younger than the threshold: possibly another writer's live file, left alone.
    pub kept: u64,
    /// Stale files that could not be removed, with why.
    pub failed: Vec<String>,
}

/// Count the temporary files and how many of them are stale.
pub fn survey_temp(backend: &dyn Backend) -> Result<TempSurvey, BackendError> {
    let mut s = TempSurvey::default();
    for t in backend.list_temp()? {
        s.files += 1;
        s.bytes += t.size;
        if t.age >= STALE_TEMP_AGE {
            s.stale += 1;
            s.stale_bytes += t.size;
        }
    }
    Ok(s)
}

/// Remove the temporary files untouched for at least `older_than`; younger ones are kept.
/// A file another cleaner removed first is not a failure.
pub fn remove_stale_temp(
    backend: &dyn Backend,
    older_than: Duration,
) -> Result<TempCleanup, BackendError> {
    let mut out = TempCleanup::default();
    for t in backend.list_temp()? {
        if t.age < older_than {
            out.kept += 1;
            continue;
        }
        match backend.remove_temp(&t.name) {
            Ok(()) => {
                out.removed += 1;
                out.removed_bytes += t.size;
            }
            Err(BackendError::NotFound(_)) => {}
            Err(e) => out.failed.push(format!("{}: {e}", t.name)),
        }
    }
    Ok(out)
}

/// [`remove_stale_temp`] with [`STALE_TEMP_AGE`], for the start of a backup or copy: never
/// fails, a listing error lands in [`TempCleanup::failed`].
pub fn clean_stale_temp(backend: &dyn Backend) -> TempCleanup {
    remove_stale_temp(backend, STALE_TEMP_AGE).unwrap_or_else(|e| TempCleanup {
        failed: vec![format!("listing temporary files: {e}")],
        ..Default::default()
    })
}

/// Check a temporary file name for [`Backend::remove_temp`]: a `.tmp-…` file name in an
/// optional directory that is itself a valid object name. Nothing else can be removed
/// through it.
pub fn validate_temp_name(name: &str) -> Result<(), BackendError> {
    let (dir, file) = match name.rsplit_once('/') {
        Some((dir, file)) => (Some(dir), file),
        None => (None, name),
    };
    let ok_file = file.len() > TEMP_PREFIX.len()
        && file.starts_with(TEMP_PREFIX)
        && file[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok_file {
        return Err(BackendError::InvalidName {
            name: name.to_string(),
            reason: "not a temporary file name (.tmp-…)",
        });
    }
    match dir {
        Some(dir) => validate_name(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::validate_temp_name;

    #[test]
    fn only_temp_names_pass() {
        for good in [".tmp-abc", "packs/ab/.tmp-x1_Y", "index/.tmp-0123-1"] {
            assert!(validate_temp_name(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "config",
            "packs/ab/ab12",
            ".tmp-",
            "../.tmp-x",
            "a/../.tmp-x",
            "/abs/.tmp-x",
            ".tmp-x/y",
            "a//.tmp-x",
            ".hidden/.tmp-x",
            ".tmp-a b",
        ] {
            assert!(validate_temp_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
