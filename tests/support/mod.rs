//! Shared helpers of the end-to-end tests: a generated validator-like data directory, a
//! metadata-preserving copy, a byte-for-byte tree comparison and a throwaway repository.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use vtool_snapshot::age::x25519::Identity;
use vtool_snapshot::keys::BackupKey;
use vtool_snapshot::{
    backup, restore, BackupOptions, BackupReport, NoProgress, Repository, RestoreOptions,
    RestoreReport,
};
use vtool_transfer::{Backend, LocalBackend};

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Incompressible bytes, like a compressed LevelDB table.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Compressible but aperiodic records, like a freezer (ancient) file.
    pub fn records(&mut self, len: usize, first: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 256);
        let mut n = first;
        while out.len() < len {
            out.extend_from_slice(format!("block {n:012} parent ").as_bytes());
            let r = self.next_u64();
            for i in 0..40 {
                // 16-symbol alphabet: ~4 bits of entropy per byte.
                out.push(b"0123456789abcdef"[((r >> (i % 16 * 4)) as usize ^ i) & 15]);
            }
            out.extend_from_slice(b" txs ");
            out.extend_from_slice((r % 400).to_string().as_bytes());
            out.push(b'\n');
            n += 1;
        }
        out.truncate(len);
        out
    }
}

pub const TABLE_SIZE: usize = 2 << 20;
pub const FREEZER_SIZE: usize = 8 << 20;
pub const TABLES: [&str; 3] = ["000004.ldb", "000007.ldb", "000009.ldb"];

fn write_mode(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn keystore_json(i: u32, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let hex: String = rng.bytes(32).iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{{\n  \"crypto\": {{\"kdf\": {{\"function\": \"scrypt\"}}, \"cipher\": {{\"message\": \"{hex}\"}}}},\n  \"path\": \"m/12381/3600/{i}/0/0\",\n  \"pubkey\": \"{:096x}\",\n  \"version\": 4\n}}\n",
        0xa000_0000u64 + i as u64
    )
}

/// Build a validator-like directory at `root` (which must not exist):
///
/// ```text
/// root/
///   beacon/chaindata/0000NN.ldb   incompressible ~2 MiB tables
///   beacon/chaindata/CURRENT      small text file
///   beacon/ancient/bodies.cdat    compressible append-only freezer, ~8 MiB
///   beacon/LOCK                   empty file
///   validator/keystores/ (0700)   keystore-N.json (0600)
///   validator/slashing.json       small file
///   bin/start.sh (0755)
///   empty/                        empty directory
///   data -> beacon/chaindata      relative symlink
///   dangling -> /nonexistent/x    dangling symlink
/// ```
///
/// Every entry gets a distinct mtime with a non-zero nanosecond part.
pub fn make_validator_dir(root: &Path) {
    let mut rng = Rng::new(42);
    let chain = root.join("beacon/chaindata");
    let ancient = root.join("beacon/ancient");
    let keystores = root.join("validator/keystores");
    for d in [
        &chain,
        &ancient,
        &keystores,
        &root.join("bin"),
        &root.join("empty"),
    ] {
        fs::create_dir_all(d).expect("mkdir");
    }
    for t in TABLES {
        write_mode(&chain.join(t), &rng.bytes(TABLE_SIZE), 0o644);
    }
    write_mode(&chain.join("CURRENT"), b"MANIFEST-000011\n", 0o644);
    write_mode(
        &ancient.join("bodies.cdat"),
        &rng.records(FREEZER_SIZE, 0),
        0o644,
    );
    write_mode(&root.join("beacon/LOCK"), b"", 0o644);
    for i in 0..3 {
        write_mode(
            &keystores.join(format!("keystore-{i}.json")),
            keystore_json(i, 100 + i as u64).as_bytes(),
            0o600,
        );
    }
    fs::set_permissions(&keystores, fs::Permissions::from_mode(0o700)).expect("chmod");
    write_mode(
        &root.join("validator/slashing.json"),
        b"{\"metadata\":{\"interchange_format_version\":\"5\"},\"data\":[]}\n",
        0o640,
    );
    write_mode(
        &root.join("bin/start.sh"),
        b"#!/bin/sh\nexec lighthouse bn --datadir \"$(dirname \"$0\")/../beacon\"\n",
        0o755,
    );
    std::os::unix::fs::symlink("beacon/chaindata", root.join("data")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/x", root.join("dangling")).expect("symlink");
    set_mtimes(root, 1_700_000_000);
}

/// Give every entry below `root` (and `root`) a distinct mtime with nanoseconds, directories
/// after their contents so the times stick.
pub fn set_mtimes(root: &Path, base_secs: i64) {
    let mut all = Vec::new();
    collect_paths(root, &mut all);
    all.sort();
    for (i, p) in all.iter().enumerate().rev() {
        let t = FileTime::from_unix_time(base_secs + i as i64 * 37, 123_456_789 + i as u32 * 1_001);
        let meta = fs::symlink_metadata(p).expect("stat");
        if meta.file_type().is_symlink() {
            filetime::set_symlink_file_times(p, t, t).expect("lutimes");
        } else {
            filetime::set_file_times(p, t, t).expect("utimes");
        }
    }
    // Children sort after their parent, so walking the sorted list backwards set every
    // directory after everything inside it.
}

fn collect_paths(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    let meta = fs::symlink_metadata(p).expect("stat");
    if meta.is_dir() {
        for e in fs::read_dir(p).expect("readdir") {
            collect_paths(&e.expect("dirent").path(), out);
        }
    }
}

/// Set one path's mtime (and atime), following nothing.
pub fn set_mtime(p: &Path, secs: i64, nanos: u32) {
    let t = FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(p, t, t).expect("lutimes");
}

/// A sealed object whose body was edited, framed with its old MAC as a storage host without
/// the keys would store it: well formed, but it must fail authentication.
pub fn reframe(object: &serde_json::Value) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(&object["body"]).expect("json");
    vtool_snapshot::sealed::envelope(object["mac"].as_str().expect("mac"), &body)
}

/// Copy a tree preserving contents, modes, mtimes (ns) and symlinks.
pub fn copy_tree(src: &Path, dst: &Path) {
    let meta = fs::symlink_metadata(src).expect("stat");
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src).expect("readlink"), dst).expect("symlink");
    } else if ft.is_dir() {
        fs::create_dir(dst).expect("mkdir");
        for e in fs::read_dir(src).expect("readdir") {
            let e = e.expect("dirent");
            copy_tree(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        fs::copy(src, dst).expect("copy");
    }
    if !ft.is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).expect("chmod");
    }
    let t = FileTime::from_last_modification_time(&meta);
    filetime::set_symlink_file_times(dst, t, t).expect("lutimes");
}

