//! Concurrent backups of different sources into one repository, sharing some content so
//! both store the same blobs at once: both snapshots restore byte-identical.

use std::fs;
use std::process::Stdio;

use super::kit::{checks_pass, restores_identical, scenario_rng, trials, Tally};
use crate::support::{s, text, Env, VTOOL};
use vtool_testkit::node::{rewrite_node, write_node};

const NODE_MIB: usize = 12;
const TRIALS_PER_REPO: usize = 6;

/// Both backups at once; their snapshot ids.
fn backup_both(env: &Env, sources: &[std::path::PathBuf; 2]) -> Result<[String; 2], String> {
    let (repo, bk) = (env.repo(), env.backup_key());
    let children: Vec<_> = sources
        .iter()
        .map(|src| {
            env.command(
                VTOOL,
                &[
                    "backup",
                    "--repo",
                    &repo,
                    "--backup-key",
                    &bk,
                    "--json",
                    s(src),
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vtool")
        })
        .collect();
    let mut ids = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait for vtool");
        if out.status.code() != Some(0) {
            return Err(format!("concurrent backup failed\n{}", text(&out)));
        }
        let summary: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", text(&out)))?;
        let id = summary["snapshot"].as_str().ok_or("no snapshot id")?;
        ids.push(id.to_string());
    }
    Ok([ids[0].clone(), ids[1].clone()])
}

pub fn concurrent_backups() {
    let mut rng = scenario_rng("concurrent-backup");
    let mut tally = Tally::new("concurrent-backup");
    let mut env: Option<Env> = None;
    for trial in 0..trials(4) {
        if trial % TRIALS_PER_REPO == 0 {
            env = Some(Env::with_repo());
        }
        let env = env.as_ref().expect("set up above");
        let sources = [env.path("a/node"), env.path("b/node")];
        let shared = rng.bytes(3 << 20);
        for src in &sources {
            if src.exists() {
                rewrite_node(&mut rng, src, NODE_MIB);
            } else {
                write_node(&mut rng, src, NODE_MIB);
            }
            fs::write(src.join("chain/shared.bin"), &shared).expect("write");
        }
        let outcome = backup_both(env, &sources).and_then(|ids| {
            checks_pass(env, &env.repo())?;
            ids.iter().zip(&sources).try_for_each(|(id, src)| {
                restores_identical(env, &env.repo(), id, src, &env.path("restored"))
            })
        });
        tally.record(outcome);
    }
    tally.finish();
}
