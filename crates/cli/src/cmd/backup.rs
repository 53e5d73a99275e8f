use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;
use vtool_snapshot::keys::BackupKey;
use vtool_snapshot::{BackupOptions, BackupProgress, Warning};

use super::RepoArg;
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
    /// Leave out paths matching this glob (matched against the absolute path and the name).
    #[arg(long = "exclude")]
    excludes: Vec<String>,
    /// Do not use the local cache (every file is read).
    #[arg(long)]
    no_cache: bool,
    #[arg(long)]
    json: bool,
    /// Directories and files to back up.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

struct Progress {
    bar: Option<ProgressBar>,
    json: bool,
}

impl BackupProgress for Progress {
    fn scanned(&self, files: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
            bar.set_message(format!("reading {files} changed files"));
        }
    }
    fn read(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
    fn warn(&self, w: &Warning) {
        let line = format!("warning: {}: {}", w.path, w.message);
        match &self.bar {
            Some(bar) => bar.println(line),
            None if !self.json => eprintln!("{line}"),
            None => eprintln!("{line}"),
        }
    }
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
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let key = BackupKey::load(&a.backup_key)?;
    let repo = a.repo.open()?;
    let progress = Progress {
        bar: output::bytes_bar("scanning"),
        json: a.json,
    };
    let opts = BackupOptions {
        paths: a.paths.clone(),
        tags: a.tags.clone(),
        excludes: a.excludes.clone(),
        labels: Default::default(),
        cache_base: super::cache_base(a.no_cache),
    };
    let report = vtool_snapshot::backup(&repo, &key, &opts, &progress);
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    let report = report?;
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
    };
    if a.json {
        output::print_json(&summary)?;
    } else {
        println!("snapshot     {} saved", report.snapshot_id.short());
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
        if !report.warnings.is_empty() {
            println!(
                "WARNING: {} path(s) were not backed up consistently; see the warnings above",
                report.warnings.len()
            );
        }
    }
    Ok(if report.warnings.is_empty() {
        Outcome::Ok
    } else {
        Outcome::DataProblem
    })
}
