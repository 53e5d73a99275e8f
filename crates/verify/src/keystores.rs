//! The validator keystores a snapshot holds, by pubkey: what a restore would put on a host
//! that may then start signing with them, which is what the restore guard asks a gate for.

use vtool_snapshot::glob::{build_globs, is_included};
use vtool_snapshot::reader::BlobReader;
use vtool_snapshot::repofile::{BlobKind, Snapshot};
use vtool_snapshot::sealed::Sealed;
use vtool_snapshot::tree::TreeBudget;
use vtool_snapshot::{Error, Result};

/// A keystore is a few KiB; a larger file with a keystore's name is not read.
const MAX_KEYSTORE_SIZE: u64 = 1 << 20;

/// A keystore in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotKeystore {
    /// Relative to the snapshot's root.
    pub path: String,
    /// `0x`-prefixed lowercase.
    pub pubkeys: Vec<String>,
}

/// Every file of `snapshot` inside `include` (all when empty) that is named like an EIP-2335
/// keystore and parses as one, with its pubkeys. One that does not parse is no keystore a
/// client could sign with, and is left out.
pub fn snapshot_keystores(
    reader: &BlobReader,
    snapshot: &Sealed<Snapshot>,
    include: &[String],
) -> Result<Vec<SnapshotKeystore>> {
    let include = build_globs(include)?;
    let root = reader.tree(&snapshot.tree, &snapshot.fingerprint)?;
    let mut budget = TreeBudget::new(&snapshot.summary);
    budget.enter(&root, 0)?;
    let mut files = Vec::new();
    crate::checksums::collect_files(reader, &root.nodes, "", &mut files, &mut budget, 0)?;
    // Keystores sit together, in one pack or a few: fetch each once, not once per keystore.
    let packs = crate::checksums::PackCache::new(2);
    let mut out = Vec::new();
    for (path, node) in files {
        if !is_included(&include, &path)
            || vtool_validator::discover::classify(std::path::Path::new(&path)).is_none()
        {
            continue;
        }
        if node.size > MAX_KEYSTORE_SIZE {
            continue;
        }
        let pubkeys: Vec<String> = {
            let mut data = Vec::new();
            for chunk in &node.chunks {
                let blob =
                    reader.read_blob(chunk, BlobKind::Data, |pack| packs.get(reader, pack))?;
                data.extend_from_slice(&blob);
            }
            let text = String::from_utf8(data)
                .map_err(|_| Error::Corrupt(format!("{path} is not UTF-8")))?;
            match vtool_validator::Keystore::from_json_str(&text) {
                Ok(k) => k.pubkey.into_iter().chain(k.pubkeys).collect(),
                Err(_) => continue,
            }
        };
        out.push(SnapshotKeystore { path, pubkeys });
    }
    Ok(out)
}
