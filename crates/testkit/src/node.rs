//! Generated node directories: what a validator's data looks like to a backup.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::tree::set_mtimes;
use crate::Rng;

pub const TABLE_SIZE: usize = 2 << 20;
pub const FREEZER_SIZE: usize = 8 << 20;
pub const TABLES: [&str; 3] = ["000004.ldb", "000007.ldb", "000009.ldb"];

fn write_mode(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn keystore_json(i: u32, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let hex: String = rng.bytes(32).iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{{\n  \"crypto\": {{\"kdf\": {{\"function\": \"scrypt\"}}, \"cipher\": {{\"message\": \"{hex}\"}}}},\n  \"path\": \"m/12381/3600/{i}/0/0\",\n  \"pubkey\": \"{:096x}\",\n  \"version\": 4\n}}\n",
        0xa000_0000u64 + i as u64
    )
}

/// Build a validator-like directory at `root` (which must not exist):
///
/// ```text
/// root/
///   beacon/chaindata/0000NN.ldb   incompressible ~2 MiB tables
///   beacon/chaindata/CURRENT      small text file
///   beacon/ancient/bodies.cdat    compressible append-only freezer, ~8 MiB
///   beacon/LOCK                   empty file
///   validator/keystores/ (0700)   keystore-N.json (0600)
///   validator/slashing.json       small file
///   bin/start.sh (0755)
///   empty/                        empty directory
///   data -> beacon/chaindata      relative symlink
///   dangling -> /nonexistent/x    dangling symlink
/// ```
///
/// Every entry gets a distinct mtime with a non-zero nanosecond part.
pub fn make_validator_dir(root: &Path) {
    let mut rng = Rng::new(42);
    let chain = root.join("beacon/chaindata");
    let ancient = root.join("beacon/ancient");
    let keystores = root.join("validator/keystores");
    for d in [
        &chain,
        &ancient,
        &keystores,
        &root.join("bin"),
        &root.join("empty"),
    ] {
        fs::create_dir_all(d).expect("mkdir");
    }
    for t in TABLES {
        write_mode(&chain.join(t), &rng.bytes(TABLE_SIZE), 0o644);
    }
    write_mode(&chain.join("CURRENT"), b"MANIFEST-000011\n", 0o644);
    write_mode(
        &ancient.join("bodies.cdat"),
        &rng.records(FREEZER_SIZE, 0),
        0o644,
    );
    write_mode(&root.join("beacon/LOCK"), b"", 0o644);
    for i in 0..3 {
        write_mode(
            &keystores.join(format!("keystore-{i}.json")),
            keystore_json(i, 100 + i as u64).as_bytes(),
            0o600,
        );
    }
    fs::set_permissions(&keystores, fs::Permissions::from_mode(0o700)).expect("chmod");
    write_mode(
        &root.join("validator/slashing.json"),
        b"{\"metadata\":{\"interchange_format_version\":\"5\"},\"data\":[]}\n",
        0o640,
    );
    write_mode(
        &root.join("bin/start.sh"),
        b"#!/bin/sh\nexec lighthouse bn --datadir \"$(dirname \"$0\")/../beacon\"\n",
        0o755,
    );
    std::os::unix::fs::symlink("beacon/chaindata", root.join("data")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/x", root.join("dangling")).expect("symlink");
    set_mtimes(root, 1_700_000_000);
}

/// A node directory at `root` like a validator's: incompressible chain data spanning several
/// chunks and packs, a compressible log, a keystore, a nested directory and a symlink.
/// `fresh_mib` MiB of new random data each call, so every backup has work to do.
pub fn write_node(rng: &mut Rng, root: &Path, fresh_mib: usize) {
    fs::create_dir_all(root.join("chain/ancient")).expect("mkdir");
    fs::create_dir_all(root.join("validator/keys")).expect("mkdir");
    let mut left = fresh_mib << 20;
    let mut i = 0;
    while left > 0 {
        let len = (left).min((1 << 20) + rng.below(5 << 20) as usize);
        fs::write(
            root.join(format!("chain/ancient/seg{i}.bin")),
            rng.bytes(len),
        )
        .expect("write");
        left -= len;
        i += 1;
    }
    let log: String = (0..20_000)
        .map(|n| format!("slot {} ok\n", rng.below(1 << 20) + n))
        .collect();
    fs::write(root.join("chain/LOG"), log).expect("write");
    fs::write(
        root.join("validator/keys/keystore-0.json"),
        format!(r#"{{"version":4,"uuid":"{:016x}"}}"#, rng.next_u64()),
    )
    .expect("write");
    let secret = root.join("validator/keys/secret");
    fs::write(&secret, rng.bytes(32)).expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = root.join("chain/current");
    if link.symlink_metadata().is_err() {
        symlink("ancient/seg0.bin", &link).expect("symlink");
    }
}

/// Replace a node's chain data with `fresh_mib` MiB of new bytes.
pub fn rewrite_node(rng: &mut Rng, root: &Path, fresh_mib: usize) {
    fs::remove_dir_all(root.join("chain/ancient")).expect("rm");
    write_node(rng, root, fresh_mib);
}
