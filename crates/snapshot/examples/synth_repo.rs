//! A synthetic repository for measuring prune at scale: its index, refs and snapshots are
//! real, its packs are sparse files of the right size (prune never reads a pack it does not
//! repack). `bench/prune_scale.sh` runs it.
//!
//! `synth_repo DIR BLOBS SNAPSHOTS`: BLOBS 1 MiB chunks in packs of 16; snapshot i needs a
//! window of 70% of the blobs starting at i/(2·SNAPSHOTS) of them, so forgetting the old
//! snapshots leaves whole packs and partly used packs unused. Writes `DIR/repo`,
//! `DIR/identity` and `DIR/backup.key`.

use std::fs;
use std::path::PathBuf;

use vtool_snapshot::index::encode_index;
use vtool_snapshot::repofile::{
    BlobKind, IndexFile, IndexedPack, PackedBlob, Snapshot, SnapshotSummary, FORMAT_VERSION,
};
use vtool_snapshot::{keys, refs, FileType, Id, Repository};

const BLOBS_PER_PACK: u64 = 16;
const PACKS_PER_INDEX: usize = 64;
const CHUNK: u32 = 1 << 20;

fn id_of(kind: &str, n: u64) -> Id {
    let mut h = blake3::Hasher::new();
    h.update(kind.as_bytes());
    h.update(&n.to_le_bytes());
    Id::from(h.finalize())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).expect("usage: synth_repo DIR BLOBS SNAPSHOTS"));
    let blobs: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let snapshots: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(7);
    fs::create_dir_all(&dir).expect("mkdir");
    let identity = vtool_snapshot::age::x25519::Identity::generate();
    let backend = vtool_transfer::LocalBackend::create(dir.join("repo")).expect("backend");
    let new = Repository::init(Box::new(backend), vec![identity.to_public()]).expect("init");
    keys::save_identity(&identity, &dir.join("identity")).expect("identity");
    new.backup_key
        .save(&dir.join("backup.key"))
        .expect("backup key");
    let (repo, key) = (new.repo, new.backup_key);

    let packs = blobs.div_ceil(BLOBS_PER_PACK);
    let pack_dir = dir.join("repo/packs");
    let mut group = Vec::with_capacity(PACKS_PER_INDEX);
    for p in 0..packs {
        let pid = id_of("pack", p);
        let first = p * BLOBS_PER_PACK;
        let blob_list: Vec<PackedBlob> = (first..(first + BLOBS_PER_PACK).min(blobs))
            .enumerate()
            .map(|(i, b)| PackedBlob {
                id: id_of("blob", b),
                kind: BlobKind::Data,
                offset: i as u64 * u64::from(CHUNK),
                length: CHUNK,
                raw_length: CHUNK,
                compressed: false,
            })
            .collect();
        let size = blob_list.len() as u64 * u64::from(CHUNK) + 4096;
        let hex = pid.to_hex();
        let sub = pack_dir.join(&hex[..2]);
        fs::create_dir_all(&sub).expect("mkdir");
        fs::File::create(sub.join(&hex))
            .and_then(|f| f.set_len(size))
            .expect("sparse pack");
        group.push(IndexedPack {
            id: pid,
            size,
            blobs: blob_list,
        });
        if group.len() == PACKS_PER_INDEX || p + 1 == packs {
            let data = encode_index(&IndexFile {
                version: FORMAT_VERSION,
                packs: std::mem::take(&mut group),
                rebuilt: None,
            })
            .expect("encode");
            FileType::Index.store(repo.backend(), &data).expect("index");
        }
    }
    let window = blobs * 7 / 10;
    for s in 0..snapshots {
        let start = s * blobs / (2 * snapshots);
        let ids: Vec<Id> = (start..(start + window).min(blobs))
            .map(|b| id_of("blob", b))
            .collect();
        let refs_id = refs::store(repo.backend(), ids).expect("refs");
        let snap = Snapshot {
            version: FORMAT_VERSION,
            time: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000 + s as i64),
            hostname: "synthetic".into(),
            username: String::new(),
            paths: vec!["/var/lib/node".into()],
            tags: Vec::new(),
            tree: id_of("tree", s),
            fingerprint: id_of("fingerprint", s),
            summary: SnapshotSummary {
                bytes: window * u64::from(CHUNK),
                ..Default::default()
            },
            labels: Default::default(),
            refs: Some(refs_id),
            holds: Vec::new(),
        };
        repo.save_snapshot(&snap, &key.chunk_key).expect("snapshot");
    }
    println!(
        "{packs} packs, {blobs} blobs, {snapshots} snapshots in {}",
        dir.display()
    );
}