/// What is compared of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

#[derive(Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub kind: Kind,
    /// Permission bits; 0 for symlinks (always 0777 on Linux, not restorable).
    pub mode: u32,
    pub mtime_ns: i128,
    pub uid: u32,
    pub gid: u32,
}

impl std::fmt::Debug for EntryInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Dir => "dir".to_string(),
            Kind::File(d) => format!("file {} bytes, fnv {:016x}", d.len(), fnv(d)),
            Kind::Symlink(t) => format!("symlink -> {}", t.display()),
        };
        write!(
            f,
            "{kind}, mode {:o}, mtime {} ns, owner {}:{}",
            self.mode, self.mtime_ns, self.uid, self.gid
        )
    }
}

fn fnv(d: &[u8]) -> u64 {
    d.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Every path below `root` (relative, `""` for `root` itself) with what is compared of it.
pub fn listing(root: &Path) -> BTreeMap<String, EntryInfo> {
    let mut out = BTreeMap::new();
    list_into(root, String::new(), &mut out);
    out
}

fn list_into(p: &Path, rel: String, out: &mut BTreeMap<String, EntryInfo>) {
    let meta = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        Kind::Symlink(fs::read_link(p).expect("readlink"))
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File(fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
    } else {
        panic!("unexpected file type at {}", p.display());
    };
    out.insert(
        rel.clone(),
        EntryInfo {
            mode: if ft.is_symlink() {
                0
            } else {
                meta.mode() & 0o7777
            },
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            uid: meta.uid(),
            gid: meta.gid(),
            kind: kind.clone(),
        },
    );
    if kind == Kind::Dir {
        let mut names: Vec<_> = fs::read_dir(p)
            .expect("readdir")
            .map(|e| e.expect("dirent").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            list_into(&p.join(&n), r, out);
        }
    }
}

/// Differences between two listings, one line each (empty when identical).
pub fn diff_listings(
    a: &BTreeMap<String, EntryInfo>,
    b: &BTreeMap<String, EntryInfo>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, va) in a {
        match b.get(k) {
            None => out.push(format!("{k:?}: only in the first tree ({va:?})")),
            Some(vb) if va != vb => out.push(format!("{k:?}: {va:?}  !=  {vb:?}")),
            _ => {}
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            out.push(format!("{k:?}: only in the second tree ({vb:?})"));
        }
    }
    out
}

