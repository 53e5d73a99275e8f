//! Real database files written by the engines themselves (sqlite3, RocksDB's `ldb`, LMDB's
//! `mdb_load`), EIP-2335 keystores, and real processes holding a database open.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use super::{s, text};

/// Run a program the test needs; it must be installed (`.ci/run` installs them).
pub fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (apt-get install it): {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", text(&out));
}

pub fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, data).expect("write");
}

/// An SQLite database at `path`, made by running `sql`.
pub fn sqlite(path: &Path, sql: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    tool("sqlite3", &[s(path), sql]);
}

/// A RocksDB database in `dir` holding `pairs`, compacted into SST files.
pub fn rocksdb(dir: &Path, pairs: &[(&str, &str)]) {
    fs::create_dir_all(dir.parent().expect("parent")).expect("mkdir");
    let db = format!("--db={}", s(dir));
    let mut args = vec![db.as_str(), "--create_if_missing", "batchput"];
    for (k, v) in pairs {
        args.extend([*k, *v]);
    }
    tool("ldb", &args);
    tool("ldb", &[&db, "compact"]);
}

/// An LMDB environment in `dir` holding `pairs`.
pub fn lmdb(dir: &Path, pairs: &[(&str, &str)]) {
    fs::create_dir_all(dir).expect("mkdir");
    let input = dir.with_extension("mdb-input");
    let text: String = pairs.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect();
    fs::write(&input, text).expect("write");
    tool("mdb_load", &["-T", "-f", s(&input), s(dir)]);
    fs::remove_file(&input).expect("rm");
}

/// An EIP-2335 keystore (JSON) for `pubkey` under `password`.
pub fn keystore(pubkey: &str, password: &str) -> String {
    use vtool_validator::{create_keystore, KdfChoice, NewKeystore};
    let ks = create_keystore(
        &[7u8; 32],
        password,
        &NewKeystore {
            pubkey,
            path: "m/12381/3600/0/0/0",
            description: None,
            kdf: KdfChoice::Scrypt { log_n: 12 },
        },
    )
    .expect("keystore");
    serde_json::to_string(&ks).expect("json")
}

/// A real client process with a database open, killed when dropped.
pub struct Running {
    pub child: Child,
    _stdin: Option<ChildStdin>,
}

impl Running {
    /// RocksDB's `db_bench` reading the database in `dir` (it holds the DB's LOCK).
    pub fn rocksdb(dir: &Path) -> Running {
        let child = Command::new("db_bench")
            .arg(format!("--db={}", s(dir)))
            .args([
                "--use_existing_db=1",
                "--benchmarks=readrandom",
                "--duration=120",
            ])
            .args(["--num=1", "--threads=1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("db_bench (rocksdb-tools) is needed");
        Running::wait_for_lock(Running {
            child,
            _stdin: None,
        })
    }

    /// An `sqlite3` shell with the database at `path` open (in WAL mode it locks `-shm`).
    pub fn sqlite(path: &Path) -> Running {
        let mut child = Command::new("sqlite3")
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("sqlite3 is needed");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"SELECT count(*) FROM sqlite_master;\n")
            .expect("write");
        stdin.flush().expect("flush");
        Running::wait_for_lock(Running {
            child,
            _stdin: Some(stdin),
        })
    }

    fn wait_for_lock(r: Running) -> Running {
        let pid = format!(" {} ", r.child.id());
        for _ in 0..200 {
            if fs::read_to_string("/proc/locks").is_ok_and(|l| l.contains(&pid)) {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("process {} never locked its database", r.child.id());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
