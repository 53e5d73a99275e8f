//! Keystore discovery and password checks over generated keystores in client layouts.

use std::path::Path;
use std::time::Instant;

use vtool_validator::{
    check_keystores, create_keystore, find_keystores, CheckOptions, KdfChoice, KeyStatus,
    KeystoreJson, Layout, NewKeystore, PasswordSource,
};

fn pubkey(i: usize) -> String {
    format!("{:096x}", 0xa000_0000u64 + i as u64)
}

fn make(i: usize, password: &str, kdf: KdfChoice) -> KeystoreJson {
    create_keystore(
        &[i as u8; 32],
        password,
        &NewKeystore {
            pubkey: &pubkey(i),
            path: &format!("m/12381/3600/{i}/0/0"),
            description: None,
            kdf,
        },
    )
    .expect("create keystore")
}

fn write(path: &Path, json: &KeystoreJson) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, serde_json::to_string_pretty(json).expect("json")).expect("write");
}

const FAST: KdfChoice = KdfChoice::Pbkdf2 { c: 2 };

#[test]
fn reports_every_status_across_layouts() {
    let root = tempfile::tempdir().expect("tempdir");
    let d = root.path();
    let secrets = d.join("secrets");
    std::fs::create_dir(&secrets).expect("mkdir");

    // 0: lighthouse, right password (with trailing newline in the file).
    write(
        &d.join(format!("validators/0x{}/voting-keystore.json", pubkey(0))),
        &make(0, "pw-0", FAST),
    );
    std::fs::write(secrets.join(format!("0x{}", pubkey(0))), "pw-0\n").expect("pw");
    // 1: nimbus, wrong password.
    write(
        &d.join(format!("validators/0x{}/keystore.json", pubkey(1))),
        &make(1, "pw-1", FAST),
    );
    std::fs::write(secrets.join(pubkey(1)), "not-it").expect("pw");
    // 2: teku keys dir, password named `<pubkey>.txt`.
    write(&d.join("teku/keys/v2.json"), &make(2, "pw-2", FAST));
    std::fs::write(secrets.join(format!("{}.txt", pubkey(2))), "pw-2\r\n").expect("pw");
    // 3: generic deposit-cli name, no password anywhere.
    write(
        &d.join("keystore-m_12381_3600_3_0_0-1.json"),
        &make(3, "pw-3", FAST),
    );
    // 4: malformed JSON in a lodestar keystores dir.
    std::fs::create_dir_all(d.join("lodestar/keystores")).expect("mkdir");
    std::fs::write(d.join("lodestar/keystores/broken.json"), "{\"crypto\": ").expect("write");
    // 5: duplicate of key 0 (a stale copy), teku password named after the file.
    write(&d.join("teku/keys/copy-of-0.json"), &make(0, "pw-0", FAST));
    // 6: prysm all-accounts file listing two pubkeys, wallet password by file name.
    let mut prysm = make(6, "wallet", FAST);
    prysm.pubkey = None;
    prysm.pubkeys = Some(vec![pubkey(6), format!("0x{}", pubkey(7))]);
    write(
        &d.join("prysm/direct/accounts/all-accounts.keystore.json"),
        &prysm,
    );
    std::fs::write(secrets.join("all-accounts.keystore.txt"), "wallet").expect("pw");
    // 7: prysm file without pubkeys: one entry named by file (same password file name, other
    // wallet password).
    let mut prysm2 = make(8, "other-wallet", FAST);
    prysm2.pubkey = None;
    write(&d.join("prysm2/all-accounts.keystore.json"), &prysm2);
    // Not keystores.
    std::fs::write(d.join("teku/keys/deposit_data-1.json"), "[]").expect("write");
    std::fs::write(d.join("slashing_protection.json"), "{}").expect("write");

    let found = find_keystores(d).expect("find");
    assert_eq!(found.len(), 8, "{found:#?}");

    let report = check_keystores(
        d,
        &CheckOptions {
            passwords: PasswordSource::Dir(secrets.clone()),
            ..CheckOptions::default()
        },
    )
    .expect("check");
    let status_of = |needle: &str| -> Vec<KeyStatus> {
        report
            .keys
            .iter()
            .filter(|k| k.path.to_string_lossy().contains(needle))
            .map(|k| k.status.clone())
            .collect()
    };
    let teku_copy = d.join("teku/keys/copy-of-0.json");
    // Path order decides which copy of key 0 is proven: `teku/…` sorts before `validators/…`.
    assert_eq!(status_of("copy-of-0.json"), [KeyStatus::Ok]);
    assert_eq!(
        status_of("voting-keystore.json"),
        [KeyStatus::DuplicatePubkey(teku_copy)]
    );
    assert_eq!(status_of("/keystore.json"), [KeyStatus::WrongPassword]);
    assert_eq!(status_of("v2.json"), [KeyStatus::Ok]);
    assert_eq!(status_of("keystore-m_"), [KeyStatus::MissingPassword]);
    assert!(matches!(
        status_of("broken.json").as_slice(),
        [KeyStatus::Malformed(_)]
    ));
    assert_eq!(status_of("prysm/direct"), [KeyStatus::Ok, KeyStatus::Ok]);
    assert_eq!(status_of("prysm2/"), [KeyStatus::WrongPassword]);
    let prysm_keys: Vec<_> = report
        .keys
        .iter()
        .filter(|k| k.layout == Layout::PrysmAllAccounts)
        .map(|k| k.pubkey.clone())
        .collect();
    assert_eq!(
        prysm_keys,
        [
            Some(format!("0x{}", pubkey(6))),
            Some(format!("0x{}", pubkey(7))),
            None
        ]
    );
    assert!(!report.all_ok());
}

