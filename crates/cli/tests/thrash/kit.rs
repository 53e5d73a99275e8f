//! What the thrash scenarios share: a seeded random source per scenario, comparing a
//! restore with its source, temporary files, and tallying trials.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use vtool_testkit::tree::{compare, listing, Compare, Kind};
pub use vtool_testkit::Rng;

use crate::support::{s, text, Env};

/// Trials per scenario: `VTOOL_THRASH_TRIALS`, else a count that keeps CI short.
pub fn trials(default: usize) -> usize {
    std::env::var("VTOOL_THRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The scenario's random source, reproducible from the seed it prints
/// (`VTOOL_THRASH_SEED` replays a run).
pub fn scenario_rng(name: &str) -> Rng {
    let seed = std::env::var("VTOOL_THRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("thrash {name}: seed {seed}");
    Rng::new(seed)
}

/// `Ok` when `restored` holds exactly `source`: the same entries, kinds, modes, bytes and
/// link targets.
pub fn same_tree(source: &Path, restored: &Path) -> Result<(), String> {
    compare(source, restored, Compare::CONTENTS_AND_MODES)
        .map_err(|diff| format!("restore of {} differs:\n{diff}", source.display()))
}

/// `Ok` when every regular file under `restored` that is also in `source` has its bytes:
/// what a failed restore did write must still be right.
pub fn nothing_wrong_written(source: &Path, restored: &Path) -> Result<(), String> {
    if !restored.exists() {
        return Ok(());
    }
    let a = listing(source);
    let wrong: Vec<String> = listing(restored)
        .into_iter()
        .filter(
            |(path, got)| match (&got.kind, a.get(path).map(|e| &e.kind)) {
                // Only regular files with content: restores may leave empty placeholders.
                (Kind::File(body), Some(Kind::File(want))) => !body.is_empty() && want != body,
                _ => false,
            },
        )
        .map(|(path, _)| path)
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("restore wrote wrong bytes to {wrong:?}"))
    }
}

/// Temporary `.tmp-*` files anywhere in a local repository.
pub fn temp_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if e.file_name().to_string_lossy().starts_with(".tmp-") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Make temporary files look abandoned two hours ago, past the one-hour staleness threshold.
pub fn age_temp_files(files: &[PathBuf]) {
    let then = SystemTime::now() - Duration::from_secs(2 * 3600);
    for f in files {
        fs::File::options()
            .write(true)
            .open(f)
            .and_then(|f| f.set_modified(then))
            .expect("backdate temp file");
    }
}

/// Run a vtool command whose outcome a trial depends on: its exit code, or an error when it
/// crashed (a panic or a signal is always a failure).
pub fn code_of(env: &Env, args: &[&str]) -> Result<(i32, std::process::Output), String> {
    let out = env.run(args);
    match out.status.code() {
        Some(101) | None => Err(format!("vtool {} crashed\n{}", args.join(" "), text(&out))),
        Some(c) => Ok((c, out)),
    }
}

/// Run and require exit 0.
pub fn must(env: &Env, args: &[&str]) -> Result<std::process::Output, String> {
    match code_of(env, args)? {
        (0, out) => Ok(out),
        (_, out) => Err(format!("vtool {} failed\n{}", args.join(" "), text(&out))),
    }
}

/// `check` and `check --packs` on `repo` pass; returns the temporary files the first reported.
pub fn checks_pass(env: &Env, repo: &str) -> Result<u64, String> {
    let out = must(env, &["check", "--repo", repo, "--json"])?;
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    must(env, &["check", "--repo", repo, "--packs"])?;
    Ok(report["temp_files"]["files"].as_u64().unwrap_or(0))
}

/// Restore snapshot `spec` of `repo` into a fresh `target` and compare it with `source`.
pub fn restores_identical(
    env: &Env,
    repo: &str,
    spec: &str,
    source: &Path,
    target: &Path,
) -> Result<(), String> {
    if target.exists() {
        fs::remove_dir_all(target).map_err(|e| e.to_string())?;
    }
    let id = env.identity();
    must(
        env,
        &[
            "restore",
            "--repo",
            repo,
            "--identity",
            &id,
            spec,
            "--target",
            s(target),
        ],
    )?;
    let name = source.file_name().expect("source name");
    same_tree(source, &target.join(name))
}

/// Outcomes of one scenario's trials.
pub struct Tally {
    name: String,
    pub trials: u64,
    pub held: u64,
    pub failures: Vec<String>,
    /// Extra counts printed with the summary (e.g. how many kills hit a running process).
    pub notes: BTreeMap<String, u64>,
}

impl Tally {
    pub fn new(name: &str) -> Tally {
        Tally {
            name: name.to_string(),
            trials: 0,
            held: 0,
            failures: Vec::new(),
            notes: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, outcome: Result<(), String>) {
        self.trials += 1;
        match outcome {
            Ok(()) => self.held += 1,
            Err(why) => {
                eprintln!("thrash {} trial {} failed: {why}", self.name, self.trials);
                self.failures.push(format!("trial {}: {why}", self.trials));
            }
        }
    }

    pub fn note(&mut self, what: &str) {
        *self.notes.entry(what.to_string()).or_default() += 1;
    }

    /// Print the summary line bench/thrash.sh collects; the failures, if any.
    pub fn report(self) -> Option<String> {
        let notes: String = self
            .notes
            .iter()
            .map(|(k, v)| format!(", {k} {v}"))
            .collect();
        let line = format!(
            "thrash {}: trials {}, held {}, failed {}{notes}",
            self.name,
            self.trials,
            self.held,
            self.failures.len()
        );
        println!("{line}");
        (!self.failures.is_empty()).then(|| format!("{line}\n{}", self.failures.join("\n---\n")))
    }

    /// [`Tally::report`], failing the test on any failed trial.
    pub fn finish(self) {
        if let Some(failures) = self.report() {
            panic!("{failures}");
        }
    }
}
