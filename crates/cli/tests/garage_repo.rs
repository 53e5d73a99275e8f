//! A repository on a real distributed store: a three-node Garage cluster on loopback with
//! replication factor 3 (writes need two nodes). Backups survive one node dying mid-run,
//! fail cleanly with two down and complete when they are back, and a vtool killed mid-backup
//! leaves a repository that checks clean and a re-run completes.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::s3_repo::{check_read_data, restore_identical, set_env};
use crate::support::{s, text, Env, VTOOL};
use vtool_testkit::garage::Garage;
use vtool_testkit::Rng;
use vtool_transfer::{Backend, S3Backend};

const BUCKET: &str = "vtool";
const PREFIX: &str = "node1";

/// A node directory with a keystore and `mib` MiB more of incompressible data in 8 MiB
/// files, so that a backup writes several packs and takes long enough to be interrupted.
fn node(root: &Path, mib: usize, seed: u64) {
    crate::s3_repo::node(root);
    let mut rng = Rng::new(seed);
    for i in 0..mib.div_ceil(8) {
        fs::write(
            root.join(format!("chaindata/big{i:04}.ldb")),
            rng.bytes(8 << 20),
        )
        .expect("write");
    }
}

/// A cluster with the bucket, and an initialised repository on it.
fn setup() -> (Garage, Env) {
    let garage = Garage::start();
    garage.create_bucket(BUCKET);
    let mut env = Env::new();
    set_env(&mut env, garage.env());
    env.repo_url = Some(format!("s3://{BUCKET}/{PREFIX}"));
    env.init();
    (garage, env)
}

fn spawn_backup(env: &Env, source: &Path) -> Child {
    let (repo, bk) = (env.repo(), env.backup_key());
    env.command(
        VTOOL,
        &["backup", "--repo", &repo, "--backup-key", &bk, s(source)],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn vtool backup")
}

/// Wait until the repository holds at least `n` packs more than `before`, while `child`
/// still runs: the backup is then demonstrably midway.
fn wait_for_packs(garage: &Garage, child: &mut Child, before: usize, n: usize) {
    let backend = S3Backend::open(garage.config(BUCKET, PREFIX)).expect("open");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let packs = backend.list("packs").expect("list packs").len();
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the backup ended before it could be interrupted ({packs} packs)"
        );
        if packs >= before + n {
            return;
        }
        assert!(Instant::now() < deadline, "no packs appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn packs(garage: &Garage) -> usize {
    S3Backend::open(garage.config(BUCKET, PREFIX))
        .expect("open")
        .list("packs")
        .expect("list")
        .len()
}

#[test]
fn a_backup_completes_with_one_of_three_garage_nodes_killed_midway() {
    let (mut garage, env) = setup();
    let source = env.path("node");
    node(&source, 160, 1);
    let mut backup = spawn_backup(&env, &source);
    wait_for_packs(&garage, &mut backup, 0, 1);
    garage.kill(2);
    let out = backup.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(env.snapshots().len(), 1);
    // Two nodes are a read quorum too: everything reads back with one still down.
    let repo = env.repo();
    restore_identical(&env, &repo, &env.path("restored"), &source);
    check_read_data(&env, &repo);
    garage.restart(2);
}

#[test]
fn two_garage_nodes_down_fail_cleanly_and_a_rerun_completes_once_they_are_back() {
    let (mut garage, env) = setup();
    let source = env.path("node");
    node(&source, 24, 2);
    env.backup(&[s(&source)]);
    node(&source, 24, 3);
    garage.kill(1);
    garage.kill(2);
    let started = Instant::now();
    let out = env.backup_run(&[s(&source)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("s3://vtool/node1") && said.contains("error"),
        "the error names the repository: {said}"
    );
    eprintln!("failed after {:?}: {said}", started.elapsed());
    garage.restart(1);
    garage.restart(2);
    // No snapshot was written, and what is there is intact.
    assert_eq!(env.snapshots().len(), 1);
    let repo = env.repo();
    check_read_data(&env, &repo);
    env.backup(&[s(&source)]);
    assert_eq!(env.snapshots().len(), 2);
    restore_identical(&env, &repo, &env.path("restored"), &source);
    check_read_data(&env, &repo);
}

#[test]
fn vtool_killed_mid_backup_on_garage_leaves_a_clean_repository_and_a_rerun_completes() {
    let (garage, env) = setup();
    let source = env.path("node");
    node(&source, 160, 4);
    let mut backup = spawn_backup(&env, &source);
    wait_for_packs(&garage, &mut backup, 0, 2);
    backup.kill().expect("SIGKILL vtool");
    backup.wait().expect("reap");
    assert!(packs(&garage) >= 2);
    assert_eq!(env.snapshots().len(), 0);
    let repo = env.repo();
    let check = env.json(&["check", "--repo", &repo, "--packs", "--json"]);
    assert_eq!(check["ok"], true, "{check:#}");
    env.backup(&[s(&source)]);
    restore_identical(&env, &repo, &env.path("restored"), &source);
    check_read_data(&env, &repo);
}
