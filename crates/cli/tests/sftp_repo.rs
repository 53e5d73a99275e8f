//! Every repository command on an `sftp://` repository served by a real OpenSSH sshd on
//! loopback, and the replication story end to end: a backup copied to an SFTP server and to
//! a "drive", checked there without a key, and restored from either, byte-identical.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use support::{s, text, Env};
use vtool_testkit::sshd::{self, Sshd};
use vtool_testkit::tree::{assert_same, Compare};

fn ssh_env(env: &mut Env, server: &Sshd) {
    env.vars = ssh_vars(server);
}

/// What vtool needs to reach `server`: its client key and known_hosts.
pub(crate) fn ssh_vars(server: &Sshd) -> Vec<(String, String)> {
    vec![
        ("VTOOL_SSH_KEY".into(), s(&server.user_key).into()),
        (
            "VTOOL_SSH_KNOWN_HOSTS".into(),
            s(&server.known_hosts).into(),
        ),
    ]
}

fn node(root: &Path) {
    fs::create_dir_all(root.join("validators/0xabc")).expect("mkdir");
    fs::create_dir_all(root.join("chaindata")).expect("mkdir");
    let big: Vec<u8> = (0..5u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(root.join("chaindata/000001.ldb"), big).expect("write");
    fs::write(
        root.join("validators/0xabc/voting-keystore.json"),
        "{\"crypto\":{}}",
    )
    .expect("write");
    fs::set_permissions(
        root.join("validators/0xabc/voting-keystore.json"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    fs::set_permissions(
        root.join("validators/0xabc"),
        fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
}

/// Restore `repo` (any URL) and require it identical to `source`, modes included.
fn restore_identical(env: &Env, repo: &str, target: &Path, source: &Path) {
    let id = env.identity();
    let out = env.run(&[
        "restore",
        "--repo",
        repo,
        "--identity",
        &id,
        "latest",
        "--target",
        s(target),
        "--verify",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_same(source, &target.join("node"), Compare::CONTENTS_AND_MODES);
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    let rel = "validators/0xabc/voting-keystore.json";
    assert_eq!(mode(&target.join("node").join(rel)), 0o600);
    assert_eq!(mode(&target.join("node/validators/0xabc")), 0o700);
}

#[test]
fn every_command_works_on_an_sftp_repository() {
    let server = Sshd::start();
    let mut env = Env::new();
    ssh_env(&mut env, &server);
    env.repo_url = Some(server.url(&server.dir.path().join("repo")));
    env.init();
    let source = env.path("node");
    node(&source);
    let first = env.backup(&[s(&source)]);
    assert_eq!(first["files"], 2, "{first:#}");
    // The second backup deduplicates against the remote index: nothing new is stored.
    let second = env.backup(&[s(&source)]);
    assert_eq!(
        second["snapshot"]["fingerprint"],
        first["snapshot"]["fingerprint"]
    );

    let repo = env.repo();
    let snaps = env.json(&["snapshots", "--repo", &repo, "--json"]);
    assert_eq!(snaps.as_array().map(Vec::len), Some(2));

    restore_identical(&env, &repo, &env.path("restored"), &source);

    let id = env.identity();
    let check: Value = env.json(&[
        "check",
        "--repo",
        &repo,
        "--read-data",
        "--identity",
        &id,
        "--json",
    ]);
    assert_eq!(check["ok"], true, "{check:#}");
    let packs: Value = env.json(&["check", "--repo", &repo, "--packs", "--json"]);
    assert_eq!(packs["ok"], true);
    assert!(packs["counts"]["packs_hashed"].as_u64().unwrap_or(0) >= 2);

    let drill = env.json(&[
        "drill",
        "--repo",
        &repo,
        "--identity",
        &id,
        "--json",
        "--boot",
        "test -s {dir}/node/chaindata/000001.ldb",
    ]);
    assert_eq!(drill["drill"]["passed"], true, "{drill:#}");
    let drills = env.json(&["drills", "--repo", &repo, "--identity", &id, "--json"]);
    assert_eq!(drills["drills"][0]["authenticity"], "authentic");
}

#[test]
fn a_backup_copied_to_sftp_and_to_a_drive_checks_and_restores_from_both() {
    let server = Sshd::start();
    let mut env = Env::with_repo();
    ssh_env(&mut env, &server);
    let source = env.path("node");
    node(&source);
    env.backup(&[s(&source)]);
    let local = env.repo();
    let remote = server.url(&server.dir.path().join("offsite"));
    let drive = env.path("drive/node1");

    for dest in [remote.as_str(), s(&drive)] {
        let copied = env.json(&["copy", "--from", &local, "--to", dest, "--json"]);
        assert!(
            copied["total"]["copied_objects"].as_u64().unwrap_or(0) > 0,
            "{copied:#}"
        );
        // A re-run finds everything there already.
        let again = env.json(&["copy", "--from", &local, "--to", dest, "--json"]);
        assert_eq!(again["total"]["copied_objects"], 0, "{again:#}");
        // Checked on arrival by someone without any key.
        let packs = env.json(&["check", "--repo", dest, "--packs", "--json"]);
        assert_eq!(packs["ok"], true, "{packs:#}");
    }
    assert!(drive.join("README.txt").exists());
    // The fingerprints read over the phone match at both ends.
    let fingerprints = |repo: &str| {
        env.json(&["snapshots", "--repo", repo, "--json"])
            .as_array()
            .expect("array")
            .iter()
            .map(|s| s["fingerprint"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(fingerprints(&remote), fingerprints(&local));
    assert_eq!(fingerprints(s(&drive)), fingerprints(&local));

    restore_identical(&env, &remote, &env.path("from-sftp"), &source);
    restore_identical(&env, s(&drive), &env.path("from-drive"), &source);
}

#[test]
fn a_wrong_host_key_is_refused_with_advice() {
    let server = Sshd::start();
    let mut env = Env::new();
    ssh_env(&mut env, &server);
    // known_hosts names another key for this host:port.
    let other = env.path("other_host_key");
    sshd::keygen(&other);
    let other_pub = fs::read_to_string(other.with_extension("pub")).expect("pub");
    let kh = env.path("known_hosts");
    fs::write(&kh, format!("[127.0.0.1]:{} {other_pub}", server.port)).expect("write");
    env.vars[1].1 = s(&kh).into();
    env.repo_url = Some(server.url(&server.dir.path().join("repo")));
    let repo = env.repo();
    let out = env.run(&["snapshots", "--repo", &repo]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("host key"), "{}", text(&out));
    assert!(!server.dir.path().join("repo").exists());
}

#[test]
fn backups_work_on_storage_that_cannot_delete_and_prune_says_it_refused() {
    let server = Sshd::start_append_only();
    let mut env = Env::new();
    ssh_env(&mut env, &server);
    env.repo_url = Some(server.url(&server.dir.path().join("repo")));
    env.init();
    let source = env.path("node");
    node(&source);
    env.backup(&[s(&source)]);
    fs::write(source.join("chaindata/000002.ldb"), b"another table").expect("write");
    env.backup(&[s(&source)]);
    let repo = env.repo();
    let bk = env.backup_key();
    env.ok(
        &[
            "forget",
            "--repo",
            &repo,
            "--backup-key",
            &bk,
            "--keep-last",
            "1",
        ],
        0,
    );
    let out = env.run(&[
        "prune",
        "--repo",
        &repo,
        "--backup-key",
        &bk,
        "--grace",
        "0s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the storage refused to delete") && err.contains("append-only"),
        "{err}"
    );
    // Nothing was lost: the forgotten snapshot is still there and comes back with undo…
    let snaps = fs::read_dir(server.dir.path().join("repo/snapshots"))
        .expect("snapshots")
        .count();
    assert_eq!(snaps, 2);
    let check: Value = env.json(&["check", "--repo", &repo, "--packs", "--json"]);
    assert_eq!(check["ok"], true, "{check:#}");
    // …which needs deleting too, and says so just as clearly.
    let out = env.run(&["prune", "--repo", &repo, "--backup-key", &bk, "--undo"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("refuses deletes"), "{}", text(&out));
    restore_identical(&env, &repo, &env.path("restored"), &source);
}
