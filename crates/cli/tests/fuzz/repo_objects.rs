//! Repository objects a storage host (or bit rot) controls: pack trailers and pack
//! ciphertext, indexes, trees, snapshots, the config and drill records, each through the
//! entry point vtool reads it with.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;
use vtool_snapshot::age::x25519::Identity;
use vtool_snapshot::blob::{self, EncodedBlob};
use vtool_snapshot::chunker::{Chunker, DEFAULT_PARAMS};
use vtool_snapshot::index::{decode_index, encode_index, MasterIndex};
use vtool_snapshot::keys::{parse_recipients, ChunkKey};
use vtool_snapshot::merkle::{node_hash, tree_hash};
use vtool_snapshot::pack::{
    blob_slice, decrypt_pack, read_trailer, unseal_blob, PackLayout, PackWriter,
};
use vtool_snapshot::repofile::{
    BlobKind, DrillCommand, DrillRecord, DrillRestore, IndexFile, IndexedPack, Node, NodeKind,
    PackTrailer, PackedBlob, Snapshot, SnapshotSummary, Tree, FORMAT_VERSION,
};
use vtool_snapshot::sealed::{seal, SealedKind};
use vtool_snapshot::tree::{decode_tree, encode_tree};
use vtool_snapshot::{Id, Repository};
use vtool_transfer::LocalBackend;

use super::{fuzz, inputs, Bytes};

fn id(n: u8) -> Id {
    Id::hash(&[n])
}

fn packed(n: u8, kind: BlobKind, offset: u64, length: u32, compressed: bool) -> PackedBlob {
    PackedBlob {
        id: id(n),
        kind,
        offset,
        length,
        raw_length: if compressed { length * 3 } else { length },
        compressed,
    }
}

/// Blobs as a pack holds them: one raw, one zstd-compressed, one tree.
fn sample_blobs() -> Vec<(PackedBlob, EncodedBlob)> {
    let raw = blob::encode((0..3000u32).map(|i| (i * 7919 % 251) as u8).collect(), 3);
    let text = blob::encode(b"slot 1 ok\n".repeat(400), 3);
    let tree = blob::encode(encode_tree(&sample_tree()).expect("encode tree"), 3);
    let mut offset = 0;
    [
        (1, BlobKind::Data, raw),
        (2, BlobKind::Data, text),
        (3, BlobKind::Tree, tree),
    ]
    .into_iter()
    .map(|(n, kind, b)| {
        let p = PackedBlob {
            id: id(n),
            kind,
            offset,
            length: b.data.len() as u32,
            raw_length: b.raw_length,
            compressed: b.compressed,
        };
        offset += b.data.len() as u64;
        (p, b)
    })
    .collect()
}

/// A pack's plaintext: blobs, trailer JSON, trailer length.
fn plaintext(blobs: &[(PackedBlob, EncodedBlob)]) -> Vec<u8> {
    let mut out: Vec<u8> = blobs.iter().flat_map(|(_, b)| b.data.clone()).collect();
    let trailer = serde_json::to_vec(&PackTrailer {
        blobs: blobs.iter().map(|(p, _)| *p).collect(),
    })
    .expect("trailer");
    out.extend_from_slice(&trailer);
    out.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
    out
}

/// What a reader does with a pack's plaintext: the trailer, then every blob it lists.
fn read_plaintext(plain: &[u8]) -> bool {
    let Ok(blobs) = read_trailer(plain) else {
        return false;
    };
    for b in blobs {
        if let Ok(stored) = blob_slice(plain, &b) {
            let _ = blob::decode(stored, &b, &DEFAULT_PARAMS);
        }
    }
    true
}

pub fn pack_trailer() {
    let blobs = sample_blobs();
    let seeds = vec![plaintext(&[]), plaintext(&blobs[..1]), plaintext(&blobs)];
    fuzz("pack-trailer", inputs(seeds), |data| {
        Ok(read_plaintext(&data.0))
    });
}

pub fn pack_decryption() {
    let identity = Identity::generate();
    let mut writer =
        PackWriter::new(PackLayout::Stream, &[identity.to_public()], 1 << 16).expect("writer");
    for (p, b) in sample_blobs() {
        writer.add(p.id, p.kind, &b).expect("add");
    }
    let pack = writer.finish().expect("finish");
    let original = pack.bytes.clone();
    fuzz("pack-decryption", inputs(vec![pack.bytes]), |data| {
        let data = data.0;
        let Ok(plain) = decrypt_pack(&identity, &Id::hash(&data), &data) else {
            return Ok(false);
        };
        // age authenticates header and payload: only the unchanged pack may decrypt.
        prop_assert!(data == original, "a changed pack decrypted");
        read_plaintext(&plain);
        Ok(true)
    });
}

