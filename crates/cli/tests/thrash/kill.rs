//! kill -9 at random points of `vtool backup` and `vtool copy`. After each kill the
//! repository passes `check` and `check --packs` (which also reports the temporary files the
//! kill left), a re-run completes and removes them once they are stale, and the restore is
//! byte-identical to the source.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::kit::{
    age_temp_files, checks_pass, must, restores_identical, scenario_rng, temp_files, trials, Tally,
};
use crate::support::{s, Env, VTOOL};
use vtool_testkit::node::{rewrite_node, write_node};

/// Fresh data per trial: several chunks and at least two data packs.
const NODE_MIB: usize = 24;
/// Trials per repository before starting a new one, so checks stay cheap at large counts.
const TRIALS_PER_REPO: usize = 6;

/// Start `args`, SIGKILL it after `delay`; whether it was still running then.
fn kill_after(env: &Env, args: &[&str], delay: Duration) -> bool {
    let mut child: Child = env
        .command(VTOOL, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vtool");
    sleep(delay);
    let running = matches!(child.try_wait(), Ok(None));
    child.kill().ok();
    child.wait().expect("reap vtool");
    running
}

/// How long `args` takes to run to completion, which must succeed.
fn timed(env: &Env, args: &[&str]) -> Duration {
    let t = Instant::now();
    must(env, args).unwrap_or_else(|e| panic!("{e}"));
    t.elapsed()
}

/// What a kill may leave: check passes and reports the temporary files, then `rerun`
/// completes and removes them once they are an hour old (or a check reports them).
fn recover(
    env: &Env,
    repo: &Path,
    repo_exists: bool,
    rerun: &[&str],
    tally: &mut Tally,
) -> Result<(), String> {
    let left = temp_files(repo);
    if repo_exists {
        let reported = checks_pass(env, s(repo))?;
        if reported < left.len() as u64 {
            return Err(format!(
                "check reported {reported} temporary files, {} are there: {left:?}",
                left.len()
            ));
        }
    } else {
        tally.note("killed before config existed");
    }
    if !left.is_empty() {
        tally.note("left temp files");
    }
    age_temp_files(&left);
    must(env, rerun)?;
    let kept: Vec<_> = left.iter().filter(|f| f.exists()).collect();
    if !kept.is_empty() {
        let reported = checks_pass(env, s(repo))?;
        if reported < kept.len() as u64 {
            return Err(format!(
                "stale temporary files neither removed by the re-run nor reported: {kept:?}"
            ));
        }
        tally.note("temp files kept but reported");
    }
    Ok(())
}

pub fn backup_kills() {
    let mut rng = scenario_rng("kill-backup");
    let mut tally = Tally::new("kill-backup");
    let mut setup: Option<(Env, Duration)> = None;
    for trial in 0..trials(6) {
        if trial % TRIALS_PER_REPO == 0 {
            let env = Env::with_repo();
            write_node(&mut rng, &env.path("node"), NODE_MIB);
            let (repo, bk, src) = (env.repo(), env.backup_key(), env.path("node"));
            let full = timed(
                &env,
                &["backup", "--repo", &repo, "--backup-key", &bk, s(&src)],
            );
            setup = Some((env, full));
        }
        let (env, full) = setup.as_ref().expect("set up above");
        let (repo, bk, src) = (env.repo(), env.backup_key(), env.path("node"));
        let args = ["backup", "--repo", &repo, "--backup-key", &bk, s(&src)];
        rewrite_node(&mut rng, &src, NODE_MIB);
        let delay = rng.delay(*full);
        if kill_after(env, &args, delay) {
            tally.note("killed while running");
        }
        let outcome = recover(env, Path::new(&repo), true, &args, &mut tally)
            .and_then(|()| restores_identical(env, &repo, "latest", &src, &env.path("restored")));
        tally.record(outcome);
    }
    tally.finish();
}

pub fn copy_kills() {
    let mut rng = scenario_rng("kill-copy");
    let mut tally = Tally::new("kill-copy");
    let env = Env::with_repo();
    let (repo, bk) = (env.repo(), env.backup_key());
    // Two snapshots of two states of a node, both to be restored from every copy.
    let mut states = Vec::new();
    for v in ["v1", "v2"] {
        let src = env.path(&format!("{v}/node"));
        write_node(&mut rng, &src, NODE_MIB);
        let out = must(
            &env,
            &[
                "backup",
                "--repo",
                &repo,
                "--backup-key",
                &bk,
                "--json",
                s(&src),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let summary: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("backup summary");
        let id = summary["snapshot"]
            .as_str()
            .expect("snapshot id")
            .to_string();
        states.push((id, src));
    }
    let dest = env.path("dest");
    let args = ["copy", "--from", &repo, "--to", s(&dest)];
    let full = timed(&env, &args);
    for _ in 0..trials(6) {
        fs::remove_dir_all(&dest).ok();
        // The cache is per repository id, which the copy shares: restore from the copy alone.
        fs::remove_dir_all(env.path("cache")).ok();
        let delay = rng.delay(full);
        if kill_after(&env, &args, delay) {
            tally.note("killed while running");
        }
        let exists = dest.join("config").exists();
        let outcome = recover(&env, &dest, exists, &args, &mut tally).and_then(|()| {
            states.iter().try_for_each(|(id, src)| {
                restores_identical(&env, s(&dest), id, src, &env.path("restored"))
            })
        });
        tally.record(outcome);
    }
    tally.finish();
}

/// kill -9 during `forget` and `prune`: each trial makes garbage (a new backup of changed
/// data), then kills one of the two at a random point. check passes after every kill (with
/// at worst unreferenced packs, a note), the re-run completes, and the newest snapshot and
/// the oldest one the rules keep restore byte-identical.
pub fn retention_kills() {
    let mut rng = scenario_rng("kill-retention");
    let mut tally = Tally::new("kill-retention");
    let env = Env::with_repo();
    let (repo, bk, src) = (env.repo(), env.backup_key(), env.path("node"));
    let backup = ["backup", "--repo", &repo, "--backup-key", &bk, s(&src)];
    write_node(&mut rng, &src, 8);
    timed(&env, &backup);
    let forget = [
        "forget",
        "--repo",
        &repo,
        "--backup-key",
        &bk,
        "--keep-last",
        "1",
    ];
    let prune = [
        "prune",
        "--repo",
        &repo,
        "--backup-key",
        &bk,
        "--grace",
        "0s",
    ];
    // How long each took when it ran to completion on comparable work: kills land inside.
    let mut full = [Duration::from_millis(30), Duration::from_millis(100)];
    for trial in 0..trials(48) {
        rewrite_node(&mut rng, &src, 8);
        if let Err(e) = must(&env, &backup) {
            tally.record(Err(e));
            continue;
        }
        let which = trial % 2;
        let args: &[&str] = if which == 0 { &forget } else { &prune };
        if which == 1 {
            // Garbage for the prune to work on.
            if let Err(e) = must(&env, &forget) {
                tally.record(Err(e));
                continue;
            }
        }
        let delay = rng.delay(full[which]);
        if kill_after(&env, args, delay) {
            tally.note(if which == 0 {
                "forget killed while running"
            } else {
                "prune killed while running"
            });
        }
        let outcome = checks_pass(&env, &repo)
            .and_then(|_| {
                let t = Instant::now();
                must(&env, args)?;
                full[which] = t.elapsed();
                must(&env, &prune)
            })
            .and_then(|_| checks_pass(&env, &repo))
            .and_then(|_| restores_identical(&env, &repo, "latest", &src, &env.path("restored")));
        tally.record(outcome);
    }
    tally.finish();
}
