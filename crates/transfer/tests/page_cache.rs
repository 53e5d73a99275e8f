//! Page-cache hygiene: what is read or written once leaves the cache, and the bytes are
//! the file's. Residency is what util-linux's `fincore` reports for the file.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use vtool_transfer::page_cache::{DropBehind, WriteBehind};
use vtool_transfer::{Backend, LocalBackend};

fn resident(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "fincore: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("fincore prints bytes")
}

fn data(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// A synced file of `len` random bytes whose pages are all cached.
fn cached_file(dir: &Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("f");
    let bytes = data(len);
    let mut f = File::create(&path).expect("create");
    f.write_all(&bytes).expect("write");
    f.sync_all().expect("fsync");
    let mut back = Vec::new();
    File::open(&path)
        .expect("open")
        .read_to_end(&mut back)
        .expect("read back");
    assert_eq!(resident(&path), len as u64, "the file starts cached");
    (path, bytes)
}

#[test]
fn drop_behind_reads_the_file_exactly_and_leaves_nothing_cached() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, bytes) = cached_file(dir.path(), 40 << 20);
    let file = File::open(&path).expect("open");
    let mut read = Vec::new();
    let mut buf = vec![0; 3 << 20];
    {
        let mut r = DropBehind::new(&file, 0, true);
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            read.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(read, bytes);
    assert_eq!(resident(&path), 0, "every page read was dropped");
}

#[test]
fn drop_behind_disabled_keeps_the_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, bytes) = cached_file(dir.path(), 12 << 20);
    let file = File::open(&path).expect("open");
    let mut read = Vec::new();
    DropBehind::new(&file, 0, false)
        .read_to_end(&mut read)
        .expect("read");
    assert_eq!(read, bytes);
    assert_eq!(resident(&path), bytes.len() as u64);
}

#[test]
fn write_behind_drops_written_pages_once_clean_and_the_bytes_are_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("restored");
    let len = 200usize << 20;
    let bytes = data(len);
    File::create(&path)
        .expect("create")
        .set_len(len as u64)
        .expect("set_len");
    let behind = WriteBehind::default();
    // Out of order, as a restore writes blobs in pack order.
    let piece = 1 << 20;
    let mut order: Vec<usize> = (0..len / piece).collect();
    fastrand::Rng::with_seed(3).shuffle(&mut order);
    for i in order {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open for writing");
        f.write_all_at(&bytes[i * piece..(i + 1) * piece], (i * piece) as u64)
            .expect("pwrite");
        behind.written(f, (i * piece) as u64, piece as u64);
    }
    drop(behind);
    let cached = resident(&path);
    // The last 64 MiB are only being written back; on a loaded machine a few earlier
    // ranges may not be clean yet when their second advice comes. Doing nothing leaves 200.
    assert!(
        cached <= 128 << 20,
        "{cached} bytes of 200 MiB written still cached: only the last writes may be"
    );
    let mut back = Vec::new();
    File::open(&path)
        .expect("open")
        .read_to_end(&mut back)
        .expect("read back");
    assert!(back == bytes, "the written bytes are the file's");
}

#[test]
fn local_backend_drops_packs_after_writing_and_reading_them_and_keeps_small_objects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = LocalBackend::create(dir.path().join("repo")).expect("create repo dir");
    let dir = dir.path().join("repo");
    let pack = data(8 << 20);
    backend.put("data/aa/pack", &pack).expect("put pack");
    let on_disk = dir.join("data/aa/pack");
    assert_eq!(resident(&on_disk), 0, "a written pack leaves the cache");
    assert_eq!(backend.get("data/aa/pack").expect("get pack"), pack);
    assert_eq!(
        resident(&on_disk),
        0,
        "a pack read in full leaves the cache"
    );
    assert_eq!(
        backend
            .get_range("data/aa/pack", 4096, 2 << 20)
            .expect("get range"),
        pack[4096..4096 + (2 << 20)]
    );
    assert_eq!(resident(&on_disk), 0, "a large range read leaves the cache");

    let small = data(10_000);
    backend.put("index/ab", &small).expect("put index");
    assert_eq!(backend.get("index/ab").expect("get index"), small);
    assert!(
        resident(&dir.join("index/ab")) > 0,
        "a small object read stays cached for the next command"
    );
}
