use std::path::PathBuf;

use anyhow::Context;
use vtool_snapshot::keys;
use vtool_verify::{CheckOptions, CheckReport, RecordCheck, Subset};

use super::RepoArg;
use crate::{output, Outcome};

/// Check the repository's integrity. Exit 0 when all is well, 3 when anything is damaged.
///
/// Without options: the structure (config, key, index, snapshot and check state objects
/// named by their hashes, every indexed pack present with its size; packs in no index are
/// noted, not failed: an interrupted backup leaves them). With --identity also authenticates
/// every snapshot, walks every tree and makes sure every blob a file needs is indexed and
/// stored, and names the snapshots and files each problem damages.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    /// Re-hash every pack's stored bytes and compare with its name (no key needed; run it on
    /// the storage host or after shipping a copy).
    #[arg(long)]
    packs: bool,
    /// Decrypt every pack and check every blob against its id (needs --identity).
    #[arg(long, requires = "identity")]
    read_data: bool,
    /// With --packs or --read-data, check only a slice of the packs: `n/t` (packs whose first
    /// id byte mod t is n-1), or `PCT%` for a different slice each run, so that daily runs
    /// cover everything in ceil(100/PCT) days (the rotation is kept in `check/` objects in
    /// the repository).
    #[arg(long, value_name = "PCT%|n/t")]
    subset: Option<String>,
    /// The restore identity: enables snapshot authentication, the tree walk and --read-data.
    #[arg(long, env = "VTOOL_IDENTITY")]
    identity: Option<PathBuf>,
    /// The backup key: with it (or with --identity) the outcome is stored as a sealed check
    /// record at this location, which `vtool gate` requires of every copy.
    #[arg(long, conflicts_with = "identity")]
    backup_key: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let subset = a.subset.as_deref().map(str::parse::<Subset>).transpose()?;
    if subset.is_some() && !(a.packs || a.read_data) {
        anyhow::bail!("--subset limits --packs or --read-data; give one of them");
    }
    let identity = a.identity.as_deref().map(keys::load_identity).transpose()?;
    let backend = vtool_transfer::url::open(&a.repo.repo)
        .with_context(|| format!("cannot open repository {}", a.repo.repo))?;
    let record = record_options(&a, identity.as_ref())?;
    let opts = CheckOptions {
        packs: a.packs,
        read_data: a.read_data,
        subset,
        record,
    };
    // Only the pack-reading levels take long enough for a bar.
    let progress = if a.packs || a.read_data {
        output::Bar::new("checking")
    } else {
        output::Bar::none()
    };
    let report = vtool_verify::check(backend, identity, &opts, &progress);
    progress.finish();
    let report = report?;
    if a.json {
        output::print_json(&report)?;
    } else {
        print_human(&a.repo.repo, &report);
        if let Some(record) = &report.record {
            println!("recorded as {record}");
        }
    }
    Ok(if report.ok {
        Outcome::Ok
    } else {
        Outcome::DataProblem
    })
}

/// With a key, the check is recorded at the location as the gate will name it.
fn record_options(
    a: &Args,
    identity: Option<&vtool_snapshot::age::x25519::Identity>,
) -> anyhow::Result<Option<RecordCheck>> {
    let key = match (identity, &a.backup_key) {
        (None, None) => return Ok(None),
        (Some(identity), _) => match a.repo.open()?.unlock(identity.clone()) {
            Ok(k) => k.chunk_key,
            // A damaged config or key object is what the check is for: check, don't record.
            Err(e) => {
                eprintln!("note: this check will not be recorded: {e}");
                return Ok(None);
            }
        },
        (None, Some(path)) => {
            let key = keys::BackupKey::load(path)?;
            a.repo.open()?.check_backup_key(&key)?;
            key.chunk_key
        }
    };
    let location = vtool_transfer::url::RepoUrl::parse(&a.repo.repo)?.canonical();
    Ok(Some(RecordCheck { key, location }))
}

const MAX_PATHS: usize = 20;

fn print_human(repo: &str, r: &CheckReport) {
    let c = &r.counts;
    println!(
        "checked {repo} ({}{}): {} key object(s), {} index(es), {} snapshot(s){}, {} pack(s) indexed, {} present",
        r.level,
        if r.with_identity { ", with identity" } else { "" },
        c.keys,
        c.indexes,
        c.snapshots,
        if r.with_identity {
            format!(" ({} authenticated)", c.snapshots_authenticated)
        } else {
            String::new()
        },
        c.packs_indexed,
        c.packs_present,
    );
    if r.with_identity {
        println!(
            "walked {} tree(s), {} file(s)",
            c.trees_checked, c.files_checked
        );
    }
    if c.packs_hashed > 0 || c.packs_read > 0 {
        println!(
            "re-hashed {} pack(s), decrypted {}, {} blob(s) checked, {} read",
            c.packs_hashed,
            c.packs_read,
            c.blobs_checked,
            output::human_bytes(c.bytes_read)
        );
    }
    if let Some(s) = &r.subset {
        println!(
            "subset: slice {}/{}{}",
            s.slice,
            s.slices,
            s.state_object
                .as_deref()
                .map(|o| format!(" (recorded in {o})"))
                .unwrap_or_default()
        );
    }
    if !r.unreferenced.is_empty() {
        let bytes: u64 = r.unreferenced.iter().map(|u| u.size).sum();
        println!(
            "note: {} pack(s) ({}) are in no index; an interrupted backup leaves them, they are harmless",
            r.unreferenced.len(),
            output::human_bytes(bytes)
        );
    }
    if let Some(t) = r.temp_files.as_ref().filter(|t| t.files > 0) {
        println!(
            "note: {} temporary file(s) ({}) of unfinished writes, {} of them ({}) stale (untouched for {} min); the next backup or copy removes the stale ones",
            t.files,
            output::human_bytes(t.bytes),
            t.stale,
            output::human_bytes(t.stale_bytes),
            vtool_transfer::STALE_TEMP_AGE.as_secs() / 60
        );
    }
    for n in &r.notes {
        println!("note: {n}");
    }
    for p in &r.problems {
        let mut line = format!("PROBLEM {:?} {}", p.kind, p.object);
        if let Some(b) = &p.blob {
            line.push_str(&format!(" blob {}", &b[..b.len().min(16)]));
        }
        println!("{line}: {}", p.message);
        for d in p.damaged.iter().take(MAX_PATHS) {
            println!("    damages snapshot {} {}", d.snapshot, d.path);
        }
        if p.damaged.len() > MAX_PATHS {
            println!(
                "    … and {} more (all of them with --json)",
                p.damaged.len() - MAX_PATHS
            );
        }
    }
    if r.ok {
        println!("no problems found");
    } else {
        println!("{} problem(s) found", r.problems.len());
        if !r.with_identity {
            println!("re-run with --identity to see which snapshots and files they damage");
        }
    }
}
