use serde::Serialize;
use vtool_snapshot::repofile::Snapshot;

use super::RepoArg;
use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row<'a> {
    id: String,
    #[serde(flatten)]
    snapshot: &'a Snapshot,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let repo = a.repo.open()?;
    let listing = repo.snapshots()?;
    let snaps = &listing.objects;
    // Damaged objects go to stderr so --json stays one array of good snapshots.
    for d in &listing.damaged {
        eprintln!("DAMAGED {}: {}", d.object, d.reason);
    }
    let outcome = if listing.damaged.is_empty() {
        Outcome::Ok
    } else {
        eprintln!(
            "{} snapshot object(s) damaged; the others are usable. `vtool check` reports all damage, `vtool copy` from another copy brings good objects back",
            listing.damaged.len()
        );
        Outcome::DataProblem
    };
    if a.json {
        let rows: Vec<Row> = snaps
            .iter()
            .map(|(id, s)| Row {
                id: id.to_hex(),
                snapshot: s,
            })
            .collect();
        output::print_json(&rows)?;
        return Ok(outcome);
    }
    println!(
        "{:<8}  {:<20}  {:<12}  {:>7}  {:>10}  {:<19}  PATHS / TAGS",
        "ID", "TIME", "HOST", "FILES", "SIZE", "FINGERPRINT"
    );
    for (id, s) in snaps {
        let fp = s.fingerprint.to_hex();
        println!(
            "{:<8}  {:<20}  {:<12}  {:>7}  {:>10}  {:<19}  {}{}",
            id.short(),
            output::datetime(&s.time),
            s.hostname,
            s.summary.files,
            output::human_bytes(s.summary.bytes),
            output::spoken(&fp[..16]),
            s.paths.join(" "),
            if s.tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", s.tags.join(","))
            }
        );
    }
    println!("{} snapshot(s); full fingerprints with --json", snaps.len());
    Ok(outcome)
}
