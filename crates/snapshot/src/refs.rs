//! `refs/<id>`: every blob a snapshot needs, so that prune can tell used from unused with
//! the backup key alone (trees are encrypted). The snapshot names its refs object, and
//! the object is named by its hash, so the snapshot's seal covers the list.
//!
//! The encoding is binary because the list is large (32 bytes per blob, millions of blobs
//! in a chain database) and random ids do not compress: the magic line, then the ids in
//! strictly ascending order.

use vtool_transfer::Backend;

use crate::{Error, FileType, Id, Result};

const MAGIC: &[u8] = b"vtool-refs-1\n";

/// Encode a set of blob ids (sorted and deduplicated here).
pub fn encode(mut ids: Vec<Id>) -> Vec<u8> {
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::with_capacity(MAGIC.len() + ids.len() * 32);
    out.extend_from_slice(MAGIC);
    for id in &ids {
        out.extend_from_slice(&id.0);
    }
    out
}

/// Store the refs of a snapshot; returns the object's id.
pub fn store(backend: &dyn Backend, ids: Vec<Id>) -> Result<Id> {
    let data = encode(ids);
    match FileType::Refs.store(backend, &data) {
        Ok(id) => Ok(id),
        // The same set of blobs as an earlier snapshot: the object is already there.
        Err(vtool_transfer::BackendError::AlreadyExists(_)) => Ok(Id::hash(&data)),
        Err(e) => Err(e.into()),
    }
}

/// Bytes read at a time by [`visit`]: a refs object of ten million blobs is 320 MB, which
/// must not sit in memory at once.
const PIECE: u64 = 4 << 20;

/// Hand `f` every id of a refs object, in order, reading it piece by piece; the object is
/// checked as a whole (its hash, header and order) and an error returned if it fails, so
/// callers must not act on what they were handed before `Ok`.
pub fn visit(backend: &dyn Backend, id: &Id, mut f: impl FnMut(&Id)) -> Result<()> {
    let name = FileType::Refs.name(id);
    let size = backend
        .stat(&name)?
        .ok_or_else(|| Error::Corrupt(format!("{name} is missing")))?;
    let bad = |why: &str| Error::Corrupt(format!("{name} {why}"));
    let mut hasher = blake3::Hasher::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut last: Option<Id> = None;
    let mut at = 0u64;
    while at < size {
        let piece = backend.get_range(&name, at, PIECE.min(size - at))?;
        if piece.is_empty() {
            return Err(bad("ended early"));
        }
        at += piece.len() as u64;
        hasher.update(&piece);
        carry.extend_from_slice(&piece);
        let mut body: &[u8] = &carry;
        if at == piece.len() as u64 {
            body = body
                .strip_prefix(MAGIC)
                .ok_or_else(|| bad("lacks its header"))?;
        }
        let whole = body.len() / 32 * 32;
        for c in body[..whole].chunks_exact(32) {
            let mut raw = [0u8; 32];
            raw.copy_from_slice(c);
            let next = Id(raw);
            if last.is_some_and(|l| l >= next) {
                return Err(bad("is not in ascending order"));
            }
            f(&next);
            last = Some(next);
        }
        carry = body[whole..].to_vec();
    }
    if !carry.is_empty() {
        return Err(bad("is not a whole number of ids"));
    }
    if Id::from(hasher.finalize()) != *id {
        return Err(bad("does not match its content hash"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit_all(backend: &dyn Backend, data: &[u8]) -> Result<Vec<Id>> {
        let id = FileType::Refs.store(backend, data).expect("store");
        let mut out = Vec::new();
        visit(backend, &id, |i| out.push(*i))?;
        Ok(out)
    }

    #[test]
    fn round_trips_sorted_and_refuses_anything_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = vtool_transfer::LocalBackend::create(dir.path()).expect("backend");
        let ids: Vec<Id> = (0..50u8).rev().map(|n| Id::hash(&[n])).collect();
        let mut twice = ids.clone();
        twice.extend_from_slice(&ids[..5]);
        let data = encode(twice);
        let mut want = ids.clone();
        want.sort();
        assert_eq!(visit_all(&backend, &data).expect("visit"), want);
        assert!(visit_all(&backend, &data[..data.len() - 1]).is_err());
        assert!(visit_all(&backend, &data[1..]).is_err());
        let mut swapped = data.clone();
        let (a, b) = (MAGIC.len(), MAGIC.len() + 32);
        let first: Vec<u8> = swapped[a..b].to_vec();
        let second: Vec<u8> = swapped[b..b + 32].to_vec();
        swapped[a..b].copy_from_slice(&second);
        swapped[b..b + 32].copy_from_slice(&first);
        assert!(visit_all(&backend, &swapped).is_err(), "out of order");
        assert_eq!(visit_all(&backend, MAGIC).expect("empty"), Vec::<Id>::new());
    }

    #[test]
    fn visit_reads_large_objects_in_pieces_and_checks_them_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = vtool_transfer::LocalBackend::create(dir.path()).expect("backend");
        // More than one piece, and pieces that end inside an id.
        let ids: Vec<Id> = (0..300_000u32)
            .map(|n| Id::hash(&n.to_le_bytes()))
            .collect();
        let id = store(&backend, ids.clone()).expect("store");
        let mut seen = Vec::new();
        visit(&backend, &id, |i| seen.push(*i)).expect("visit");
        let mut want = ids;
        want.sort();
        assert_eq!(seen, want);
        // A changed byte anywhere fails the whole object.
        let name = FileType::Refs.name(&id);
        let path = dir.path().join(&name);
        let mut data = std::fs::read(&path).expect("read");
        let at = data.len() / 2;
        data[at] ^= 1;
        std::fs::write(&path, &data).expect("write");
        assert!(visit(&backend, &id, |_| {}).is_err());
    }
}