/// 200 scrypt keystores (reduced `n = 2^14`, `r = 8`: 16 MiB each) are checked on every core
/// while never exceeding `max(1, budget / 16 MiB)` concurrent derivations.
#[test]
fn scrypt_checks_use_all_cores_within_budget() {
    const LOG_N: u8 = 14;
    const PER_KEY: u64 = 128 * 8 * (1 << LOG_N);
    let root = tempfile::tempdir().expect("tempdir");
    let keys = root.path().join("keys");
    let template = make(0, "secret", KdfChoice::Scrypt { log_n: LOG_N });
    for i in 0..200 {
        let mut ks = template.clone();
        // The checksum does not cover the pubkey: each copy stands for another validator and
        // still costs a full scrypt derivation.
        ks.pubkey = Some(pubkey(i));
        write(&keys.join(format!("k{i:03}.json")), &ks);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = rayon::current_num_threads();

    for budget in [2 * PER_KEY + PER_KEY / 2, PER_KEY] {
        let limit = (budget / PER_KEY).max(1) as usize;
        let start = Instant::now();
        let report = check_keystores(
            root.path(),
            &CheckOptions {
                passwords: PasswordSource::File({
                    let p = root.path().join("pw");
                    std::fs::write(&p, "secret\n").expect("pw");
                    p
                }),
                memory_budget: budget,
            },
        )
        .expect("check");
        let elapsed = start.elapsed();
        assert_eq!(report.keys.len(), 200);
        assert!(
            report.all_ok(),
            "{:?}",
            report.keys.iter().find(|k| k.status != KeyStatus::Ok)
        );
        let stats = report.stats;
        eprintln!(
            "budget {} MiB ({} per key): limit {limit}, peak {} derivations, peak {} MiB, \
             {cores} cores / {threads} rayon threads, {elapsed:.2?}",
            budget >> 20,
            PER_KEY >> 20,
            stats.peak_concurrent,
            stats.peak_memory >> 20,
        );
        assert!(
            stats.peak_concurrent <= limit,
            "{stats:?} over limit {limit}"
        );
        assert!(stats.peak_memory <= budget.max(PER_KEY), "{stats:?}");
        if limit >= 2 && threads >= 2 {
            assert_eq!(stats.peak_concurrent, 2, "both cores should derive at once");
        }
    }
}
