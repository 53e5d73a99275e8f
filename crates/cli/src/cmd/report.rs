use anyhow::{bail, Context};
use vtool_snapshot::repofile::GateReport;
use vtool_verify::Authenticity;

use super::{ChunkKeyArgs, RepoArg};
use crate::{output, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print one gate report: a summary for a change ticket (md) or the whole record (json).
    Show(ShowArgs),
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    key: ChunkKeyArgs,
    /// The report's id (any unique prefix), as `vtool reports` lists it.
    id: String,
    #[arg(long, default_value = "md", value_parser = ["md", "json"])]
    format: String,
}

pub fn run(c: Command) -> anyhow::Result<Outcome> {
    let Command::Show(a) = c;
    let repo = a.repo.open()?;
    let chunk_key = a.key.chunk_key(&repo)?;
    let listing = vtool_verify::list_records::<GateReport>(repo.backend(), chunk_key.as_ref())
        .context("cannot list gate reports")?;
    let prefix = a.id.trim_start_matches("reports/");
    let matching: Vec<_> = listing
        .records
        .iter()
        .filter(|l| l.name.trim_start_matches("reports/").starts_with(prefix))
        .collect();
    let listed = match matching.as_slice() {
        [one] => *one,
        [] => bail!(
            "no gate report {prefix:?} in {}: `vtool reports` lists them",
            a.repo.repo
        ),
        _ => bail!(
            "{} reports start with {prefix:?}; give more of the id",
            matching.len()
        ),
    };
    if listed.authenticity == Authenticity::Forged {
        eprintln!(
            "warning: {} FAILS AUTHENTICATION: altered or forged by someone without the keys; do not rely on it",
            listed.name
        );
    } else if chunk_key.is_none() {
        eprintln!("warning: not authenticated (pass --identity or --backup-key)");
    }
    if a.format == "json" {
        output::print_json(listed)?;
    } else {
        print!(
            "{}",
            vtool_verify::gate::render_markdown(&listed.name, &listed.record)
        );
        println!(
            "\nauthentication: {}",
            output::authenticity(listed.authenticity)
        );
    }
    Ok(if listed.authenticity == Authenticity::Forged {
        Outcome::DataProblem
    } else {
        Outcome::Ok
    })
}
