//! The per-host run lock: one `vtool run` at a time.
//!
//! An advisory `flock` on a file in the state directory (std's `File::try_lock`, flock(2) on
//! Linux). The kernel drops it when the process ends, however it ends, so a crash never leaves
//! a stale lock behind. The holder writes its pid and start time into the file, so a waiting
//! run can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::OpsError;

/// Held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

const POLL: Duration = Duration::from_millis(100);

/// Take the lock at `path`, waiting up to `wait` for another holder to let go.
pub fn acquire(path: &Path, wait: Duration) -> Result<RunLock, OpsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| OpsError::io(dir, e))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| OpsError::io(path, e))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(POLL.min(deadline - Instant::now()));
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(OpsError::Busy {
                    path: path.to_path_buf(),
                    holder: holder.trim().to_string(),
                    waited: wait,
                });
            }
            Err(TryLockError::Error(e)) => return Err(OpsError::io(path, e)),
        }
    }
    let note = format!(
        "pid {} since {}\n",
        std::process::id(),
        crate::rfc3339(time::OffsetDateTime::now_utc())
    );
    (|| {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(note.as_bytes())
    })()
    .map_err(|e| OpsError::io(path, e))?;
    Ok(RunLock {
        _file: file,
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_gives_up_naming_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run.lock");
        let first = acquire(&path, Duration::ZERO).expect("first");
        let started = Instant::now();
        let err = acquire(&path, Duration::from_millis(300)).expect_err("busy");
        assert!(started.elapsed() >= Duration::from_millis(300));
        match err {
            OpsError::Busy { holder, .. } => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                )
            }
            other => panic!("not busy: {other}"),
        }
        drop(first);
        acquire(&path, Duration::ZERO).expect("free again");
    }
}
