//! Directory trees as tests see them: a listing of every entry, comparing two trees, and a
//! metadata-preserving copy.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

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

pub type Listing = BTreeMap<String, EntryInfo>;

/// Every path below `root` (relative, `""` for `root` itself) with what is compared of it.
pub fn listing(root: &Path) -> Listing {
    let mut out = BTreeMap::new();
    list_into(root, String::new(), &mut out);
    out
}

fn list_into(p: &Path, rel: String, out: &mut Listing) {
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
pub fn diff_listings(a: &Listing, b: &Listing) -> Vec<String> {
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

/// What a comparison looks at. Names, kinds, bytes and symlink targets always count.
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    pub modes: bool,
    pub mtimes: bool,
    pub owners: bool,
}

impl Compare {
    /// Everything a restore promises to keep: permission bits, mtimes to the nanosecond,
    /// owners.
    pub const EVERYTHING: Compare = Compare {
        modes: true,
        mtimes: true,
        owners: true,
    };
    /// Bytes and permission bits, not times or owners.
    pub const CONTENTS_AND_MODES: Compare = Compare {
        modes: true,
        mtimes: false,
        owners: false,
    };
    /// Bytes only.
    pub const CONTENTS: Compare = Compare {
        modes: false,
        mtimes: false,
        owners: false,
    };

    /// `listing` with what is not compared blanked out.
    pub fn apply(self, mut listing: Listing) -> Listing {
        for e in listing.values_mut() {
            if !self.modes {
                e.mode = 0;
            }
            if !self.mtimes {
                e.mtime_ns = 0;
            }
            if !self.owners {
                (e.uid, e.gid) = (0, 0);
            }
        }
        listing
    }
}

/// `Ok` when the trees at `a` and `b` (the roots' own metadata included) agree in `what`;
/// otherwise the differences, one a line.
pub fn compare(a: &Path, b: &Path, what: Compare) -> Result<(), String> {
    let diffs = diff_listings(&what.apply(listing(a)), &what.apply(listing(b)));
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} and {} differ:\n  {}",
            a.display(),
            b.display(),
            diffs.join("\n  ")
        ))
    }
}

/// Assert that two trees are identical: names, kinds, bytes, permission bits, mtimes to the
/// nanosecond, owners, symlink targets and empty directories. The roots' own metadata counts.
pub fn assert_same_tree(a: &Path, b: &Path) {
    assert_same(a, b, Compare::EVERYTHING);
}

/// Assert that two trees agree in `what`.
pub fn assert_same(a: &Path, b: &Path, what: Compare) {
    if let Err(diffs) = compare(a, b, what) {
        panic!("{diffs}");
    }
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

/// Give every entry below `root` (and `root`) a distinct mtime with nanoseconds, directories
/// after their contents so the times stick.
pub fn set_mtimes(root: &Path, base_secs: i64) {
    let mut all: Vec<PathBuf> = listing(root)
        .into_keys()
        .map(|rel| root.join(rel))
        .collect();
    // Children sort after their parent, so walking the sorted list backwards sets every
    // directory after everything inside it.
    all.sort();
    for (i, p) in all.iter().enumerate().rev() {
        let t = FileTime::from_unix_time(base_secs + i as i64 * 37, 123_456_789 + i as u32 * 1_001);
        filetime::set_symlink_file_times(p, t, t).expect("lutimes");
    }
}

/// Set one path's mtime (and atime), following nothing.
pub fn set_mtime(p: &Path, secs: i64, nanos: u32) {
    let t = FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(p, t, t).expect("lutimes");
}
