//! EIP-2335 keystores: the JSON document, its validation, and the password proof.
//!
//! A password is proven through the keystore checksum — `SHA256(dk[16..32] ++ cipher.message)`
//! must equal `checksum.message` — so the secret key is never decrypted to check a password.

use std::path::Path;

use aes::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::kdf::{Kdf, KdfError};
use crate::password::process_password;

/// AES-128 in counter mode with a 128-bit big-endian counter, as EIP-2335 specifies.
pub(crate) type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Errors reading or using a keystore.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The keystore path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON, or not shaped like an EIP-2335 keystore.
    #[error("not an EIP-2335 keystore: {0}")]
    Json(#[from] serde_json::Error),
    /// `version` is not 4.
    #[error("keystore version {0} is not supported (expected 4)")]
    UnsupportedVersion(u32),
    /// The KDF module is invalid.
    #[error(transparent)]
    Kdf(#[from] KdfError),
    /// The checksum module is invalid.
    #[error("invalid checksum module: {0}")]
    Checksum(String),
    /// The cipher module is invalid.
    #[error("invalid cipher module: {0}")]
    Cipher(String),
    /// The `pubkey` field is not 48 bytes of hex.
    #[error("invalid pubkey {0:?}: expected 48 bytes of hex")]
    Pubkey(String),
    /// The password does not match the checksum (only from [`Keystore::decrypt`]).
    #[error("wrong password")]
    WrongPassword,
}

/// One `{function, params, message}` module of the `crypto` object, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Algorithm name.
    pub function: String,
    /// Algorithm parameters.
    pub params: serde_json::Value,
    /// Module message (hex; empty for the KDF).
    pub message: String,
}

/// The `crypto` object of a keystore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CryptoJson {
    /// Key derivation function.
    pub kdf: Module,
    /// Password checksum.
    pub checksum: Module,
    /// Secret encryption.
    pub cipher: Module,
}

/// An EIP-2335 keystore document exactly as serialised (unknown fields are ignored).
///
/// Prysm's `all-accounts.keystore.json` has the same shape; it may carry a `name` and a
/// `pubkeys` list instead of a single `pubkey` and `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeystoreJson {
    /// The encrypted secret and how to open it.
    pub crypto: CryptoJson,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// BLS public key, hex without `0x` (48 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
    /// EIP-2334 derivation path (may be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// UUID of the keystore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Wallet name (prysm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Public keys held by a multi-key keystore (prysm's all-accounts file), if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkeys: Option<Vec<String>>,
    /// Must be 4.
    pub version: u32,
}

/// A validated keystore, ready for password checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keystore {
    /// Key derivation function and parameters.
    pub kdf: Kdf,
    /// Expected `SHA256(dk[16..32] ++ ciphertext)`.
    pub checksum: [u8; 32],
    /// AES-128-CTR initialisation vector.
    pub iv: [u8; 16],
    /// The encrypted secret.
    pub ciphertext: Vec<u8>,
    /// Public key as `0x`-prefixed lowercase hex, if the file states one.
    pub pubkey: Option<String>,
    /// Public keys listed in a `pubkeys` field (prysm), as `0x`-prefixed lowercase hex.
    pub pubkeys: Vec<String>,
    /// The document as read.
    pub json: KeystoreJson,
}

impl Keystore {
    /// Parses and validates keystore JSON text.
    pub fn from_json_str(text: &str) -> Result<Keystore, KeystoreError> {
        Keystore::from_json(serde_json::from_str(text)?)
    }