/// Assert that two trees are identical: names, kinds, bytes, permission bits, mtimes to the
/// nanosecond, owners, symlink targets and empty directories. The roots' own metadata counts.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let diffs = diff_listings(&listing(a), &listing(b));
    assert!(
        diffs.is_empty(),
        "{} and {} differ:\n  {}",
        a.display(),
        b.display(),
        diffs.join("\n  ")
    );
}

/// A repository in a temporary directory with its two keys.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
    pub backup_key: BackupKey,
    pub identity: Identity,
}

impl TestRepo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = Identity::generate();
        let backend = LocalBackend::create(dir.path().join("repo")).expect("backend");
        let new = Repository::init(Box::new(backend), vec![identity.to_public()]).expect("init");
        TestRepo {
            dir,
            repo: new.repo,
            backup_key: new.backup_key,
            identity,
        }
    }

    /// A repository whose packs are cut at `pack_size` bytes of plaintext (the config is
    /// edited after `init`), so a few MiB of data spread over several packs.
    pub fn with_pack_size(pack_size: u64) -> Self {
        let mut t = TestRepo::new();
        let path = t.path().join("config");
        let mut config = t.repo.config().clone();
        config.pack_size = pack_size;
        let sealed = vtool_snapshot::sealed::seal(
            vtool_snapshot::sealed::SealedKind::Config,
            &config,
            &t.backup_key.chunk_key,
        )
        .expect("seal config");
        fs::write(&path, sealed).expect("write config");
        t.repo = t.reopen();
        assert_eq!(t.repo.config().pack_size, pack_size);
        t
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn local(&self) -> LocalBackend {
        LocalBackend::open(self.path()).expect("open backend")
    }

    /// A fresh handle on the same repository.
    pub fn reopen(&self) -> Repository {
        Repository::open(Box::new(self.local())).expect("open repository")
    }

    /// A private cache directory for this repository's tests.
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn backup(&self, paths: &[&Path], cache: bool) -> BackupReport {
        let opts = BackupOptions {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            cache_base: cache.then(|| self.cache()),
            ..Default::default()
        };
        backup(&self.repo, &self.backup_key, &opts, &NoProgress).expect("backup")
    }

    /// Restore a snapshot (id prefix or `latest`) into `target`.
    pub fn restore(&self, snapshot: &str, target: &Path) -> vtool_snapshot::Result<RestoreReport> {
        let key = self.repo.unlock(self.identity.clone())?;
        let (_, snap) = self.repo.find_snapshot(snapshot, Some(&key.chunk_key))?;
        restore(
            &self.repo,
            &key,
            &snap,
            &RestoreOptions {
                target: target.to_path_buf(),
                ..Default::default()
            },
            &NoProgress,
        )
    }

    /// Names of every object in the repository, sorted.
    pub fn objects(&self) -> Vec<String> {
        let mut names: Vec<String> = ["config", "keys", "packs", "index", "snapshots"]
            .iter()
            .flat_map(|d| {
                if *d == "config" {
                    vec!["config".to_string()]
                } else {
                    self.local()
                        .list(d)
                        .expect("list")
                        .into_iter()
                        .map(|o| o.name)
                        .collect()
                }
            })
            .collect();
        names.sort();
        names
    }

    /// Pack objects with their sizes, largest first.
    pub fn packs(&self) -> Vec<(String, u64)> {
        let mut packs: Vec<(String, u64)> = self
            .local()
            .list("packs")
            .expect("list")
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        packs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        packs
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

/// True when the tests run as root, where file permissions do not stop reads.
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
