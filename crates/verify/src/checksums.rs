//! Checksum manifests anyone can check without vtool (`vtool checksums`).
//!
//! Lines are `HEX  PATH` with paths relative to a restore target, in the format that
//! `sha256sum -c` and `b3sum -c` read (names holding a backslash or a newline are escaped
//! and the line starts with a backslash, as coreutils does).
//!
//! * `b3` comes straight from the trees: the BLAKE3 of every file as it was read at backup
//!   time. No data is read.
//! * `sha256` reads every file's chunks back (each checked against its keyed id) and checks
//!   the whole file against the BLAKE3 recorded at backup before printing its line; a file
//!   that cannot be read is reported, never given a checksum.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::Serialize;
use sha2::Digest;
use vtool_snapshot::pack::OpenedPack;
use vtool_snapshot::reader::BlobReader;
use vtool_snapshot::repofile::{BlobKind, Node, NodeKind, Snapshot};
use vtool_snapshot::sealed::Sealed;
use vtool_snapshot::tree::TreeBudget;
use vtool_snapshot::{Damage, Error, Id, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumFormat {
    Sha256,
    B3,
}

impl FromStr for ChecksumFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sha256" => Ok(ChecksumFormat::Sha256),
            "b3" | "blake3" => Ok(ChecksumFormat::B3),
            _ => Err(format!("unknown format {s:?}: use sha256 or b3")),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Checksum {
    /// Relative to the restore target.
    pub path: String,
    pub hex: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ChecksumReport {
    /// In tree order.
    pub files: Vec<Checksum>,
    /// Files whose data could not be read back correctly.
    pub damaged: Vec<Damage>,
}

/// One manifest line (without the newline).
pub fn manifest_line(c: &Checksum) -> String {
    if c.path.contains(['\\', '\n']) {
        let escaped = c.path.replace('\\', "\\\\").replace('\n', "\\n");
        format!("\\{}  {escaped}", c.hex)
    } else {
        format!("{}  {}", c.hex, c.path)
    }
}

/// Checksums of every file of `snapshot`.
pub fn checksums(
    reader: &BlobReader,
    snapshot: &Sealed<Snapshot>,
    format: ChecksumFormat,
) -> Result<ChecksumReport> {
    reader
        .repo
        .verify_snapshot(snapshot, &reader.key.chunk_key)?;
    let root = reader.tree(&snapshot.tree, &snapshot.fingerprint)?;
    let mut budget = TreeBudget::new(&snapshot.summary);
    budget.enter(&root, 0)?;
    let mut files = Vec::new();
    collect_files(reader, &root.nodes, "", &mut files, &mut budget, 0)?;
    let mut report = ChecksumReport::default();
    match format {
        ChecksumFormat::B3 => {
            for (path, node) in files {
                let content = node
                    .content
                    .ok_or_else(|| Error::Corrupt(format!("{path} has no content hash")))?;
                report.files.push(Checksum {
                    path,
                    hex: content.to_hex(),
                });
            }
        }
        ChecksumFormat::Sha256 => {
            let packs = PackCache::new(2 * rayon::current_num_threads());
            let results: Vec<_> = files
                .par_iter()
                .map(|(path, node)| sha256_of(reader, &packs, node).map_err(|e| (path, e)))
                .collect();
            for (r, (path, _)) in results.into_iter().zip(&files) {
                match r {
                    Ok(hex) => report.files.push(Checksum {
                        path: path.clone(),
                        hex,
                    }),
                    Err((_, e)) => report.damaged.push(Damage {
                        path: path.clone(),
                        message: e.to_string(),
                    }),
                }
            }
        }
    }
    Ok(report)
}

pub(crate) fn collect_files(
    reader: &BlobReader,
    nodes: &[Node],
    rel: &str,
    out: &mut Vec<(String, Node)>,
    budget: &mut TreeBudget,
    depth: usize,
) -> Result<()> {
    for n in nodes {
        let path = if rel.is_empty() {
            n.name.clone()
        } else {
            format!("{rel}/{}", n.name)
        };
        match (n.kind, n.subtree, n.merkle) {
            (NodeKind::File, _, _) => out.push((path, n.clone())),
            (NodeKind::Dir, Some(sub), Some(m)) => {
                let tree = reader.tree(&sub, &m)?;
                budget.enter(&tree, depth + 1)?;
                collect_files(reader, &tree.nodes, &path, out, budget, depth + 1)?;
            }
            (NodeKind::Dir, _, _) => {
                return Err(Error::Corrupt(format!("directory {path} has no tree")))
            }
            (NodeKind::Symlink, _, _) => {}
        }
    }
    Ok(())
}

/// Decrypted packs recently used. Files are mostly laid out in pack order, so a few packs
/// per thread serve nearly every chunk without fetching or decrypting a pack twice.
pub(crate) struct PackCache {
    capacity: usize,
    packs: Mutex<VecDeque<(Id, Arc<OpenedPack>)>>,
}

impl PackCache {
    pub(crate) fn new(capacity: usize) -> Self {
        PackCache {
            capacity,
            packs: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn get(&self, reader: &BlobReader, pack: &Id) -> Result<Arc<OpenedPack>> {
        let poisoned = || Error::Corrupt("pack cache lock poisoned".into());
        if let Some((_, p)) = self
            .packs
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .find(|(id, _)| id == pack)
        {
            return Ok(p.clone());
        }
        let plain = Arc::new(reader.open_pack(pack)?);
        let mut packs = self.packs.lock().map_err(|_| poisoned())?;
        if packs.len() >= self.capacity {
            packs.pop_front();
        }
        packs.push_back((*pack, plain.clone()));
        Ok(plain)
    }
}

fn sha256_of(reader: &BlobReader, packs: &PackCache, node: &Node) -> Result<String> {
    let mut sha = sha2::Sha256::new();
    let mut b3 = blake3::Hasher::new();
    for chunk in &node.chunks {
        let data = reader.read_blob(chunk, BlobKind::Data, |pack| packs.get(reader, pack))?;
        sha.update(&data);
        b3.update(&data);
    }
    if Some(Id::from(b3.finalize())) != node.content {
        return Err(Error::Corrupt(
            "its chunks do not add up to the content recorded at backup".into(),
        ));
    }
    Ok(hex::encode(sha.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_names_are_escaped_like_coreutils() {
        let plain = Checksum {
            path: "a b/c".into(),
            hex: "00".into(),
        };
        assert_eq!(manifest_line(&plain), "00  a b/c");
        let odd = Checksum {
            path: "x\\y\nz".into(),
            hex: "ff".into(),
        };
        assert_eq!(manifest_line(&odd), "\\ff  x\\\\y\\nz");
    }
}
