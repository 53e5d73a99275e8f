//! The Agave tower (`tower-1_9-<identity>.bin`, the vote lockout record) copied to a standby
//! before `agave-validator set-identity --require-tower`: a standby voting without the active
//! node's latest tower can break lockouts. The copy is checked by hash end to end: the source
//! is read once and hashed, the destination written atomically, read back and hashed again,
//! and both must match (and `expect`, a hash taken on the other machine, when given).

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::Digest;

/// Towers are a few KiB; anything far larger is not one.
const MAX_TOWER_SIZE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TowerError {
    #[error("{0:?} is not a Solana identity (base58, 32 bytes)")]
    Identity(String),
    #[error("cannot read the tower {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the tower {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is {size} bytes: too large for a tower", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("the tower's BLAKE3 is {found}, not the expected {expected}; nothing was written")]
    Unexpected { expected: String, found: String },
    #[error("{} reads back as {found}, not {expected}: the copy is damaged; do not run set-identity", path.display())]
    ReadBack {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

/// A finished copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopiedTower {
    pub from: PathBuf,
    pub to: PathBuf,
    pub bytes: u64,
    pub blake3: String,
    pub sha256: String,
}

/// The tower's file name for `identity`.
pub fn tower_name(identity: &str) -> Result<String, TowerError> {
    let bytes = bs58::decode(identity)
        .into_vec()
        .map_err(|_| TowerError::Identity(identity.into()))?;
    if bytes.len() != 32 {
        return Err(TowerError::Identity(identity.into()));
    }
    Ok(format!("tower-1_9-{identity}.bin"))
}

/// Copy `identity`'s tower from the ledger directory `from` into the ledger directory `to`.
pub fn copy_tower(
    identity: &str,
    from: &Path,
    to: &Path,
    expect: Option<&str>,
) -> Result<CopiedTower, TowerError> {
    let name = tower_name(identity)?;
    let (src, dst) = (from.join(&name), to.join(&name));
    let data = read_small(&src)?;
    let blake3 = blake3::hash(&data).to_hex().to_string();
    if let Some(expected) = expect {
        if !expected.eq_ignore_ascii_case(&blake3) {
            return Err(TowerError::Unexpected {
                expected: expected.into(),
                found: blake3,
            });
        }
    }
    vtool_transfer::write_atomic(&dst, &data).map_err(|source| TowerError::Write {
        path: dst.clone(),
        source,
    })?;
    let back = blake3::hash(&read_small(&dst)?).to_hex().to_string();
    if back != blake3 {
        return Err(TowerError::ReadBack {
            path: dst,
            expected: blake3,
            found: back,
        });
    }
    Ok(CopiedTower {
        from: src,
        to: dst,
        bytes: data.len() as u64,
        sha256: hex::encode(sha2::Sha256::digest(&data)),
        blake3,
    })
}

fn read_small(path: &Path) -> Result<Vec<u8>, TowerError> {
    let read = |source| TowerError::Read {
        path: path.into(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > MAX_TOWER_SIZE {
        return Err(TowerError::TooLarge {
            path: path.into(),
            size,
        });
    }
    std::fs::read(path).map_err(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: &str = "7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2";

    #[test]
    fn a_copy_is_checked_end_to_end() {
        let (a, b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let name = tower_name(IDENTITY).expect("name");
        std::fs::write(a.path().join(&name), b"tower bytes").expect("write");
        let c = copy_tower(IDENTITY, a.path(), b.path(), None).expect("copy");
        assert_eq!(
            std::fs::read(b.path().join(&name)).expect("read"),
            b"tower bytes"
        );
        assert_eq!(c.blake3, blake3::hash(b"tower bytes").to_hex().as_str());
        // A hash from the other machine that does not match writes nothing.
        std::fs::write(a.path().join(&name), b"newer tower").expect("write");
        assert!(matches!(
            copy_tower(IDENTITY, a.path(), b.path(), Some(&c.blake3)),
            Err(TowerError::Unexpected { .. })
        ));
        assert_eq!(
            std::fs::read(b.path().join(&name)).expect("read"),
            b"tower bytes"
        );
        assert!(matches!(
            tower_name("not-base58!"),
            Err(TowerError::Identity(_))
        ));
        assert!(matches!(tower_name("3yZe7d"), Err(TowerError::Identity(_))));
    }
}
