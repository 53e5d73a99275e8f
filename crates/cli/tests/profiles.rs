//! Client profiles, live-lock refusal, hooks, --skip-rebuildable and --verify-keys end to end.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::support;

use support::engines::{keystore, write};
use support::{text, Env, VTOOL};

/// A "client": python holding a POSIX (fcntl) lock on a file until killed.
struct Client(Child);

impl Client {
    fn start(lock: &Path) -> Client {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(
                "import fcntl,sys,time\nf=open(sys.argv[1],'a')\nfcntl.lockf(f, fcntl.LOCK_EX)\n\
                 print('locked', flush=True)\ntime.sleep(60)\n",
            )
            .arg(lock)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 must be installed for this test");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line.trim(), "locked");
        Client(child)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn profiles_json_lists_all_eleven() {
    let out = Command::new(VTOOL)
        .args(["profiles", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for n in [
        "geth",
        "nethermind",
        "besu",
        "erigon",
        "reth",
        "lighthouse",
        "prysm",
        "teku",
        "nimbus",
        "lodestar",
        "agave",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert_eq!(names.len(), 11);
    let geth = &v[0];
    let rules = geth["rules"].as_array().expect("rules");
    assert!(rules
        .iter()
        .any(|r| r["role"] == "jwt_secret" && r["rebuildable"] == false));
    assert!(rules
        .iter()
        .any(|r| r["role"] == "chain_db" && r["rebuildable"] == true));

    let human = Command::new(VTOOL).arg("profiles").output().expect("run");
    let s = String::from_utf8_lossy(&human.stdout);
    assert!(s.contains("MUST KEEP") && s.contains("lighthouse"), "{s}");
}

#[test]
fn live_lock_refuses_and_pre_hook_stops_the_client() {
    let env = Env::with_repo();
    let data = env.path("data");
    write(&data, "db/CURRENT", "MANIFEST-000001\n");
    write(&data, "db/000001.ldb", "table");
    write(&data, "db/LOCK", "");
    let client = Client::start(&data.join("db/LOCK"));
    let pid = client.0.id();
    let d = data.display().to_string();

    let out = env.backup_run(&[&d]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("process {pid} (")), "{err}");
    assert!(err.contains("db/LOCK") && err.contains("--pre"), "{err}");
    assert!(env.snapshots().is_empty());

    // --allow-live backs up anyway, loudly, and says so in the labels.
    let out = env.backup_run(&["--allow-live", "--json", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING"));
    let snaps = env.snapshots();
    assert_eq!(snaps[0]["labels"]["consistency"], "live-locks-ignored");

    // The pre hook stops the "client"; the backup then goes ahead.
    let kill = format!("kill {pid}");
    let marker = env.path("post-ran");
    let post = format!("touch {}", marker.display());
    let out = env.backup_run(&["--pre", &kill, "--post", &post, "--json", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(marker.exists());
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["live_locks_ignored"]
        .as_array()
        .is_some_and(|a| a.is_empty()));
    drop(client);
}

#[test]
fn post_hook_runs_when_backup_or_pre_hook_fails() {
    let env = Env::with_repo();
    let marker = env.path("marker");
    let post = format!("touch {}", marker.display());
    let missing = env.path("does-not-exist").display().to_string();
    let out = env.backup_run(&["--post", &post, &missing]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(marker.exists(), "post hook did not run");

    let data = env.path("data");
    write(&data, "file", "x");
    let d = data.display().to_string();
    let marker2 = env.path("marker2");
    let post2 = format!("touch {}", marker2.display());
    let out = env.backup_run(&["--pre", "echo stopping; exit 7", "--post", &post2, &d]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        marker2.exists(),
        "post hook did not run after a failed pre hook"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("pre hook"));
    assert!(env.snapshots().is_empty());
}

fn geth_datadir(root: &Path) {
    write(root, "geth/chaindata/CURRENT", "MANIFEST-000004\n");
    write(root, "geth/chaindata/000005.ldb", "leveldb table");
    write(root, "geth/chaindata/LOCK", "");
    write(root, "geth/chaindata/ancient/chain/bodies.cidx", "ancient");
    write(root, "geth/nodekey", "nodekey");
    write(root, "geth/jwtsecret", "0xjwt");
    write(root, "keystore/UTC--2024-01-01--abc", "{}");
}

#[test]
fn skip_rebuildable_geth_keeps_keys_and_jwt() {
    let env = Env::with_repo();
    let node = env.path("node");
    geth_datadir(&node);
    let n = node.display().to_string();

    // Detected without --profile.
    let out = env.backup_run(&["--json", "--skip-rebuildable", &n]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["profile"], "geth", "{v}");
    assert_eq!(v["profiles"][0]["detected"], true);
    assert_eq!(v["skip_rebuildable"], true);

    let out = env.backup_run(&["--profile", "geth", "--skip-rebuildable", &n]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("profile      geth"));
    let snaps = env.snapshots();
    let last = snaps.last().expect("snapshot");
    assert_eq!(last["labels"]["profile"], "geth");
    assert_eq!(last["labels"]["skip_rebuildable"], "true");

    let target = env.path("restored");
    env.restore_latest(&target);
    let r = target.join("node");
    assert!(r.join("keystore/UTC--2024-01-01--abc").is_file());
    assert!(r.join("geth/jwtsecret").is_file());
    assert!(r.join("geth/nodekey").is_file());
    assert!(!r.join("geth/chaindata/000005.ldb").exists());
    assert!(!r.join("geth/chaindata/ancient/chain/bodies.cidx").exists());

    // Unknown profile: usage error.
    let out = env.backup_run(&["--profile", "nosuch", &n]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lighthouse"));
}

#[test]
fn skip_rebuildable_ignores_locks_in_skipped_data() {
    let env = Env::with_repo();
    let node = env.path("node");
    geth_datadir(&node);
    let _client = Client::start(&node.join("geth/chaindata/LOCK"));
    let n = node.display().to_string();
    let out = env.backup_run(&[&n]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = env.backup_run(&["--skip-rebuildable", &n]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn lighthouse_validator(root: &Path, password: &str, stored_password: &str) -> String {
    let pubkey = format!("0x{}", "a1".repeat(48));
    write(
        root,
        &format!("validators/{pubkey}/voting-keystore.json"),
        &keystore(&pubkey, password),
    );
    write(root, &format!("secrets/{pubkey}"), stored_password);
    write(root, "validators/slashing_protection.sqlite", "sqlite");
    pubkey
}

#[test]
fn verify_keys_refuses_wrong_password() {
    let env = Env::with_repo();
    let bad = env.path("bad");
    let pubkey = lighthouse_validator(&bad, "right password", "wrong password");
    let b = bad.display().to_string();
    let out = env.backup_run(&["--verify-keys", &b]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WrongPassword") && err.contains(&pubkey[2..]),
        "{err}"
    );
    assert!(env.snapshots().is_empty());

    let good = env.path("good");
    lighthouse_validator(&good, "right password", "right password\n");
    let g = good.display().to_string();
    let secrets = good.join("secrets").display().to_string();
    let out = env.backup_run(&["--verify-keys", "--passwords", &secrets, "--json", &g]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["profile"], "lighthouse");
}

#[test]
fn live_precopy_marks_first_pass_inconsistent() {
    let env = Env::with_repo();
    let data = env.path("data");
    write(&data, "db/CURRENT", "MANIFEST-000001\n");
    write(&data, "db/000001.ldb", &"x".repeat(100_000));
    write(&data, "db/LOCK", "");
    let client = Client::start(&data.join("db/LOCK"));
    let kill = format!("kill {}", client.0.id());
    let d = data.display().to_string();
    let out = env.backup_run(&["--live-precopy", "--pre", &kill, "--json", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let precopy = v["precopy_snapshot"]
        .as_str()
        .expect("precopy id")
        .to_string();
    // The second pass read nothing new: the files cache knew every file.
    assert_eq!(v["files_read"], 0, "{v}");
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    let first = snaps
        .iter()
        .find(|s| s["id"] == precopy.as_str())
        .expect("precopy listed");
    assert_eq!(first["labels"]["consistency"], "precopy-incomplete");
    assert!(first["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "precopy")));
    let real = snaps
        .iter()
        .find(|s| s["id"] != precopy.as_str())
        .expect("real snapshot");
    assert!(real["labels"].get("consistency").is_none());
    drop(client);
}

#[test]
fn failed_second_pass_never_makes_the_precopy_latest() {
    let env = Env::with_repo();
    let data = env.path("data");
    write(&data, "db/000001.ldb", &"y".repeat(100_000));
    let d = data.display().to_string();
    let out = env.backup_run(&["--live-precopy", "--pre", "exit 7", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1, "the precopy pass is kept");
    assert_eq!(snaps[0]["labels"]["incomplete"], "true");

    // `latest` does not restore the inconsistent first pass; its id still does.
    let target = env.path("restored");
    let t = target.display().to_string();
    let out = env.with_identity("restore", &["latest", "--target", &t]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!target.join("data").exists());
    let id = snaps[0]["id"].as_str().expect("id");
    let out = env.with_identity("restore", &[id, "--target", &t]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn restore_warns_about_definitions_pointing_at_missing_keystores() {
    let env = Env::with_repo();
    let node = env.path("node");
    write(&node, "validators/0xab/voting-keystore.json", "{}");
    let present = node.join("validators/0xab/voting-keystore.json");
    // Flow style and an escaped quote: a line-based reader saw neither path.
    let defs = format!(
        "---\n- {{enabled: true, voting_keystore_path: \"{}\", voting_keystore_password_path: \"/gone/secrets/0x\\\"ab\\\"\"}}\n",
        present.display()
    );
    write(&node, "validators/validator_definitions.yml", &defs);
    // Chain data beside it, restored too but never parsed.
    write(&node, "beacon/chain_db/validator_definitions.txt", "-");
    env.backup(&[node.to_str().expect("utf-8")]);

    let target = env.path("restored");
    let out = env.with_identity(
        "restore",
        &["latest", "--target", target.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("/gone/secrets/0x\"ab\""), "{stderr}");
    assert!(
        warnings[0].contains("restored/node/validators/validator_definitions.yml"),
        "{stderr}"
    );
}