/// A format 3 pack (each blob sealed on its own, the trailer in plaintext): whatever the
/// bytes, a blob decrypts only if its own sealed bytes are unchanged.
pub fn sealed_pack_decryption() {
    let identity = Identity::generate();
    let mut writer =
        PackWriter::new(PackLayout::SealedBlobs, &[identity.to_public()], 1 << 16).expect("writer");
    for (p, b) in sample_blobs() {
        writer.add(p.id, p.kind, &b).expect("add");
    }
    let pack = writer.finish().expect("finish");
    let original = pack.bytes.clone();
    let listed = pack.blobs.clone();
    let pack_id = pack.id;
    fuzz("sealed-pack-decryption", inputs(vec![pack.bytes]), |data| {
        let data = data.0;
        // The reader's own path: the trailer, then every blob it lists.
        if let Ok(blobs) = read_trailer(&data) {
            for b in &blobs {
                if let Ok(sealed) = blob_slice(&data, b) {
                    if let Ok(encoded) = unseal_blob(&identity, sealed, b, &pack_id) {
                        let _ = blob::decode(&encoded, b, &DEFAULT_PARAMS);
                    }
                }
            }
        }
        let mut opened = false;
        for b in &listed {
            let (Ok(now), Ok(was)) = (blob_slice(&data, b), blob_slice(&original, b)) else {
                continue;
            };
            if unseal_blob(&identity, now, b, &pack_id).is_ok() {
                prop_assert!(now == was, "a changed blob decrypted");
                opened = true;
            }
        }
        Ok(opened)
    });
}

fn sample_index() -> IndexFile {
    IndexFile {
        version: 1,
        packs: vec![
            IndexedPack {
                id: id(10),
                size: 5000,
                blobs: vec![
                    packed(1, BlobKind::Data, 0, 3000, false),
                    packed(2, BlobKind::Data, 3000, 100, true),
                ],
            },
            IndexedPack {
                id: id(11),
                size: 900,
                blobs: vec![packed(3, BlobKind::Tree, 0, 700, true)],
            },
        ],
        rebuilt: None,
    }
}

pub fn index() {
    let json = serde_json::to_vec(&sample_index()).expect("index json");
    let stored = encode_index(&sample_index()).expect("encode index");
    // Edits of the compressed bytes test the decompressor; edits of the JSON (compressed
    // afterwards, as a forger would) reach the decoder behind it.
    let strategy = prop_oneof![
        inputs(vec![stored]),
        inputs(vec![json]).prop_map(|j| Bytes(zstd_frame(&j.0))),
    ];
    fuzz("index", strategy, |data| {
        let Ok(file) = decode_index("index/fuzz", &data.0) else {
            return Ok(false);
        };
        {
            let mut master = MasterIndex::default();
            master.add_file(&file);
            for pack in &file.packs {
                for b in &pack.blobs {
                    let _ = master.locate(&b.id, BlobKind::Data);
                    let _ = master.locate(&b.id, BlobKind::Tree);
                }
            }
        }
        Ok(true)
    });
}

/// One zstd frame, as an index is stored.
fn zstd_frame(data: &[u8]) -> Vec<u8> {
    // A blob of compressible bytes is one zstd frame; anything else is stored raw, which
    // is itself an interesting input.
    let b = blob::encode(data.to_vec(), 3);
    b.data
}

fn node(name: &str, kind: NodeKind) -> Node {
    Node {
        name: name.into(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime_ns: 1_700_000_000_000_000_000,
        size: if kind == NodeKind::File { 4096 } else { 0 },
        content: (kind == NodeKind::File).then(|| id(20)),
        chunks: if kind == NodeKind::File {
            vec![id(1), id(2)]
        } else {
            Vec::new()
        },
        subtree: (kind == NodeKind::Dir).then(|| id(3)),
        merkle: (kind == NodeKind::Dir).then(|| id(21)),
        target: (kind == NodeKind::Symlink).then(|| "chaindata/CURRENT".into()),
    }
}

fn sample_tree() -> Tree {
    Tree {
        nodes: vec![
            node("LOCK", NodeKind::File),
            node("chaindata", NodeKind::Dir),
            node("current", NodeKind::Symlink),
        ],
    }
}

pub fn tree() {
    let seeds = vec![
        encode_tree(&sample_tree()).expect("encode"),
        encode_tree(&Tree::default()).expect("encode"),
    ];
    fuzz("tree", inputs(seeds), |data| {
        let Ok(tree) = decode_tree(&data.0) else {
            return Ok(false);
        };
        let _ = tree_hash(&tree);
        for n in &tree.nodes {
            let _ = node_hash(n);
        }
        Ok(true)
    });
}

/// A repository in a scratch directory, with its chunk key.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    repo: Repository,
    key: ChunkKey,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repo");
        let backend = LocalBackend::create(&root).expect("backend");
        let identity = Identity::generate();
        let new = Repository::init(Box::new(backend), vec![identity.to_public()]).expect("init");
        Scratch {
            _dir: dir,
            root,
            repo: new.repo,
            key: new.backup_key.chunk_key,
        }
    }

    /// Store `data` under `dir/<its hash>` (named right, so the parser behind the hash
    /// check is reached); returns the path to remove afterwards.
    fn plant(&self, dir: &str, data: &[u8]) -> PathBuf {
        let path = self.root.join(dir).join(Id::hash(data).to_hex());
        fs::create_dir_all(self.root.join(dir)).expect("mkdir");
        fs::write(&path, data).expect("plant");
        path
    }
}

