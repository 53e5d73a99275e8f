//! Realistic data directories of several client profiles, with databases written by the real
//! engines (RocksDB for Teku, Besu and Agave; SQLite for Nimbus and slashing protection) and
//! EIP-2335 keystores: detected, backed up, restored and booted, with and without the
//! rebuildable chain data; and a database a real process holds open is refused until a hook
//! stops it.

use crate::support;

use std::fs;
use std::path::Path;

use serde_json::Value;
use support::engines::{self, keystore, write, Running};
use support::{s, text, Env, VTOOL};

const PUBKEY: &str = "0xb1a2c3d4e5f6b1a2c3d4e5f6b1a2c3d4e5f6b1a2c3d4e5f6b1a2c3d4e5f6b1a2c3d4e5f6b1a2c3d4e5f6b1a2c3d4e5f6";
const PASSWORD: &str = "correct horse battery staple";

/// One client's data directory: how to make it, what must survive `--skip-rebuildable`,
/// what it leaves out, and the commands that prove a restored copy works.
struct Node {
    profile: &'static str,
    make: fn(&Path),
    kept: &'static [&'static str],
    rebuildable: &'static str,
    /// `{dir}` is the restored copy of the data directory.
    boots: &'static [(&'static str, &'static str)],
}

fn teku(d: &Path) {
    write(d, "beacon/db.version", "6");
    engines::rocksdb(
        &d.join("beacon/db"),
        &[("finalized", "epoch-100"), ("head", "slot-3232")],
    );
    write(d, "beacon/kvstore/generated-node-key.dat", "0x1234");
    write(
        d,
        &format!("validator/slashprotection/{}.yml", &PUBKEY[2..]),
        "---\nmetadataVersion: 1\nlastSignedBlockSlot: 3232\nlastSignedAttestationSourceEpoch: 99\nlastSignedAttestationTargetEpoch: 100\n",
    );
    write(
        d,
        &format!("validator/key-manager/local/{PUBKEY}.json"),
        &keystore(PUBKEY, PASSWORD),
    );
    write(
        d,
        &format!("validator/key-manager/local-passwords/{PUBKEY}.txt"),
        PASSWORD,
    );
}

fn nimbus(d: &Path) {
    engines::sqlite(
        &d.join("db/nbc.sqlite3"),
        "PRAGMA journal_mode=WAL; CREATE TABLE kvstore (key BLOB PRIMARY KEY, value BLOB);\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
         INSERT INTO kvstore SELECT randomblob(8), randomblob(200) FROM n;\
         PRAGMA wal_checkpoint(TRUNCATE);",
    );
    engines::sqlite(
        &d.join("validators/slashing_protection.sqlite3"),
        "CREATE TABLE validators (id INTEGER PRIMARY KEY, public_key BLOB NOT NULL UNIQUE);\
         CREATE TABLE signed_blocks (validator_id INTEGER, slot INTEGER, signing_root BLOB);\
         INSERT INTO validators (public_key) VALUES (x'b1a2');\
         INSERT INTO signed_blocks VALUES (1, 3232, randomblob(32));",
    );
    write(
        d,
        &format!("validators/{PUBKEY}/keystore.json"),
        &keystore(PUBKEY, PASSWORD),
    );
    write(d, &format!("secrets/{PUBKEY}"), PASSWORD);
}

