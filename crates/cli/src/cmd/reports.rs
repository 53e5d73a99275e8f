use anyhow::Context;
use vtool_snapshot::repofile::GateReport;

use super::{ChunkKeyArgs, RepoArg};
use crate::{output, Outcome};

/// List the gate reports and restore overrides in the repository, newest first.
///
/// With --identity or --backup-key every report is authenticated; one that fails (altered or
/// forged on the storage host) is marked FORGED and the exit status is 3.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    key: ChunkKeyArgs,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let repo = a.repo.open()?;
    let chunk_key = a.key.chunk_key(&repo)?;
    let listing = vtool_verify::list_records::<GateReport>(repo.backend(), chunk_key.as_ref())
        .context("cannot list gate reports")?;
    if a.json {
        output::print_json(&listing)?;
    } else {
        if chunk_key.is_none() {
            eprintln!(
                "warning: reports not authenticated (pass --identity or --backup-key); \
                 a storage host could have forged them"
            );
        }
        println!(
            "{:<20}  {:<12}  {:<8}  {:<8}  {:>5}  {:<11}  HOST",
            "TIME", "REPORT", "VERDICT", "SNAPSHOT", "KEYS", "AUTH"
        );
        for l in &listing.records {
            let r = &l.record;
            println!(
                "{:<20}  {:<12}  {:<8}  {:<8}  {:>5}  {:<11}  {}",
                output::datetime(&r.time),
                l.name
                    .trim_start_matches("reports/")
                    .get(..12)
                    .unwrap_or(&l.name),
                verdict(r),
                r.snapshot.map(|s| s.short()).unwrap_or_default(),
                r.pubkeys.len(),
                output::authenticity(l.authenticity),
                r.hostname
            );
        }
        for bad in &listing.invalid {
            println!("INVALID {}: {}", bad.object, bad.reason);
        }
        if listing.records.is_empty() {
            println!("no gate reports yet: `vtool gate` writes one per run");
        }
    }
    Ok(if listing.has_problems() {
        Outcome::DataProblem
    } else {
        Outcome::Ok
    })
}

pub fn verdict(r: &GateReport) -> &'static str {
    match (&r.override_of, r.passed) {
        (Some(_), _) => "OVERRIDE",
        (None, true) => "pass",
        (None, false) => "FAIL",
    }
}
