//! Keystore passwords: EIP-2335 processing and where to find them on disk.

use std::io;
use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// Processes a password as EIP-2335 requires: NFKD normalisation, then removal of the C0
/// (`U+0000..=U+001F`) and C1 (`U+0080..=U+009F`) control codes and DEL (`U+007F`); the result
/// is UTF-8 encoded.
pub fn process_password(password: &str) -> Zeroizing<Vec<u8>> {
    let kept: Zeroizing<String> = Zeroizing::new(
        password
            .nfkd()
            .filter(|c| !matches!(*c as u32, 0x00..=0x1F | 0x7F..=0x9F))
            .collect(),
    );
    Zeroizing::new(kept.as_bytes().to_vec())
}

/// Where passwords for keystores come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// No password is available: every keystore is reported `MissingPassword`.
    None,
    /// A directory with one file per validator (lighthouse `secrets/`, nimbus `secrets/`, teku
    /// and lodestar password directories). See [`password_candidates`] for the names tried.
    Dir(PathBuf),
    /// One file holding the password of every keystore.
    File(PathBuf),
}

impl PasswordSource {
    /// `explicit` when given, else the `secrets/` directory of `dir` if it has one (where
    /// lighthouse and nimbus keep one password file per key), else none.
    pub fn or_default_for(explicit: Option<&PasswordSource>, dir: &Path) -> PasswordSource {
        match explicit {
            Some(s) => s.clone(),
            None if dir.join("secrets").is_dir() => PasswordSource::Dir(dir.join("secrets")),
            None => PasswordSource::None,
        }
    }
}

/// A password looked up for one keystore.
#[derive(Debug)]
pub enum PasswordLookup {
    /// Found, with the trailing newline removed.
    Found(Zeroizing<String>),
    /// No file for this keystore.
    Missing,
    /// A file exists but cannot be used (unreadable, not UTF-8).
    Unreadable(String),
}

/// File names tried in a password directory for a keystore, in order:
/// `0x<pubkey>`, `<pubkey>`, `<pubkey>.txt`, `0x<pubkey>.txt` (lowercase hex), then the
/// keystore's file stem with `.txt` and bare (teku names password files after the keystore),
/// and for prysm's `all-accounts.keystore.json` also `wallet-password.txt` and `password.txt`.
pub fn password_candidates(pubkey: Option<&str>, keystore_path: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(pk) = pubkey {
        let bare = pk.trim_start_matches("0x").to_ascii_lowercase();
        names.push(format!("0x{bare}"));
        names.push(bare.clone());
        names.push(format!("{bare}.txt"));
        names.push(format!("0x{bare}.txt"));
    }
    if let Some(stem) = keystore_path.file_stem().and_then(|s| s.to_str()) {
        names.push(format!("{stem}.txt"));
        names.push(stem.to_string());
    }
    let is_prysm = keystore_path
        .file_name()
        .is_some_and(|n| n == crate::discover::PRYSM_ALL_ACCOUNTS);
    if is_prysm {
        names.push("wallet-password.txt".into());
        names.push("password.txt".into());
    }
    names
}

impl PasswordSource {
    /// Finds the password for a keystore with the given pubkey (hex, with or without `0x`).
    pub fn lookup(&self, pubkey: Option<&str>, keystore_path: &Path) -> PasswordLookup {
        match self {
            PasswordSource::None => PasswordLookup::Missing,
            PasswordSource::File(path) => read_password_file(path),
            PasswordSource::Dir(dir) => {
                for name in password_candidates(pubkey, keystore_path) {
                    let path = dir.join(&name);
                    if path.is_file() {
                        return read_password_file(&path);
                    }
                }
                PasswordLookup::Missing
            }
        }
    }
}

/// Reads a password file, removing one trailing `\n` or `\r\n`.
pub fn read_password_file(path: &Path) -> PasswordLookup {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            match std::str::from_utf8(&bytes) {
                Ok(text) => PasswordLookup::Found(Zeroizing::new(trim_newline(text).to_string())),
                Err(_) => PasswordLookup::Unreadable(format!(
                    "password file {} is not valid UTF-8",
                    path.display()
                )),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => PasswordLookup::Missing,
        Err(e) => PasswordLookup::Unreadable(format!("{}: {e}", path.display())),
    }
}

/// Removes one trailing `\n` or `\r\n`.
pub fn trim_newline(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip2335_password_processing() {
        let fancy = "\u{1d531}\u{1d522}\u{1d530}\u{1d531}\u{1d52d}\u{1d51e}\u{1d530}\u{1d530}\u{1d534}\u{1d52c}\u{1d52f}\u{1d521}\u{1f511}";
        assert_eq!(
            hex::encode(process_password(fancy).as_slice()),
            "7465737470617373776f7264f09f9491"
        );
        assert_eq!(process_password("a\u{7f}b\u{85}c\n\t").as_slice(), b"abc");
    }

    #[test]
    fn trims_one_newline() {
        assert_eq!(trim_newline("pw\n"), "pw");
        assert_eq!(trim_newline("pw\r\n"), "pw");
        assert_eq!(trim_newline("pw\n\n"), "pw\n");
        assert_eq!(trim_newline("pw"), "pw");
    }

    #[test]
    fn candidates_cover_client_layouts() {
        let names = password_candidates(Some("0xABcd"), Path::new("/k/keystore-m_1.json"));
        assert_eq!(
            names,
            [
                "0xabcd",
                "abcd",
                "abcd.txt",
                "0xabcd.txt",
                "keystore-m_1.txt",
                "keystore-m_1"
            ]
        );
    }
}
