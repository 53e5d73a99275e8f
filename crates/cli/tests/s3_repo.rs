//! A repository on `s3://bucket/prefix` in moto, a real S3 server on loopback: init, backup,
//! restore with verification, check of the data, and copies between it and a local directory,
//! restored byte-identical.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use support::{engines, s, text, Env};
use vtool_testkit::moto::Moto;
use vtool_testkit::tree::{assert_same, Compare};

const PUBKEY: &str = "0xa1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn s3_env(env: &mut Env, moto: &Moto) {
    set_env(env, moto.env());
}

/// Point `env`'s vtool runs at an S3 store through these variables.
pub(crate) fn set_env(env: &mut Env, vars: Vec<(&'static str, String)>) {
    env.vars = vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
}

pub(crate) fn node(root: &Path) {
    let keys = root.join("validators").join(PUBKEY);
    fs::create_dir_all(&keys).expect("mkdir");
    fs::create_dir_all(root.join("chaindata")).expect("mkdir");
    let big: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    fs::write(root.join("chaindata/000001.ldb"), big).expect("write");
    let keystore = keys.join("voting-keystore.json");
    fs::write(&keystore, engines::keystore(PUBKEY, "password")).expect("write");
    fs::set_permissions(&keystore, fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Restore `repo` (any URL) with --verify and require it identical to `source`, modes included.
pub(crate) fn restore_identical(env: &Env, repo: &str, target: &Path, source: &Path) {
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
        "--no-gate",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without a gate"),
        "{}",
        text(&out)
    );
    assert_same(source, &target.join("node"), Compare::CONTENTS_AND_MODES);
}

pub(crate) fn check_read_data(env: &Env, repo: &str) {
    let id = env.identity();
    let check: Value = env.json(&[
        "check",
        "--repo",
        repo,
        "--read-data",
        "--identity",
        &id,
        "--json",
    ]);
    assert_eq!(check["ok"], true, "{check:#}");
}

#[test]
fn backup_restore_check_and_copy_on_an_s3_repository() {
    let moto = Moto::start();
    moto.create_bucket("vault");
    let mut env = Env::new();
    s3_env(&mut env, &moto);
    env.repo_url = Some("s3://vault/nodes/one".into());
    let (repo, id, bk) = (env.repo(), env.identity(), env.backup_key());
    let created = env.json(&[
        "init",
        "--repo",
        &repo,
        "--identity-out",
        &id,
        "--backup-key-out",
        &bk,
        "--json",
    ]);
    // moto refuses a second `If-None-Match: *` PUT, and init recorded that.
    assert_eq!(created["conditional_put"], true, "{created}");
    let source = env.path("node");
    node(&source);
    let first = env.backup(&[s(&source)]);
    assert_eq!(first["files"], 2, "{first:#}");
    // The second backup deduplicates against the stored index: the same snapshot content.
    let second = env.backup(&[s(&source)]);
    assert_eq!(
        second["snapshot"]["fingerprint"],
        first["snapshot"]["fingerprint"]
    );
    let repo = env.repo();
    restore_identical(&env, &repo, &env.path("from-s3"), &source);
    check_read_data(&env, &repo);

    // s3 -> local, then local -> another prefix of the bucket; each restores identical.
    let local = env.path("drive/node1");
    let offsite = "s3://vault/nodes/offsite";
    for (from, to) in [(repo.as_str(), s(&local)), (s(&local), offsite)] {
        let copied = env.json(&["copy", "--from", from, "--to", to, "--json"]);
        assert!(
            copied["total"]["copied_objects"].as_u64().unwrap_or(0) > 0,
            "{copied:#}"
        );
        let again = env.json(&["copy", "--from", from, "--to", to, "--json"]);
        assert_eq!(again["total"]["copied_objects"], 0, "{again:#}");
        check_read_data(&env, to);
    }
    restore_identical(&env, s(&local), &env.path("from-drive"), &source);
    restore_identical(&env, offsite, &env.path("from-offsite"), &source);

    // A prefix that holds nothing is no repository: a usage error with the reason.
    let out = env.run(&["snapshots", "--repo", "s3://vault/nodes/none"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not a vtool repository"),
        "{}",
        text(&out)
    );
}

/// Object Lock: init refuses it where the bucket has none (leaving nothing behind); where
/// it has, every object restores need is retained, and a prune keeps forgotten snapshots
/// until their retention ends instead of failing on refused deletes.
#[test]
fn object_lock_retains_the_repository_and_prune_waits_for_it() {
    let moto = Moto::start();
    moto.create_bucket("open");
    moto.create_locked_bucket("worm");
    let mut env = Env::new();
    s3_env(&mut env, &moto);
    let (id, bk) = (env.identity(), env.backup_key());
    let init = |repo: &str, extra: &[&str]| {
        let mut args = vec![
            "init",
            "--repo",
            repo,
            "--identity-out",
            &id,
            "--backup-key-out",
            &bk,
            "--json",
        ];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let refused = init("s3://open/repo", &["--object-lock-days", "1"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("has no Object Lock"),
        "{}",
        text(&refused)
    );
    assert!(!Path::new(&id).exists() && !Path::new(&bk).exists());
    let local = env.path("local");
    let out = env.run(&[
        "init",
        "--repo",
        s(&local),
        "--identity-out",
        &id,
        "--backup-key-out",
        &bk,
        "--object-lock-days",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("needs an s3:// repository"),
        "{}",
        text(&out)
    );

    let created: Value =
        serde_json::from_slice(&init("s3://worm/repo", &["--object-lock-days", "1"]).stdout)
            .expect("init --json");
    assert_eq!(created["object_lock"], true, "{created}");
    assert_eq!(created["object_lock_days"], 1, "{created}");
    assert!(moto.retain_until("worm", "repo/config").is_some());
    env.repo_url = Some("s3://worm/repo".into());
    let source = env.path("node");
    node(&source);
    env.backup(&[s(&source)]);
    fs::write(source.join("chaindata/000002.ldb"), vec![7u8; 3 << 20]).expect("write");
    env.backup(&[s(&source)]);
    let repo = env.repo();
    let forgot = env.json(&[
        "forget",
        "--repo",
        &repo,
        "--backup-key",
        &bk,
        "--keep-last",
        "1",
        "--json",
    ]);
    assert_eq!(
        forgot["groups"][0]["removed"].as_array().map(Vec::len),
        Some(1),
        "{forgot:#}"
    );
    let pruned = env.json(&[
        "prune",
        "--repo",
        &repo,
        "--backup-key",
        &bk,
        "--grace",
        "0",
        "--json",
    ]);
    assert!(pruned["retained"].as_u64().unwrap_or(0) >= 6, "{pruned:#}");
    assert!(
        pruned["refused"].as_array().is_some_and(Vec::is_empty),
        "{pruned:#}"
    );
    assert!(
        pruned["purged"].as_array().is_some_and(Vec::is_empty),
        "{pruned:#}"
    );
    let reason = pruned["pending"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Object Lock"), "{pruned:#}");
    // Both snapshots' objects are still stored; the kept one restores identical.
    assert_eq!(moto.versions("worm", "repo/snapshots/"), 2);
    restore_identical(&env, &repo, &env.path("restored"), &source);
    check_read_data(&env, &repo);

    // A copy to a new location on a locked bucket can retain too.
    let copy = "s3://worm/copy";
    env.json(&[
        "copy",
        "--from",
        &repo,
        "--to",
        copy,
        "--object-lock-days",
        "1",
        "--json",
    ]);
    assert!(moto.retain_until("worm", "copy/config").is_some());
    check_read_data(&env, copy);

    // The endpoint settings as options instead of variables.
    env.vars.retain(|(k, _)| !k.starts_with("VTOOL_S3_"));
    let out = env.run(&["snapshots", "--repo", copy]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let listed = env.json(&[
        "snapshots",
        "--repo",
        copy,
        "--s3-endpoint",
        &moto.endpoint(),
        "--s3-path-style",
        "--json",
    ]);
    // Copies carry snapshots, never trash: the forgotten one is there too.
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed:#}");
}

/// Backup and restore through a network that answers 503 SlowDown, resets connections and
/// cuts bodies short: both complete, and the repository read directly checks clean.
#[test]
fn backup_and_restore_through_injected_faults_store_and_return_exact_bytes() {
    use vtool_testkit::faulty::FaultyProxy;
    let moto = Moto::start();
    moto.create_bucket("flaky");
    let proxy = FaultyProxy::start(moto.port, 7);
    let mut env = Env::new();
    let vars = moto.env().into_iter().map(|(k, v)| match k {
        "VTOOL_S3_ENDPOINT" => (k, proxy.endpoint()),
        _ => (k, v),
    });
    set_env(&mut env, vars.collect());
    env.repo_url = Some("s3://flaky/repo".into());
    env.init();
    let source = env.path("node");
    node(&source);
    env.backup(&[s(&source)]);
    let repo = env.repo();
    restore_identical(&env, &repo, &env.path("restored"), &source);
    assert!(proxy.log().len() >= 3, "{:?}", proxy.log());
    s3_env(&mut env, &moto);
    check_read_data(&env, &repo);
}

/// SFTP to S3 and back: each copy restores identical, a re-run copies nothing, and a copy
/// into a destination that lost objects brings back exactly those.
#[test]
fn copies_between_sftp_and_s3_resume_and_restore_identical() {
    use vtool_testkit::sshd::Sshd;
    use vtool_transfer::{Backend, S3Backend};
    let server = Sshd::start();
    let moto = Moto::start();
    moto.create_bucket("vault");
    let mut env = Env::new();
    s3_env(&mut env, &moto);
    env.vars.extend(crate::sftp_repo::ssh_vars(&server));
    let sftp = server.url(&server.dir.path().join("repo"));
    env.repo_url = Some(sftp.clone());
    env.init();
    let source = env.path("node");
    node(&source);
    env.backup(&[s(&source)]);
    let s3 = "s3://vault/copy";
    let back = server.url(&server.dir.path().join("back"));
    for (from, to) in [(sftp.as_str(), s3), (s3, back.as_str())] {
        let copied = env.json(&["copy", "--from", from, "--to", to, "--json"]);
        let total = copied["total"]["copied_objects"].as_u64().unwrap_or(0);
        assert!(total > 0, "{copied:#}");
        let again = env.json(&["copy", "--from", from, "--to", to, "--json"]);
        assert_eq!(again["total"]["copied_objects"], 0, "{again:#}");
        check_read_data(&env, to);
    }
    restore_identical(&env, s3, &env.path("from-s3"), &source);
    restore_identical(&env, &back, &env.path("from-back"), &source);

    // As if a copy had been interrupted: the destination lacks its packs and snapshots.
    let dest = S3Backend::open(moto.config("vault", "copy")).expect("open");
    let mut lost = 0;
    for dir in ["packs", "snapshots"] {
        for o in dest.list(dir).expect("list") {
            dest.delete(&o.name).expect("delete");
            lost += 1;
        }
    }
    let resumed = env.json(&["copy", "--from", &sftp, "--to", s3, "--json"]);
    assert_eq!(resumed["total"]["copied_objects"], lost, "{resumed:#}");
    check_read_data(&env, s3);
    restore_identical(&env, s3, &env.path("from-s3-again"), &source);
}
