//! `vtool backup`: client profiles, consistency checks and hooks around the backup engine.
//!
//! Order of events:
//! 1. profiles are resolved (`--profile`, else detected per path) and, with `--verify-keys`,
//!    every keystore must open with its password (exit 1 otherwise);
//! 2. the client version is asked (`--version-cmd` or the profile's binary) while the client
//!    still runs;
//! 3. with `--live-precopy`, a first pass reads everything while the client runs; its snapshot
//!    is tagged `precopy` and labelled `consistency=precopy-incomplete` (never restore it as a
//!    consistent backup); it fills the repository and the files cache so the next pass reads
//!    only what changed;
//! 4. the `--pre` hook runs (`sh -c`); a failing hook aborts with exit 2;
//! 5. live locks are checked (after a pre hook, vtool waits up to `--lock-wait` seconds for
//!    them to go away); a held lock refuses the backup with exit 2 unless `--allow-live`;
//! 6. the backup runs;
//! 7. the `--post` hook runs whatever happened before (also when an earlier step failed or
//!    refused), so a service stopped by `--pre` is started again; a failing post hook turns
//!    a successful run into exit 2 (the snapshot is kept).
//!
//! Hook output goes to stderr so `--json` output stays clean.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use vtool_snapshot::keys::BackupKey;
use vtool_snapshot::{BackupOptions, BackupReport, Warning};
use vtool_validator::profiles::{self, BackupPlan, LiveLock, Target};
use vtool_validator::{check_keystores, KeyStatus};

use super::{PasswordArgs, RepoArg};
use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    /// The backup key from `vtool init --backup-key-out`.
    #[arg(long, env = "VTOOL_BACKUP_KEY")]
    backup_key: PathBuf,
    /// Label the snapshot (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Leave out paths matching this glob, matched against the absolute path and the name
    /// (`*` and `?` stay inside one component, `**` crosses any number of them).
    #[arg(long = "exclude")]
    excludes: Vec<String>,
    /// Do not use the local cache (every file is read).
    #[arg(long)]
    no_cache: bool,
    #[arg(long)]
    json: bool,
    /// Record this time (RFC 3339, e.g. 2026-11-30T03:00:00Z) as the snapshot's time instead
    /// of now: for importing older backups and trying retention policies.
    #[arg(long, value_parser = parse_time)]
    time: Option<time::OffsetDateTime>,
    /// Client profile of every path (see `vtool profiles`); detected per path when absent.
    #[arg(long)]
    profile: Option<String>,
    /// Leave out what the client rebuilds by syncing (chain databases, ancient/static files);
    /// keys, secrets, slashing protection, JWT secret, node key and config are always kept.
    #[arg(long)]
    skip_rebuildable: bool,
    /// Command printing the client version (run with `sh -c`), e.g. 'docker exec geth geth
    /// version'; default: the profile's binary if it is on PATH.
    #[arg(long)]
    version_cmd: Option<String>,
    /// Run before reading the data (`sh -c`), e.g. 'systemctl stop lighthouse-bn'. If it
    /// fails the backup is not made (exit 2); the --post hook still runs.
    #[arg(long)]
    pre: Option<String>,
    /// Run at the end, always: also when the backup, the pre hook or the lock check failed.
    #[arg(long)]
    post: Option<String>,
    /// Seconds to wait, after the pre hook, for the client to release its locks.
    #[arg(long, default_value_t = 30)]
    lock_wait: u64,
    /// Back up even though a client holds its database locks (the copy may be inconsistent).
    #[arg(long)]
    allow_live: bool,
    /// First read everything while the client runs (snapshot tagged `precopy`, labelled
    /// `consistency=precopy-incomplete`), then run --pre and make the real snapshot, which
    /// reads only the files changed since.
    #[arg(long)]
    live_precopy: bool,
    /// Leave the files' pages in the page cache. By default a backup drops the pages it has
    /// read, so the repository's bulk does not evict the node's cache; with --allow-live and
    /// during --live-precopy's first pass the cache is kept, since the client is using it.
    #[arg(long)]
    keep_page_cache: bool,
    /// Before the backup, prove that every keystore under the paths opens with its password;
    /// refuse (exit 1) otherwise.
    #[arg(long)]
    verify_keys: bool,
    /// With --verify-keys: where the passwords are, and the memory to prove them in.
    #[command(flatten)]
    passwords: PasswordArgs,
    /// Directories and files to back up.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Summary<'a> {
    snapshot: String,
    fingerprint: String,
    files: u64,
    files_read: u64,
    files_unchanged: u64,
    bytes: u64,
    bytes_read: u64,
    bytes_added_stored: u64,
    /// Snapshot bytes per new byte stored (dedup and compression together); null when
    /// nothing new was stored.
    dedup_ratio: Option<f64>,
    duration_secs: f64,
    warnings: &'a [Warning],
    /// Profiles used, per path (`profile` null where none applied).
    profiles: &'a [Target],
    /// The `profile` label (comma-separated names), if any.
    profile: Option<String>,
    client_version: Option<String>,
    skip_rebuildable: bool,
    /// The first pass of --live-precopy (not consistent; do not restore it as a backup).
    precopy_snapshot: Option<String>,
    /// Locks that were held while reading (--allow-live).
    live_locks_ignored: &'a [LiveLock],
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let result = run_inner(&a);
    if let Some(post) = &a.post {
        if let Err(e) = run_hook("post", post) {
            if result.is_ok() {
                return Err(e.context("the backup finished, but the post hook failed"));
            }
            eprintln!("error: {e:#}");
        }
    }
    result
}

fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{e}; give an RFC 3339 time such as 2026-11-30T03:00:00Z"))
}

/// Run a hook with `sh -c`, its output on our stderr.
fn run_hook(which: &str, cmd: &str) -> anyhow::Result<()> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("cannot run the {which} hook {cmd:?}"))?;
    if !status.success() {
        bail!("the {which} hook {cmd:?} failed ({status})");
    }
    Ok(())
}

/// Prove every keystore under the paths; `Some(No)` when one is not proven.
fn verify_keys(a: &Args) -> anyhow::Result<Option<Outcome>> {
    let mut total = 0;
    let mut bad = Vec::new();
    for path in &a.paths {
        let opts = a.passwords.check_options(path);
        let report = check_keystores(path, &opts)
            .with_context(|| format!("cannot check the keystores in {}", path.display()))?;
        total += report.keys.len();
        for k in &report.keys {
            if k.status != KeyStatus::Ok {
                bad.push(format!(
                    "  {:?} {} {}",
                    k.status,
                    k.pubkey.as_deref().unwrap_or("-"),
                    k.path.display()
                ));
            }
        }
    }
    if total == 0 {
        eprintln!("refusing to back up: --verify-keys found no keystore under the paths");
        return Ok(Some(Outcome::No));
    }
    if !bad.is_empty() {
        eprintln!(
            "refusing to back up: {} of {total} keystore(s) are not proven to open with their \
             password:\n{}",
            bad.len(),
            bad.join("\n")
        );
        return Ok(Some(Outcome::No));
    }
    if !a.json {
        eprintln!("keys         {total} keystore(s) proven");
    }
    Ok(None)
}

