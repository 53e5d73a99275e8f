//! The EIP-2335 test vectors (fixtures/eip2335) verify through the checksum.

use std::path::{Path, PathBuf};

use vtool_validator::{check_keystores, CheckOptions, KeyStatus, Keystore, Layout, PasswordSource};

const SECRET: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
const PUBKEY: &str = "0x9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/eip2335")
}

fn vectors() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/eip2335")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn password() -> String {
    std::fs::read_to_string(fixtures().join("password.txt")).expect("password.txt")
}

#[test]
fn all_vectors_verify_and_decrypt() {
    let password = password();
    let files = vectors();
    assert_eq!(files.len(), 2, "scrypt and pbkdf2 vectors");
    for file in &files {
        let ks = Keystore::from_file(file).expect("parse vector");
        assert_eq!(ks.pubkey.as_deref(), Some(PUBKEY));
        assert!(
            ks.verify_password(&password).expect("derive"),
            "{} must verify",
            file.display()
        );
        assert!(!ks.verify_password("testpassword").expect("derive"));
        assert_eq!(hex::encode(ks.decrypt(&password).expect("decrypt")), SECRET);
    }
}

#[test]
fn vectors_check_in_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).expect("mkdir");
    let files = vectors();
    for file in &files {
        std::fs::copy(file, keys.join(file.file_name().expect("name"))).expect("copy");
    }
    let report = check_keystores(
        dir.path(),
        &CheckOptions {
            passwords: PasswordSource::File(fixtures().join("password.txt")),
            ..CheckOptions::default()
        },
    )
    .expect("check");
    assert_eq!(report.keys.len(), 2);
    // Both vectors hold the same key: the first in path order is proven, the second is a duplicate.
    assert_eq!(report.keys[0].status, KeyStatus::Ok);
    assert_eq!(report.keys[0].layout, Layout::KeystoreDir);
    assert_eq!(
        report.keys[1].status,
        KeyStatus::DuplicatePubkey(report.keys[0].path.clone())
    );
}
