//! Finding keystores in the directory layouts of the consensus clients.

use std::path::{Path, PathBuf};

/// File name of prysm's wallet keystore holding all of its accounts.
pub const PRYSM_ALL_ACCOUNTS: &str = "all-accounts.keystore.json";

/// Directory names whose `*.json` files are keystores (teku, lodestar, web3signer style).
const KEYSTORE_DIRS: &[&str] = &["keystores", "keys", "validator_keys"];

/// Which layout a keystore was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    /// `…/0x<pubkey>/voting-keystore.json` (lighthouse; lodestar uses the same name).
    Lighthouse,
    /// `…/0x<pubkey>/keystore.json` (nimbus).
    Nimbus,
    /// `…/keystores/*.json`, `…/keys/*.json`, `…/validator_keys/*.json` (teku, lodestar).
    KeystoreDir,
    /// `keystore-*.json` anywhere (staking-deposit-cli output).
    Generic,
    /// `all-accounts.keystore.json` (prysm), one keystore for many validators.
    PrysmAllAccounts,
}

impl Layout {
    /// The name shown to users and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Lighthouse => "lighthouse",
            Layout::Nimbus => "nimbus",
            Layout::KeystoreDir => "keystoredir",
            Layout::Generic => "generic",
            Layout::PrysmAllAccounts => "prysmallaccounts",
        }
    }
}

/// A keystore file found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FoundKeystore {
    /// Path of the keystore file.
    pub path: PathBuf,
    /// How it was recognised.
    pub layout: Layout,
    /// Pubkey stated by the directory name (`0x<pubkey>` parent), lowercase, if any.
    pub dir_pubkey: Option<String>,
}

/// Errors walking a directory.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// A directory could not be listed.
    #[error("cannot list {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Recognises a keystore by its path; `None` for any other file.
pub fn classify(path: &Path) -> Option<FoundKeystore> {
    let name = path.file_name()?.to_str()?;
    if !name.ends_with(".json") {
        return None;
    }
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let dir_pubkey = pubkey_dir_name(parent);
    let layout = if name == PRYSM_ALL_ACCOUNTS {
        Layout::PrysmAllAccounts
    } else if name == "voting-keystore.json" {
        Layout::Lighthouse
    } else if name == "keystore.json" && dir_pubkey.is_some() {
        Layout::Nimbus
    } else if name.starts_with("keystore-") {
        Layout::Generic
    } else if KEYSTORE_DIRS.contains(&parent) && !name.starts_with("deposit_data") {
        Layout::KeystoreDir
    } else if is_pubkey_name(name.trim_end_matches(".json")) {
        // Teku's key-manager: validator/key-manager/local/<pubkey>.json.
        Layout::KeystoreDir
    } else if name.ends_with("-keystore.json") {
        Layout::Generic
    } else {
        return None;
    };
    Some(FoundKeystore {
        path: path.to_path_buf(),
        layout,
        dir_pubkey,
    })
}

/// `0x` + 96 hex digits, lowercased.
fn pubkey_dir_name(name: &str) -> Option<String> {
    let hex = name.strip_prefix("0x")?;
    (hex.len() == 96 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("0x{}", hex.to_ascii_lowercase()))
}

/// A public key in hex, with or without `0x`.
fn is_pubkey_name(name: &str) -> bool {
    let hex = name.strip_prefix("0x").unwrap_or(name);
    hex.len() == 96 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Finds every keystore under `dir` (recursively, not following symbolic links), sorted by path.
pub fn find_keystores(dir: &Path) -> Result<Vec<FoundKeystore>, DiscoverError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|source| DiscoverError::Io {
            path: current.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| DiscoverError::Io {
                path: current.clone(),
                source,
            })?;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                found.extend(classify(&path));
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_client_layouts() {
        let pk = format!("0x{}", "ab".repeat(48));
        let lh = format!("/v/validators/{pk}/voting-keystore.json");
        let nb = format!("/v/validators/{pk}/keystore.json");
        let tk = format!("/t/validator/key-manager/local/{pk}.json");
        let cases = [
            (lh.as_str(), Some(Layout::Lighthouse)),
            (nb.as_str(), Some(Layout::Nimbus)),
            ("/v/keystores/x.json", Some(Layout::KeystoreDir)),
            ("/v/keys/validator_1.json", Some(Layout::KeystoreDir)),
            (
                "/v/keystore-m_12381_3600_0_0_0-1.json",
                Some(Layout::Generic),
            ),
            (
                "/w/direct/accounts/all-accounts.keystore.json",
                Some(Layout::PrysmAllAccounts),
            ),
            ("/v/keys/deposit_data-1.json", None),
            (tk.as_str(), Some(Layout::KeystoreDir)),
            ("/v/keystore.json", None),
            ("/v/keys/x.txt", None),
            ("/v/slashing_protection.json", None),
        ];
        for (path, want) in cases {
            assert_eq!(classify(Path::new(path)).map(|f| f.layout), want, "{path}");
        }
        let found = classify(Path::new(&lh)).expect("lighthouse");
        assert_eq!(found.dir_pubkey.as_deref(), Some(pk.as_str()));
    }
}