fn run_inner(a: &Args) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let plan = profiles::plan(&a.paths, a.profile.as_deref(), a.skip_rebuildable)?;
    if a.verify_keys {
        if let Some(refused) = verify_keys(a)? {
            return Ok(refused);
        }
    }
    let key = BackupKey::load(&a.backup_key)?;
    let repo = a.repo.open()?;

    let mut excludes = a.excludes.clone();
    excludes.extend(
        plan.excludes
            .iter()
            .filter(|g| !a.excludes.contains(g))
            .cloned(),
    );
    let client_version = plan.client_version(a.version_cmd.as_deref());
    let labels = plan.labels(client_version.as_deref());
    let mut opts = BackupOptions {
        paths: a.paths.clone(),
        tags: a.tags.clone(),
        excludes,
        labels,
        cache_base: super::cache_base(a.no_cache),
        time: a.time,
        holds: vtool_validator::holdings::holdings(&plan),
        keep_page_cache: a.keep_page_cache || a.allow_live,
    };

    let mut precopy_snapshot = None;
    if a.live_precopy {
        if a.no_cache {
            bail!("--live-precopy needs the files cache; drop --no-cache");
        }
        if !a.json {
            eprintln!("precopy      reading while the client runs (not a consistent snapshot)");
        }
        let pre_opts = opts.precopy();
        // The precopy pass expects files to change: its warnings are noise.
        let progress = output::Bar::new("precopy").with_warnings(false);
        let report = vtool_snapshot::backup(&repo, &key, &pre_opts, &progress);
        progress.finish();
        let report = report.context("the precopy pass failed")?;
        if !a.json {
            eprintln!(
                "precopy      snapshot {} (tagged precopy, labelled consistency=precopy-incomplete)",
                report.snapshot_id.short()
            );
        }
        precopy_snapshot = Some(report.snapshot_id.to_hex());
    }

    if let Some(pre) = &a.pre {
        run_hook("pre", pre).context("backup not started")?;
    }

    // Only a pre hook can make held locks go away, so only then is waiting worth it.
    let wait = Duration::from_secs(if a.pre.is_some() { a.lock_wait } else { 0 });
    let locks = plan.live_locks_after(wait);
    if !locks.is_empty() {
        let list: Vec<String> = locks
            .iter()
            .map(|l| format!("  {}", l.describe()))
            .collect();
        if !a.allow_live {
            bail!(
                "refusing to back up: a client is running on this data (live locks held):\n{}\n\
                 A copy taken while it writes may not be consistent. Stop the client first, or \
                 let vtool stop and start it: --pre 'systemctl stop <service>' --post \
                 'systemctl start <service>'; add --live-precopy to keep the downtime short; \
                 or --allow-live to back up anyway (not consistent)",
                list.join("\n")
            );
        }
        eprintln!(
            "WARNING: --allow-live: backing up while a client holds its locks; the snapshot \
             may NOT be consistent:\n{}",
            list.join("\n")
        );
        opts.labels.extend(BackupPlan::live_lock_labels(&locks));
    }

    let progress = output::Bar::new("scanning");
    let report = vtool_snapshot::backup(&repo, &key, &opts, &progress);
    progress.finish();
    let report = report?;
    print_summary(
        a,
        &report,
        started,
        &plan,
        client_version,
        precopy_snapshot,
        &locks,
    )?;
    Ok(if report.warnings.is_empty() {
        Outcome::Ok
    } else {
        Outcome::DataProblem
    })
}

fn print_summary(
    a: &Args,
    report: &BackupReport,
    started: Instant,
    plan: &BackupPlan,
    client_version: Option<String>,
    precopy_snapshot: Option<String>,
    locks: &[LiveLock],
) -> anyhow::Result<()> {
    let s = &report.snapshot.summary;
    let summary = Summary {
        snapshot: report.snapshot_id.to_hex(),
        fingerprint: report.snapshot.fingerprint.to_hex(),
        files: s.files,
        files_read: report.files_read,
        files_unchanged: report.files_unchanged,
        bytes: s.bytes,
        bytes_read: s.bytes_read,
        bytes_added_stored: s.bytes_added_stored,
        dedup_ratio: (s.bytes_added_stored > 0)
            .then(|| s.bytes as f64 / s.bytes_added_stored as f64),
        duration_secs: started.elapsed().as_secs_f64(),
        warnings: &report.warnings,
        profiles: &plan.targets,
        profile: plan.profile_label(),
        client_version,
        skip_rebuildable: a.skip_rebuildable,
        precopy_snapshot,
        live_locks_ignored: locks,
    };
    if a.json {
        output::print_json(&summary)?;
        return Ok(());
    }
    println!("snapshot     {} saved", report.snapshot_id.short());
    for t in &plan.targets {
        let Some(profile) = t.profile else { continue };
        println!(
            "profile      {} ({} {})",
            profile.name,
            if t.detected {
                "detected in"
            } else {
                "applied to"
            },
            t.root.display()
        );
    }
    if let Some(v) = &summary.client_version {
        println!("client       {v}");
    }
    if a.skip_rebuildable {
        println!("skipped      rebuildable data (chain databases, ancient/static files)");
    }
    println!(
        "files        {} ({} read, {} unchanged)",
        summary.files, summary.files_read, summary.files_unchanged
    );
    println!("size         {}", output::human_bytes(summary.bytes));
    println!("read         {}", output::human_bytes(summary.bytes_read));
    println!(
        "new stored   {}",
        output::human_bytes(summary.bytes_added_stored)
    );
    match summary.dedup_ratio {
        Some(r) => println!("dedup ratio  {r:.1}x"),
        None => println!("dedup ratio  all data already in the repository"),
    }
    println!("duration     {:.1}s", summary.duration_secs);
    println!("fingerprint  {}", output::spoken(&summary.fingerprint));
    if !locks.is_empty() {
        println!(
            "WARNING: backed up while {} live lock(s) were held (--allow-live)",
            locks.len()
        );
    }
    if !report.warnings.is_empty() {
        println!(
            "WARNING: {} path(s) were not backed up consistently; see the warnings above",
            report.warnings.len()
        );
    }
    Ok(())
}
