//! What the thrash scenarios share: a seeded random source, generated node directories,
//! comparing a restore with its source, temporary files, and tallying trials.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::{s, text, Env};

/// Trials per scenario: `VTOOL_THRASH_TRIALS`, else a count that keeps CI short.
pub fn trials(default: usize) -> usize {
    std::env::var("VTOOL_THRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: reproducible from the seed printed with every summary
/// (`VTOOL_THRASH_SEED` replays a run).
pub struct Rng(u64);

impl Rng {
    pub fn for_scenario(name: &str) -> Rng {
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
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// A random duration in `0..max`.
    pub fn delay(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.below(max.as_micros().max(1) as u64))
    }
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
        format!(r#"{{"version":4,"uuid":"{:016x}"}}"#, rng.next()),
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

/// Every entry under `root` by relative path: mode and kind, with file bytes and link targets.
fn listing(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).expect("readdir") {
            let e = e.expect("entry");
            let rel = rel.join(e.file_name());
            let meta = e.path().symlink_metadata().expect("lstat");
            let body = if meta.file_type().is_symlink() {
                fs::read_link(e.path())
                    .expect("readlink")
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                stack.push(rel.clone());
                Vec::new()
            } else {
                fs::read(e.path()).expect("read")
            };
            out.insert(rel.display().to_string(), (meta.mode(), body));
        }
    }
    out
}

/// `Ok` when `restored` holds exactly `source`: the same entries, kinds, modes, bytes and
/// link targets.
pub fn same_tree(source: &Path, restored: &Path) -> Result<(), String> {
    let (a, b) = (listing(source), listing(restored));
    let mut diff = String::new();
    for (path, entry) in &a {
        match b.get(path) {
            None => writeln!(diff, "missing {path}").ok(),
            Some(got) if got.0 != entry.0 => {
                writeln!(diff, "{path}: mode {:o}, not {:o}", got.0, entry.0).ok()
            }
            Some(got) if got.1 != entry.1 => writeln!(diff, "{path}: wrong bytes").ok(),
            Some(_) => None,
        };
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        writeln!(diff, "extra {path}").ok();
    }
    if diff.is_empty() {
        Ok(())
    } else {
        Err(format!("restore of {} differs:\n{diff}", source.display()))
    }
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
        .filter(|(path, (mode, body))| {
            // Only regular files with content: restores may leave empty placeholders.
            (*mode & 0o170000) == 0o100000
                && !body.is_empty()
                && a.get(path).is_some_and(|want| &want.1 != body)
        })
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
