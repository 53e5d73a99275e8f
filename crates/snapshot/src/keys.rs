//! The two keys of a repository.
//!
//! * The **restore identity** is an age X25519 identity (an ordinary age identity file). It
//!   decrypts packs and the key object. Keep it offline.
//! * The **backup key** holds the age recipients and the chunk key. A host holding only it can
//!   add snapshots and deduplicate against the repository, but cannot decrypt anything.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;

use crate::repofile::{BackupKeyFile, KeyObject};
use crate::{Error, Id, Result};

const BACKUP_KEY_KIND: &str = "vtool-backup-key";

/// The secret naming chunks (keyed BLAKE3), so chunk ids reveal nothing about content to
/// someone who does not hold it.
#[derive(Clone)]
pub struct ChunkKey([u8; 32]);

impl ChunkKey {
    pub fn generate() -> Self {
        ChunkKey(rand::random())
    }

    /// The id of a chunk or tree blob.
    pub fn blob_id(&self, data: &[u8]) -> Id {
        blake3::keyed_hash(&self.0, data).into()
    }

    /// Authentication tag for records a storage host must not forge (snapshots, drills).
    pub fn mac(&self, context: &str, data: &[u8]) -> String {
        let key = blake3::derive_key(context, &self.0);
        blake3::keyed_hash(&key, data).to_hex().to_string()
    }

    /// Keyed fingerprint of something a snapshot holds that forget must not lose (a
    /// validator key `keystore:<pubkey hex>`, a slashing-protection database
    /// `slashing:<path>`): comparable by key holders, meaningless to the storage host.
    pub fn held_fingerprint(&self, what: &str) -> Id {
        let key = blake3::derive_key("vtool 2026-12 held by snapshot", &self.0);
        blake3::keyed_hash(&key, what.as_bytes()).into()
    }

    /// Whether `mac` (lowercase hex, as written) is the tag of `data`, compared in
    /// constant time.
    pub fn mac_matches(&self, context: &str, data: &[u8], mac: &str) -> bool {
        let key = blake3::derive_key(context, &self.0);
        // from_hex also takes upper case; only the form vtool writes is accepted.
        let lower = mac.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        lower && blake3::Hash::from_hex(mac).is_ok_and(|m| m == blake3::keyed_hash(&key, data))
    }

    fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(ChunkKey(out))
    }
}

/// What a backup host holds.
#[derive(Clone)]
pub struct BackupKey {
    pub repo_id: Id,
    /// Repository format the key was made for; from 2 on the config must be sealed.
    pub format: u32,
    pub recipients: Vec<age::x25519::Recipient>,
    pub chunk_key: ChunkKey,
}

/// What a restore needs: the identity, and the chunk key recovered from the key object.
pub struct RestoreKey {
    pub identity: age::x25519::Identity,
    pub chunk_key: ChunkKey,
    /// Repository format of the key object; from 2 on the config must be sealed.
    pub format: u32,
}

/// Parse age recipient strings (`age1…`).
pub fn parse_recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>> {
    list.iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r)
                .map_err(|e| Error::WrongKey(format!("invalid age recipient {r:?}: {e}")))
        })
        .collect()
}

impl BackupKey {
    pub fn to_file(&self) -> BackupKeyFile {
        BackupKeyFile {
            kind: BACKUP_KEY_KIND.into(),
            version: self.format,
            repo_id: self.repo_id,
            recipients: self.recipients.iter().map(|r| r.to_string()).collect(),
            chunk_key: self.chunk_key.to_hex(),
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        refuse_exposed(path)?;
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let file: BackupKeyFile = serde_json::from_slice(&text).map_err(|e| {
            bad(format!(
                "not a vtool backup key ({e}); use the file from `vtool init --backup-key-out`"
            ))
        })?;
        if file.kind != BACKUP_KEY_KIND {
            return Err(bad("not a vtool backup key".into()));
        }
        Ok(BackupKey {
            repo_id: file.repo_id,
            format: file.version,
            recipients: parse_recipients(&file.recipients)?,
            chunk_key: ChunkKey::from_hex(&file.chunk_key)
                .ok_or_else(|| bad("chunk_key is not 64 hex digits".into()))?,
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.to_file())
            .map_err(|e| Error::Internal(e.to_string()))?;
        write_secret_file(path, &json)
    }

    pub fn key_object(&self) -> KeyObject {
        KeyObject {
            repo_id: self.repo_id,
            chunk_key: self.chunk_key.to_hex(),
            format: self.format,
        }
    }
}

impl RestoreKey {
    /// Recover the chunk key from a decrypted key object.
    pub fn from_key_object(identity: age::x25519::Identity, obj: &KeyObject) -> Result<Self> {
        let chunk_key = ChunkKey::from_hex(&obj.chunk_key)
            .ok_or_else(|| Error::Corrupt("key object holds an invalid chunk key".into()))?;
        Ok(RestoreKey {
            identity,
            chunk_key,
            format: obj.format,
        })
    }
}

/// Read an age identity file (lines starting with `#` are comments).
pub fn load_identity(path: &Path) -> Result<age::x25519::Identity> {
    let bad = |reason: String| Error::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    refuse_exposed(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| bad("no identity found".into()))?;
    if line.starts_with('{') {
        return Err(bad(
            "this is a backup key; restore needs the restore identity from `vtool init --identity-out`".into(),
        ));
    }
    age::x25519::Identity::from_str(line)
        .map_err(|e| bad(format!("not an age X25519 identity: {e}")))
}

/// Keys readable by other users are refused, as ssh refuses such private keys.
fn refuse_exposed(path: &Path) -> Result<()> {
    vtool_transfer::check_private_file(path).map_err(|e| Error::KeyFile {
        path: path.to_path_buf(),
        reason: format!(
            "other users can access it (mode {:04o}); refusing to use it. Run `chmod 600 {}`",
            e.mode,
            path.display()
        ),
    })
}

/// Write an age identity file, readable by the `age` tool too.
pub fn save_identity(identity: &age::x25519::Identity, path: &Path) -> Result<()> {
    let text = format!(
        "# vtool restore identity (age X25519). Keep it offline; it decrypts every backup.\n# public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    );
    write_secret_file(path, text.as_bytes())
}

/// Create a file with mode 0600 that must not exist yet.
fn write_secret_file(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(data).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}
