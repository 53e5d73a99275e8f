//! Is a client running on this data? Lock files it holds say so.
//!
//! Two lock families exist on Linux and do not see each other: `flock(2)` (BoltDB, geth's
//! node and freezer locks, Rust's `File::lock`) and `fcntl(2)` record locks (LevelDB and
//! RocksDB `LOCK`, SQLite, MDBX; classic POSIX locks owned by a pid, or open-file-description
//! locks without one). `/proc/locks` lists all of them with the device and inode of the
//! locked file, so it is read first; `File::try_lock` (flock) backs it up where `/proc` is
//! not mounted.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{expand, glob_match, Profile};

/// A lock file held by a running process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveLock {
    pub path: PathBuf,
    /// The holding process as `pid (name)`, when known (OFD locks and locks seen only through
    /// `try_lock` have no pid).
    pub holder: Option<String>,
    pub pid: Option<u32>,
    /// `POSIX`, `FLOCK`, `OFDLCK`, … as `/proc/locks` names it, or `flock` when found by
    /// `try_lock`.
    pub lock_type: String,
}

/// One line of `/proc/locks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcLock {
    pub lock_type: String,
    /// `None` for OFD locks (`-1`).
    pub pid: Option<u32>,
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
}

/// Parse `/proc/locks` text, e.g. `1: POSIX  ADVISORY  WRITE 12345 08:01:1234567 0 EOF`
/// (blocked waiters, `1: -> POSIX …`, are skipped: they do not hold the lock).
pub fn parse_proc_locks(text: &str) -> Vec<ProcLock> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || fields.get(1) == Some(&"->") {
            continue;
        }
        let (lock_type, pid, dev) = (fields[1], fields[4], fields[5]);
        let mut parts = dev.split(':');
        let (Some(maj), Some(min), Some(ino), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(major), Ok(minor), Ok(inode)) = (
            u32::from_str_radix(maj, 16),
            u32::from_str_radix(min, 16),
            ino.parse::<u64>(),
        ) else {
            continue;
        };
        out.push(ProcLock {
            lock_type: lock_type.to_string(),
            pid: pid.parse::<u32>().ok(),
            major,
            minor,
            inode,
        });
    }
    out
}

/// The current `/proc/locks` (empty when unreadable).
pub fn proc_locks() -> Vec<ProcLock> {
    std::fs::read_to_string("/proc/locks")
        .map(|t| parse_proc_locks(&t))
        .unwrap_or_default()
}

/// Linux `dev_t` encoding (glibc `gnu_dev_major`/`gnu_dev_minor`).
pub fn dev_major_minor(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// `pid (comm)` of a process.
fn describe_pid(pid: u32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!("{pid} ({})", comm.trim()),
        Err(_) => pid.to_string(),
    }
}

/// Who holds a lock on `path`, if anyone (other than this process).
pub fn lock_holder(path: &Path, locks: &[ProcLock]) -> Option<LiveLock> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let (major, minor) = dev_major_minor(meta.dev());
    let me = std::process::id();
    let mut held: Vec<&ProcLock> = locks
        .iter()
        .filter(|l| l.major == major && l.minor == minor && l.inode == meta.ino())
        .filter(|l| l.pid != Some(me))
        .collect();
    // Prefer an entry naming a process.
    held.sort_by_key(|l| l.pid.is_none());
    if let Some(l) = held.first() {
        return Some(LiveLock {
            path: path.to_path_buf(),
            holder: l.pid.map(describe_pid),
            pid: l.pid,
            lock_type: l.lock_type.clone(),
        });
    }
    // No /proc (or a filesystem whose device numbers differ): ask flock directly. Taking and
    // dropping a shared flock is harmless to a client that flocks exclusively later.
    let file = std::fs::File::open(path).ok()?;
    match file.try_lock_shared() {
        Err(std::fs::TryLockError::WouldBlock) => Some(LiveLock {
            path: path.to_path_buf(),
            holder: None,
            pid: None,
            lock_type: "flock".into(),
        }),
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(_) => None,
    }
}

/// Cap on the lock files examined per root.
const MAX_LOCK_FILES: usize = 10_000;

/// Locks held on `profile`'s live markers under `root`.
pub fn live_locks(profile: &Profile, root: &Path) -> Vec<LiveLock> {
    let mut files: Vec<PathBuf> = profile
        .live_markers
        .iter()
        .flat_map(|m| expand(root, m, MAX_LOCK_FILES))
        .collect();
    files.sort();
    files.dedup();
    held(&files)
}

/// Names that are lock files in any client: `LOCK` (LevelDB, RocksDB, Pebble), `lock`,
/// `FLOCK`, `lock.mdb` (LMDB), `mdbx.lck` (MDBX), `*.lock`, `*-shm` (SQLite WAL).
fn is_generic_lock_name(name: &str) -> bool {
    matches!(name, "LOCK" | "lock" | "FLOCK" | "lock.mdb" | "mdbx.lck")
        || glob_match("*.lock", name)
        || glob_match("*.sqlite*-shm", name)
}

