use vtool_snapshot::repair::{repair_index, RepairIndexOptions, RepairIndexReport};

use super::{IdentityArg, RepoArg};
use crate::{output, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Rebuild indexes from the packs' own trailers: every pack no intact index lists is
    /// decrypted, checked and listed in a new index file. Nothing is deleted. Exit 0 when
    /// every pack is indexed again, 3 when some packs or blobs could not be.
    Index(IndexArgs),
}

#[derive(clap::Args)]
pub struct IndexArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Packs are encrypted to the restore identity: it is needed to read their trailers.
    #[command(flatten)]
    identity: IdentityArg,
    /// Show what would be re-indexed; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only check the pack's hash and its trailer's bounds, not every blob's id (faster).
    #[arg(long)]
    no_blob_check: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Index(a) => index(a),
    }
}

fn index(a: IndexArgs) -> anyhow::Result<Outcome> {
    let repo = a.repo.open()?;
    let key = a.identity.unlock(&repo)?;
    let opts = RepairIndexOptions {
        dry_run: a.dry_run,
        verify_blobs: !a.no_blob_check,
    };
    let progress = output::Bar::new("reading packs");
    let report = repair_index(&repo, &key, &opts, &progress);
    progress.finish();
    let report = report?;
    if a.json {
        output::print_json(&report)?;
    } else {
        print_human(&report);
    }
    Ok(if report.complete() {
        Outcome::Ok
    } else {
        Outcome::DataProblem
    })
}

fn print_human(r: &RepairIndexReport) {
    for why in &r.damaged_indexes {
        println!("damaged index (left in place): {why}");
    }
    println!(
        "{} pack(s): {} listed by an intact index, {} {}re-indexed ({} blob(s), {} read)",
        r.packs,
        r.packs_indexed,
        r.packs_reindexed,
        if r.dry_run { "would be " } else { "" },
        r.blobs_reindexed,
        output::human_bytes(r.bytes_read)
    );
    for name in &r.new_indexes {
        println!("wrote {name}");
    }
    for p in &r.unreadable {
        println!("PROBLEM {}: {}; not re-indexed", p.object, p.reason);
    }
    for b in &r.bad_blobs {
        println!(
            "PROBLEM {} blob {}: {}; left out of the index",
            b.pack,
            &b.blob[..b.blob.len().min(16)],
            b.reason
        );
    }
    if r.dry_run && r.packs_reindexed > 0 {
        println!("dry run: nothing written; run again without --dry-run to write the index");
    } else if r.packs_reindexed == 0 && r.complete() {
        println!("nothing to repair: every pack is indexed");
    }
    if !r.complete() {
        println!("run `vtool check --read-data --identity …` to see which files these damage");
    }
}
