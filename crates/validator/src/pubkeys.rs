//! The public keys a directory of keystores stands for, read from the files (never decrypted).

use std::path::{Path, PathBuf};

use crate::discover::{find_keystores, DiscoverError, FoundKeystore, Layout};
use crate::keystore::Keystore;

/// Why the pubkeys of a directory could not all be read.
#[derive(Debug, thiserror::Error)]
pub enum PubkeysError {
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error("{}: no public key can be read from it ({detail})", path.display())]
    NoPubkey { path: PathBuf, detail: String },
    #[error("no keystore found under {}", .0.display())]
    NoKeystores(PathBuf),
}

/// The pubkeys a keystore file stands for (`None` where neither file nor directory name
/// states one): prysm's wallet lists many, others state one, or their directory names it.
pub fn stated_pubkeys(found: &FoundKeystore, keystore: Option<&Keystore>) -> Vec<Option<String>> {
    match keystore {
        None => vec![found.dir_pubkey.clone()],
        Some(ks) if found.layout == Layout::PrysmAllAccounts || !ks.pubkeys.is_empty() => {
            if ks.pubkeys.is_empty() {
                vec![ks.pubkey.clone()]
            } else {
                ks.pubkeys.iter().cloned().map(Some).collect()
            }
        }
        Some(ks) => vec![ks.pubkey.clone().or_else(|| found.dir_pubkey.clone())],
    }
}

/// Every pubkey of the keystores under `dir`, `0x` lowercase, each once, in path order; an
/// error for a keystore whose key cannot be told, since a key left out would go unwatched.
pub fn keystore_pubkeys(dir: &Path) -> Result<Vec<String>, PubkeysError> {
    let found = find_keystores(dir)?;
    if found.is_empty() {
        return Err(PubkeysError::NoKeystores(dir.to_path_buf()));
    }
    let mut pubkeys: Vec<String> = Vec::new();
    for f in &found {
        let keystore = Keystore::from_file(&f.path);
        let detail = match &keystore {
            Err(e) => e.to_string(),
            Ok(_) => "the file states none".into(),
        };
        for pubkey in stated_pubkeys(f, keystore.as_ref().ok()) {
            let pubkey = pubkey.ok_or_else(|| PubkeysError::NoPubkey {
                path: f.path.clone(),
                detail: detail.clone(),
            })?;
            if !pubkeys.contains(&pubkey) {
                pubkeys.push(pubkey);
            }
        }
    }
    Ok(pubkeys)
}
