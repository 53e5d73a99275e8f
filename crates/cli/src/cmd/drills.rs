use anyhow::Context;

use super::{ChunkKeyArgs, RepoArg};
use crate::{output, Outcome};

/// List the drill records in the repository, newest first.
///
/// With --identity or --backup-key every record is authenticated; a record that fails
/// (altered or forged on the storage host) is marked FORGED and the exit status is 3.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    /// Authenticate the records with the restore identity or the backup key.
    #[command(flatten)]
    key: ChunkKeyArgs,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let repo = a.repo.open()?;
    let chunk_key = a.key.chunk_key(&repo)?;
    let listing = vtool_verify::list_drills(repo.backend(), chunk_key.as_ref())
        .context("cannot list drill records")?;
    if a.json {
        output::print_json(&serde_json::json!({
            "drills": listing.records,
            "invalid": listing.invalid,
        }))?;
    } else {
        if chunk_key.is_none() {
            eprintln!(
                "warning: records not authenticated (pass --identity or --backup-key); \
                 a storage host could have forged them"
            );
        }
        println!(
            "{:<20}  {:<8}  {:<19}  {:<6}  {:<11}  {:>8}  {:<12}  DETAILS",
            "TIME", "SNAPSHOT", "FINGERPRINT", "RESULT", "AUTH", "DURATION", "HOST"
        );
        for d in &listing.records {
            let r = &d.record;
            let fp = r.fingerprint.to_hex();
            let details = match &r.failure {
                Some(f) => f.clone(),
                None => r
                    .commands
                    .iter()
                    .map(|c| c.command.as_str())
                    .collect::<Vec<_>>()
                    .join(" ; "),
            };
            println!(
                "{:<20}  {:<8}  {:<19}  {:<6}  {:<11}  {:>7.1}s  {:<12}  {}",
                output::datetime(&r.time),
                r.snapshot.short(),
                output::spoken(&fp[..16]),
                if r.passed { "pass" } else { "FAIL" },
                output::authenticity(d.authenticity),
                r.duration_secs,
                r.hostname,
                details
            );
        }
        for bad in &listing.invalid {
            println!("INVALID {}: {}", bad.object, bad.reason);
        }
        if listing.records.is_empty() {
            println!(
                "no drills yet: run `vtool drill --repo {} --boot CMD`",
                a.repo.repo
            );
        }
    }
    Ok(if listing.has_problems() {
        Outcome::DataProblem
    } else {
        Outcome::Ok
    })
}
