use std::path::PathBuf;

use indicatif::ProgressBar;
use serde::Serialize;
use vtool_snapshot::{RestoreOptions, RestoreProgress, RestoreReport};

use super::SnapshotArgs;
use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    snapshot: SnapshotArgs,
    /// Empty or new directory to restore into.
    #[arg(long)]
    target: PathBuf,
    /// Restore only paths matching this glob, e.g. 'node/validator/**' (repeatable).
    #[arg(long = "include")]
    include: Vec<String>,
    /// After restoring, re-read everything written, recompute the fingerprint and compare.
    #[arg(long, conflicts_with = "include")]
    verify: bool,
    #[arg(long)]
    json: bool,
}

struct Progress(Option<ProgressBar>);

impl RestoreProgress for Progress {
    fn planned(&self, _files: u64, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(bytes);
        }
    }
    fn wrote(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    snapshot: String,
    fingerprint: String,
    target: PathBuf,
    #[serde(flatten)]
    report: &'a RestoreReport,
    verification: Option<vtool_verify::Comparison>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let opened = a.snapshot.open_reader()?;
    let (id, snap) = (opened.id, &opened.snapshot);
    let opts = RestoreOptions {
        target: a.target.clone(),
        include: a.include.clone(),
        cache_base: super::cache_base(a.snapshot.no_cache),
        report_files_named: vec![DEFINITIONS.to_string()],
    };
    // One reader for restoring and --verify: the trees are decrypted once.
    let reader = opened.reader();
    let progress = Progress(output::bytes_bar("restoring"));
    let report = vtool_snapshot::restore_from(&reader, snap, &opts, &progress);
    if let Some(bar) = &progress.0 {
        bar.finish_and_clear();
    }
    let report = report?;
    let verification = if a.verify {
        Some(vtool_verify::compare(&reader, snap, &a.target)?)
    } else {
        None
    };
    warn_missing_definition_paths(&report.files_named);
    let verified_ok = verification
        .as_ref()
        .is_none_or(|v| v.fingerprint_matches && v.differences.is_empty());
    if a.json {
        output::print_json(&Summary {
            snapshot: id.to_hex(),
            fingerprint: snap.fingerprint.to_hex(),
            target: a.target.clone(),
            report: &report,
            verification,
        })?;
    } else {
        println!(
            "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {}",
            id.short(),
            a.target.display(),
            report.files,
            report.dirs,
            report.symlinks,
            output::human_bytes(report.bytes)
        );
        println!("fingerprint {}", output::spoken(&snap.fingerprint.to_hex()));
        for d in &report.damaged {
            println!("DAMAGED (not restored): {}: {}", d.path, d.message);
        }
        if let Some(v) = &verification {
            for d in &v.differences {
                println!("DIFFERS: {} ({:?}): {}", d.path, d.kind, d.detail);
            }
            if verified_ok {
                println!("verified: every byte re-read from disk; fingerprint matches");
            } else {
                println!(
                    "VERIFY FAILED: fingerprint on disk {}",
                    v.fingerprint_on_disk
                );
            }
        }
        if !report.damaged.is_empty() {
            println!(
                "run `vtool check --repo {} --read-data` to see the extent of the damage",
                a.snapshot.repo.repo
            );
        }
    }
    Ok(if report.damaged.is_empty() && verified_ok {
        Outcome::Ok
    } else {
        Outcome::DataProblem
    })
}

/// Lighthouse's list of validator keys, with absolute paths to them.
const DEFINITIONS: &str = "validator_definitions.yml";

/// Clients refuse to start when `validator_definitions.yml` points at keystores that are not
/// there; say so now rather than at the migration.
fn warn_missing_definition_paths(files: &[std::path::PathBuf]) {
    for path in files {
        for missing in vtool_validator::definitions::missing_paths(path) {
            eprintln!(
                "warning: {} refers to {missing}, which does not exist on this machine; \
                 fix the paths before starting the validator client",
                path.display()
            );
        }
    }
}