/// Locks held on any file under `root` that looks like a lock file (for directories no
/// profile applies to). `root` may also be a single file.
pub fn live_locks_generic(root: &Path) -> Vec<LiveLock> {
    let mut files = Vec::new();
    if std::fs::symlink_metadata(root).is_ok_and(|m| m.is_file()) {
        files.push(root.to_path_buf());
    } else {
        walk_locks(root, &mut files);
    }
    files.sort();
    held(&files)
}

fn walk_locks(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for e in read.filter_map(|e| e.ok()) {
        if out.len() >= MAX_LOCK_FILES {
            return;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk_locks(&e.path(), out);
        } else if ft.is_file() && e.file_name().to_str().is_some_and(is_generic_lock_name) {
            out.push(e.path());
        }
    }
}

fn held(files: &[PathBuf]) -> Vec<LiveLock> {
    if files.is_empty() {
        return Vec::new();
    }
    let locks = proc_locks();
    files
        .iter()
        .filter_map(|f| lock_holder(f, &locks))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    #[test]
    fn parses_proc_locks() {
        let text = "1: POSIX  ADVISORY  WRITE 12345 08:01:1234567 0 EOF\n\
                    1: -> POSIX  ADVISORY  WRITE 999 08:01:1234567 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4087 fe:00:5529795 0 EOF\n\
                    3: OFDLCK ADVISORY  READ  -1 103:02:77 0 0\n\
                    garbage\n";
        let l = parse_proc_locks(text);
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[0],
            ProcLock {
                lock_type: "POSIX".into(),
                pid: Some(12345),
                major: 8,
                minor: 1,
                inode: 1234567
            }
        );
        assert_eq!((l[1].major, l[1].minor, l[1].pid), (0xfe, 0, Some(4087)));
        assert_eq!((l[2].major, l[2].minor, l[2].pid), (0x103, 2, None));
    }

    #[test]
    fn dev_encoding() {
        assert_eq!(dev_major_minor(0xfe00), (0xfe, 0));
        assert_eq!(dev_major_minor(0x0801), (8, 1));
        // major 259, minor 300: major low 12 bits in bits 8..20, minor high bits from 20.
        let dev = (0x103u64 << 8) | 0x2c | (0x1 << 20);
        assert_eq!(dev_major_minor(dev), (0x103, 0x12c));
        // major 0x1001: its high bits live from bit 44.
        let dev = (0x001u64 << 8) | (0x1u64 << 44);
        assert_eq!(dev_major_minor(dev), (0x1001, 0));
    }

    /// A python child holding a lock on `path` until killed.
    struct Holder(Child);

    impl Holder {
        fn start(path: &Path, call: &str) -> Holder {
            let script = format!(
                "import fcntl,sys,time\nf=open(sys.argv[1],'a')\n{call}\nprint('locked', flush=True)\ntime.sleep(60)\n"
            );
            let mut child = Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(path)
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 must be installed for the lock tests");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("stdout");
            BufReader::new(stdout).read_line(&mut line).expect("read");
            assert_eq!(line.trim(), "locked");
            Holder(child)
        }

        fn pid(&self) -> u32 {
            self.0.id()
        }

        fn stop(mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn check_held(call: &str, kind: &str) {
        let t = tempfile::tempdir().expect("tempdir");
        let lock = t.path().join("geth/chaindata/LOCK");
        std::fs::create_dir_all(lock.parent().expect("parent")).expect("mkdir");
        std::fs::write(&lock, b"").expect("write");
        std::fs::write(t.path().join("geth/chaindata/CURRENT"), b"").expect("write");
        let geth = super::super::find("geth").expect("geth");

        assert!(live_locks(geth, t.path()).is_empty());
        assert!(live_locks_generic(t.path()).is_empty());

        let holder = Holder::start(&lock, call);
        let pid = holder.pid();
        for found in [live_locks(geth, t.path()), live_locks_generic(t.path())] {
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].path, lock);
            assert_eq!(found[0].pid, Some(pid), "{found:?}");
            assert_eq!(found[0].lock_type, kind);
            let h = found[0].holder.as_deref().unwrap_or("");
            assert!(
                h.starts_with(&pid.to_string()) && h.contains("python"),
                "{h}"
            );
        }
        holder.stop();
        assert!(live_locks(geth, t.path()).is_empty());
        assert!(live_locks_generic(t.path()).is_empty());
    }

    #[test]
    fn posix_lock_held_by_another_process() {
        check_held("fcntl.lockf(f, fcntl.LOCK_EX)", "POSIX");
    }

    #[test]
    fn flock_held_by_another_process() {
        check_held("fcntl.flock(f, fcntl.LOCK_EX)", "FLOCK");
    }

    #[test]
    fn try_lock_fallback_sees_flock() {
        let t = tempfile::tempdir().expect("tempdir");
        let lock = t.path().join("x.lock");
        std::fs::write(&lock, b"").expect("write");
        let holder = Holder::start(&lock, "fcntl.flock(f, fcntl.LOCK_EX)");
        // Without /proc/locks entries only try_lock can tell.
        let l = lock_holder(&lock, &[]).expect("held");
        assert_eq!((l.pid, l.lock_type.as_str()), (None, "flock"));
        holder.stop();
        assert!(lock_holder(&lock, &[]).is_none());
    }
}
