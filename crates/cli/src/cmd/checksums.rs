use std::io::Write;

use vtool_verify::ChecksumFormat;

use super::{IdentityArg, RepoArg};
use crate::{output, Outcome};

/// Print a checksum manifest of a snapshot that `sha256sum -c` / `b3sum -c` accept in a
/// restored tree, so anyone can check a restore without vtool:
///
///   vtool checksums latest --format sha256 > /tmp/manifest; cd RESTORED && sha256sum -c /tmp/manifest
///
/// `b3` prints the BLAKE3 recorded at backup time (fast, reads no data); `sha256` reads
/// every file back and checks it. Files that cannot be read are named on stderr (exit 3).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// Snapshot id (any unique prefix) or `latest`.
    snapshot: String,
    /// sha256 (for sha256sum -c) or b3 (for b3sum -c).
    #[arg(long, value_parser = clap::builder::ValueParser::new(str::parse::<ChecksumFormat>))]
    format: ChecksumFormat,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let repo = a.repo.open()?;
    let key = a.identity.unlock(&repo)?;
    let (_, snap) = super::find_snapshot(&repo, &a.snapshot, Some(&key.chunk_key))?;
    let index = repo.load_index_cached(super::cache_base(false).as_deref())?;
    let reader = vtool_snapshot::reader::BlobReader::new(&repo, &key, &index);
    let report = vtool_verify::checksums(&reader, &snap, a.format)?;
    if a.json {
        output::print_json(&report)?;
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for c in &report.files {
            writeln!(out, "{}", vtool_verify::manifest_line(c))?;
        }
        out.flush()?;
        for d in &report.damaged {
            eprintln!("DAMAGED (no checksum): {}: {}", d.path, d.message);
        }
    }
    Ok(if report.damaged.is_empty() {
        Outcome::Ok
    } else {
        Outcome::DataProblem
    })
}