    /// Reads and validates a keystore file.
    pub fn from_file(path: &Path) -> Result<Keystore, KeystoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeystoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Keystore::from_json_str(&text)
    }

    /// Validates a parsed document.
    pub fn from_json(json: KeystoreJson) -> Result<Keystore, KeystoreError> {
        if json.version != 4 {
            return Err(KeystoreError::UnsupportedVersion(json.version));
        }
        let crypto = &json.crypto;
        let kdf = Kdf::from_module(&crypto.kdf.function, &crypto.kdf.params)?;

        if crypto.checksum.function != "sha256" {
            return Err(KeystoreError::Checksum(format!(
                "function {:?} is not \"sha256\"",
                crypto.checksum.function
            )));
        }
        let checksum: [u8; 32] = decode_fixed(&crypto.checksum.message)
            .map_err(|e| KeystoreError::Checksum(format!("message: {e}")))?;

        if crypto.cipher.function != "aes-128-ctr" {
            return Err(KeystoreError::Cipher(format!(
                "function {:?} is not \"aes-128-ctr\"",
                crypto.cipher.function
            )));
        }
        let iv_text = crypto
            .cipher
            .params
            .get("iv")
            .and_then(|v| v.as_str())
            .ok_or_else(|| KeystoreError::Cipher("missing params.iv".into()))?;
        let iv: [u8; 16] =
            decode_fixed(iv_text).map_err(|e| KeystoreError::Cipher(format!("iv: {e}")))?;
        let ciphertext = hex::decode(&crypto.cipher.message)
            .map_err(|e| KeystoreError::Cipher(format!("message: {e}")))?;
        if ciphertext.is_empty() {
            return Err(KeystoreError::Cipher("empty message".into()));
        }

        let pubkey = match json.pubkey.as_deref() {
            None | Some("") => None,
            Some(pk) => Some(normalize_pubkey(pk)?),
        };
        let pubkeys = json
            .pubkeys
            .iter()
            .flatten()
            .map(|pk| normalize_pubkey(pk))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Keystore {
            kdf,
            checksum,
            iv,
            ciphertext,
            pubkey,
            pubkeys,
            json,
        })
    }

    /// Bytes of memory one password check needs (see [`Kdf::memory_cost`]).
    pub fn memory_cost(&self) -> u64 {
        self.kdf.memory_cost()
    }

    /// Checks a password against the checksum, without decrypting the secret.
    pub fn verify_password(&self, password: &str) -> Result<bool, KeystoreError> {
        let dk = self.kdf.derive(&process_password(password))?;
        Ok(self.checksum_matches(&dk))
    }

    fn checksum_matches(&self, dk: &[u8; 32]) -> bool {
        let digest = checksum(dk, &self.ciphertext);
        // Constant-time comparison: the checksum is public, but there is no reason to leak.
        digest
            .iter()
            .zip(self.checksum.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Decrypts the secret (after checking the password). Only for tests and tooling that need
    /// the secret; [`Keystore::verify_password`] is the proof that does not.
    pub fn decrypt(&self, password: &str) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        let dk = self.kdf.derive(&process_password(password))?;
        if !self.checksum_matches(&dk) {
            return Err(KeystoreError::WrongPassword);
        }
        let mut secret = Zeroizing::new(self.ciphertext.clone());
        apply_aes_128_ctr(&dk, &self.iv, &mut secret);
        Ok(secret)
    }
}

/// `SHA256(dk[16..32] ++ cipher_message)`.
pub(crate) fn checksum(dk: &[u8; 32], cipher_message: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(&dk[16..32]);
    hasher.update(cipher_message);
    hasher.finalize().into()
}

/// Encrypts or decrypts in place with AES-128-CTR keyed by `dk[0..16]`.
pub(crate) fn apply_aes_128_ctr(dk: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    let mut cipher = Aes128Ctr::new(dk[0..16].into(), iv.into());
    cipher.apply_keystream(data);
}

/// Normalises a BLS public key to `0x`-prefixed lowercase hex, checking it is 48 bytes.
pub fn normalize_pubkey(text: &str) -> Result<String, KeystoreError> {
    let bare = text.strip_prefix("0x").unwrap_or(text);
    let bytes: [u8; 48] = decode_fixed(bare).map_err(|_| KeystoreError::Pubkey(text.into()))?;
    Ok(format!("0x{}", hex::encode(bytes)))
}

fn decode_fixed<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(text).map_err(|e| e.to_string())?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("{len} bytes where {N} are expected"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> serde_json::Value {
        serde_json::json!({
            "crypto": {
                "kdf": {"function": "pbkdf2", "params": {"dklen": 32, "c": 2, "prf": "hmac-sha256", "salt": "00"}, "message": ""},
                "checksum": {"function": "sha256", "params": {}, "message": "00".repeat(32)},
                "cipher": {"function": "aes-128-ctr", "params": {"iv": "00".repeat(16)}, "message": "00".repeat(32)}
            },
            "pubkey": "ab".repeat(48),
            "path": "",
            "uuid": "x",
            "version": 4
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Keystore, KeystoreError> {
        Keystore::from_json_str(&v.to_string())
    }

    #[test]
    fn rejects_malformed_keystores() {
        assert!(parse(&vector()).is_ok());
        let edits: [(&str, serde_json::Value); 9] = [
            ("/version", 3.into()),
            ("/crypto/kdf/function", "argon2".into()),
            ("/crypto/kdf/params/dklen", 16.into()),
            ("/crypto/kdf/params/prf", "hmac-sha512".into()),
            ("/crypto/cipher/function", "aes-256-ctr".into()),
            ("/crypto/cipher/params/iv", "00".into()),
            ("/crypto/checksum/function", "sha512".into()),
            ("/crypto/checksum/message", "zz".into()),
            ("/pubkey", "abcd".into()),
        ];
        for (pointer, value) in edits {
            let mut v = vector();
            *v.pointer_mut(pointer).expect("pointer") = value;
            assert!(parse(&v).is_err(), "{pointer} edit must be refused");
        }
        let mut v = vector();
        v["crypto"]["kdf"] = serde_json::json!({"function": "scrypt", "params": {"dklen": 32, "n": 1000, "r": 8, "p": 1, "salt": "00"}, "message": ""});
        assert!(matches!(parse(&v), Err(KeystoreError::Kdf(_))));
        v["crypto"]["kdf"]["params"]["n"] = (1u64 << 40).into();
        assert!(
            matches!(parse(&v), Err(KeystoreError::Kdf(_))),
            "memory cap"
        );
        assert!(Keystore::from_json_str("{\"crypto\": ").is_err());
    }
}