fn rfc3339(text: &str) -> vtool_snapshot::time::OffsetDateTime {
    use vtool_snapshot::time::{format_description::well_known::Rfc3339, OffsetDateTime};
    OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339")
}

fn sample_snapshot() -> Snapshot {
    Snapshot {
        version: 2,
        time: rfc3339("2026-12-03T07:00:00.123456789Z"),
        hostname: "node1".into(),
        username: "root".into(),
        paths: vec!["/var/lib/node".into()],
        tags: vec!["daily".into()],
        tree: id(3),
        fingerprint: id(22),
        summary: SnapshotSummary {
            files: 3,
            dirs: 1,
            bytes: 4096,
            bytes_read: 4096,
            bytes_added_stored: 3800,
            warnings: 0,
            duration_secs: 3.6432756790000003,
        },
        labels: BTreeMap::from([("profile".into(), "geth".into())]),
        refs: None,
        holds: Vec::new(),
    }
}

pub fn snapshot() {
    let s = Scratch::new();
    let (sid, _) = s
        .repo
        .save_snapshot(&sample_snapshot(), &s.key)
        .expect("save");
    let seed_path = s.root.join(format!("snapshots/{sid}"));
    let seed = fs::read(&seed_path).expect("read snapshot");
    fs::remove_file(&seed_path).expect("rm");
    fuzz("snapshot", inputs(vec![seed.clone()]), |data| {
        let planted = s.plant("snapshots", &data.0);
        let listed = s.repo.snapshots();
        if let Ok(list) = &listed {
            for (_, snap) in &list.objects {
                // Only the bytes the key holder wrote authenticate.
                let authentic = s.repo.verify_snapshot(snap, &s.key).is_ok();
                prop_assert!(
                    !authentic || data.0 == seed,
                    "a changed snapshot authenticated"
                );
            }
        }
        let _ = s.repo.find_snapshot("latest", Some(&s.key));
        fs::remove_file(planted).expect("rm");
        Ok(listed.is_ok_and(|l| !l.objects.is_empty()))
    });
}

pub fn config() {
    let s = Scratch::new();
    let config_path = s.root.join("config");
    let seed = fs::read(&config_path).expect("read config");
    fuzz("config", inputs(vec![seed.clone()]), |data| {
        fs::write(&config_path, &data.0).expect("write config");
        let backend = LocalBackend::open(&s.root).expect("backend");
        let Ok(repo) = Repository::open(Box::new(backend)) else {
            return Ok(false);
        };
        let authentic = repo.authenticate_config(&s.key, FORMAT_VERSION).is_ok();
        prop_assert!(
            !authentic || data.0 == seed,
            "a changed config authenticated"
        );
        {
            // What a backup does with an opened config: recipients, chunking, compression.
            let c = repo.config();
            let _ = parse_recipients(&c.recipients);
            let sample: Vec<u8> = (0..70_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect();
            let mut chunker = Chunker::new(c.chunker);
            let _ = chunker.chunk(&sample[..], |chunk| {
                let _ = blob::encode(chunk.to_vec(), c.zstd_level);
                Ok::<(), ()>(())
            });
        }
        Ok(true)
    });
}

fn sample_drill() -> DrillRecord {
    DrillRecord {
        kind: "vtool-drill".into(),
        version: 2,
        snapshot: id(30),
        fingerprint: id(22),
        time: rfc3339("2026-12-03T07:00:00Z"),
        hostname: "node1".into(),
        target: "/tmp/drill".into(),
        duration_secs: 1.4000000000000001,
        restore: DrillRestore {
            files: 3,
            bytes: 4096,
            duration_secs: 0.25,
            damaged: vec!["node/LOCK".into()],
        },
        verified: true,
        commands: vec![DrillCommand {
            command: "sqlite3 {dir}/db 'PRAGMA integrity_check'".into(),
            exit_code: Some(0),
            ran: true,
            timed_out: false,
            duration_secs: 0.1,
            expect: Some("^ok$".into()),
            expect_matched: Some(true),
            output_tail: "ok\n".into(),
            passed: true,
        }],
        passed: true,
        failure: None,
        vtool_version: "0.1.0".into(),
        proven_keys: Vec::new(),
    }
}

pub fn drill_record() {
    let s = Scratch::new();
    let seed = seal(SealedKind::DrillRecord, &sample_drill(), &s.key).expect("seal");
    fuzz("drill-record", inputs(vec![seed.clone()]), |data| {
        let planted = s.plant("drills", &data.0);
        let listed = vtool_verify::list_drills(s.repo.backend(), Some(&s.key));
        let _ = vtool_verify::list_drills(s.repo.backend(), None);
        if let Ok(list) = &listed {
            let authentic = list
                .records
                .iter()
                .any(|d| d.authenticity == vtool_verify::Authenticity::Authentic);
            prop_assert!(
                !authentic || data.0 == seed,
                "a changed drill record authenticated"
            );
        }
        fs::remove_file(planted).expect("rm");
        Ok(listed.is_ok_and(|l| !l.records.is_empty()))
    });
}
