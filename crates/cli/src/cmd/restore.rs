use std::path::PathBuf;

use serde::Serialize;
use vtool_snapshot::{RestoreOptions, RestoreReport};

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
    /// Restore validator keystores even though no passing gate report covers them. The
    /// override is recorded in the repository (`vtool reports`) for everyone to see.
    #[arg(long)]
    no_gate: bool,
    /// How recent the passing `vtool gate` report for the restored keystores must be.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    gate_max_age: std::time::Duration,
    #[arg(long)]
    json: bool,
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
    if let Some(refused) = guard(&a, &opened, &reader)? {
        return Ok(refused);
    }
    let progress = output::Bar::new("restoring");
    let report = vtool_snapshot::restore_from(&reader, snap, &opts, &progress);
    progress.finish();
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

/// Validator keystores leave the repository only behind a passing gate (or an override that
/// is recorded): a second signer is how validators get slashed. `Some` when refused.
fn guard(
    a: &Args,
    opened: &vtool_snapshot::reader::OpenedSnapshot,
    reader: &vtool_snapshot::reader::BlobReader,
) -> anyhow::Result<Option<Outcome>> {
    use vtool_verify::gate::guard::{record_override, restore_guard, GuardDecision};
    let keystores = vtool_verify::snapshot_keystores(reader, &opened.snapshot, &a.include)?;
    let mut pubkeys: Vec<String> = keystores.into_iter().flat_map(|k| k.pubkeys).collect();
    pubkeys.sort();
    pubkeys.dedup();
    if pubkeys.is_empty() {
        return Ok(None);
    }
    let key = &opened.key.chunk_key;
    if a.no_gate {
        let what = format!(
            "restore --no-gate of {} validator keystore(s) to {} on {}",
            pubkeys.len(),
            a.target.display(),
            vtool_snapshot::hostname()
        );
        let name = record_override(
            &opened.repo,
            key,
            (opened.id, opened.snapshot.fingerprint),
            &pubkeys,
            &what,
        )?;
        eprintln!(
            "warning: restoring {} validator keystore(s) without a gate; recorded as {name}. \
             Never start them while another host may sign with them",
            pubkeys.len()
        );
        return Ok(None);
    }
    match restore_guard(&opened.repo, key, &pubkeys, a.gate_max_age)? {
        GuardDecision::Allowed { reports } => {
            eprintln!(
                "{} validator keystore(s) restored under gate report(s) {}",
                pubkeys.len(),
                reports.join(", ")
            );
            Ok(None)
        }
        GuardDecision::Refused { missing } => {
            eprintln!(
                "refused: the snapshot holds {} validator keystore(s); {} of them have no passing \
                 `vtool gate` report from the last {}:",
                pubkeys.len(),
                missing.len(),
                humantime::format_duration(a.gate_max_age)
            );
            for p in missing.iter().take(10) {
                eprintln!("  {p}");
            }
            if missing.len() > 10 {
                eprintln!("  … and {} more", missing.len() - 10);
            }
            eprintln!(
                "run `vtool gate` for these keys first; or leave the keystores out with \
                 --include; or pass --no-gate, which is recorded in the repository"
            );
            Ok(Some(Outcome::No))
        }
    }
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