fn besu(d: &Path) {
    engines::rocksdb(
        &d.join("database"),
        &[("world-state", "root-0xabc"), ("block:1", "rlp")],
    );
    write(d, "database/DATABASE_METADATA.json", "{\"version\":2}");
    write(
        d,
        "key",
        "0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    );
    write(
        d,
        "jwt.hex",
        "0xfeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface",
    );
}

fn agave(d: &Path) {
    engines::rocksdb(
        &d.join("ledger/rocksdb"),
        &[("slot:250000000", "shreds"), ("root", "250000000")],
    );
    write(d, "ledger/genesis.bin", "genesis");
    write(
        d,
        "ledger/tower-1_9-7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2.bin",
        "tower",
    );
    write(
        d,
        "ledger/snapshot-250000000-abc.tar.zst",
        "snapshot archive",
    );
    write(d, "validator-keypair.json", "[1,2,3]");
    write(d, "vote-account-keypair.json", "[4,5,6]");
}

fn nodes() -> Vec<Node> {
    vec![
        Node {
            profile: "teku",
            make: teku,
            kept: &["validator/slashprotection", "validator/key-manager/local", "beacon/kvstore/generated-node-key.dat"],
            rebuildable: "beacon/db",
            boots: &[
                ("ldb --db={dir}/beacon/db checkconsistency && ldb --db={dir}/beacon/db get head", "^OK$[\\s\\S]*slot-3232"),
                ("{vtool} keys check {dir}/validator/key-manager/local --passwords {dir}/validator/key-manager/local-passwords", "1 of 1 keystores proven"),
            ],
        },
        Node {
            profile: "nimbus",
            make: nimbus,
            kept: &["validators/slashing_protection.sqlite3", "secrets"],
            rebuildable: "db/nbc.sqlite3",
            boots: &[
                ("sqlite3 {dir}/db/nbc.sqlite3 'PRAGMA integrity_check; SELECT count(*) FROM kvstore;'", "^ok\\n2000$"),
                ("sqlite3 {dir}/validators/slashing_protection.sqlite3 'PRAGMA integrity_check'", "^ok$"),
                ("{vtool} keys check {dir}/validators --passwords {dir}/secrets", "1 of 1 keystores proven"),
            ],
        },
        Node {
            profile: "besu",
            make: besu,
            kept: &["key", "jwt.hex"],
            rebuildable: "database",
            boots: &[("ldb --db={dir}/database checkconsistency && ldb --db={dir}/database get world-state", "^OK$[\\s\\S]*root-0xabc")],
        },
        Node {
            profile: "agave",
            make: agave,
            kept: &["ledger/tower-1_9-7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2.bin", "validator-keypair.json", "ledger/genesis.bin"],
            rebuildable: "ledger/rocksdb",
            boots: &[("ldb --db={dir}/ledger/rocksdb checkconsistency && ldb --db={dir}/ledger/rocksdb get root", "^OK$[\\s\\S]*250000000")],
        },
    ]
}

/// Drill the latest snapshot with `node`'s boot commands, run on the data directory inside.
fn drill(env: &Env, node: &Node, name: &str) -> Value {
    let mut args = vec!["--json".to_string()];
    for (cmd, expect) in node.boots {
        args.push("--boot".into());
        args.push(
            cmd.replace("{dir}", &format!("{{dir}}/{name}"))
                .replace("{vtool}", VTOOL),
        );
        args.push("--expect".into());
        args.push(expect.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.with_identity("drill", &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} drill\n{}",
        node.profile,
        text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn each_profile_is_detected_backed_up_restored_and_boots() {
    for node in nodes() {
        let env = Env::with_repo();
        let name = format!("{}-data", node.profile);
        let dir = env.path(&name);
        (node.make)(&dir);
        let summary = env.backup(&[s(&dir)]);
        assert_eq!(summary["profile"], node.profile, "{summary:#}");

        let v = drill(&env, &node, &name);
        assert_eq!(v["drill"]["passed"], true, "{v:#}");
        assert_eq!(v["drill"]["verified"], true);

        let target = env.path("restored");
        env.restore_latest(&target);
        let status = std::process::Command::new("diff")
            .args(["-r", s(&dir), s(&target.join(&name))])
            .status()
            .expect("diff");
        assert!(status.success(), "{}: restored tree differs", node.profile);
    }
}

#[test]
fn skip_rebuildable_keeps_what_must_never_be_skipped() {
    for node in nodes() {
        let env = Env::with_repo();
        let name = format!("{}-data", node.profile);
        let dir = env.path(&name);
        (node.make)(&dir);
        env.backup(&["--skip-rebuildable", s(&dir)]);
        let target = env.path("restored");
        env.restore_latest(&target);
        let restored = target.join(&name);
        for kept in node.kept {
            assert!(
                restored.join(kept).exists(),
                "{}: {kept} was skipped",
                node.profile
            );
        }
        // The directory itself may stay (empty); none of its data does.
        let skipped = restored.join(node.rebuildable);
        assert!(
            !skipped.is_file() && fs::read_dir(&skipped).map_or(true, |mut d| d.next().is_none()),
            "{}: {} was not skipped",
            node.profile,
            node.rebuildable
        );
    }
}

#[test]
fn open_rocksdb_is_refused_until_the_pre_hook_stops_it() {
    let env = Env::with_repo();
    let dir = env.path("besu-data");
    besu(&dir);
    let client = Running::rocksdb(&dir.join("database"));

    let out = env.backup_run(&[s(&dir)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database/LOCK") && err.contains("db_bench"),
        "{err}"
    );
    assert!(err.contains("--pre"), "no advice: {err}");
    assert!(env.snapshots().is_empty());

    let started = env.path("started-again");
    // Like `systemctl stop`: returns once the database is closed. (The test process, not
    // init, reaps the child, so wait for the lock rather than the process.)
    let pid = client.pid();
    let pre = format!("kill {pid}; while grep -q ' {pid} ' /proc/locks; do sleep 0.05; done");
    let post = format!("touch {}", s(&started));
    let summary = env.backup(&["--pre", &pre, "--post", &post, s(&dir)]);
    assert_eq!(summary["profile"], "besu");
    assert!(started.exists(), "the post hook did not run");
    drop(client);

    let besu = nodes()
        .into_iter()
        .find(|n| n.profile == "besu")
        .expect("besu");
    drill(&env, &besu, "besu-data");
}

#[test]
fn open_sqlite_in_wal_mode_is_refused() {
    let env = Env::with_repo();
    let dir = env.path("nimbus-data");
    nimbus(&dir);
    let client = Running::sqlite(&dir.join("db/nbc.sqlite3"));
    let out = env.backup_run(&[s(&dir)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nbc.sqlite3") && err.contains("sqlite3"),
        "{err}"
    );
    drop(client);
    let summary = env.backup(&[s(&dir)]);
    assert_eq!(summary["profile"], "nimbus");
}
