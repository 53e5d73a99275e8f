use std::io::Write;

use vtool_verify::ChecksumFormat;

use super::SnapshotArgs;
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
    snapshot: SnapshotArgs,
    /// sha256 (for sha256sum -c) or b3 (for b3sum -c).
    #[arg(long, value_parser = clap::builder::ValueParser::new(str::parse::<ChecksumFormat>))]
    format: ChecksumFormat,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let opened = a.snapshot.open_reader()?;
    let report = vtool_verify::checksums(&opened.reader(), &opened.snapshot, a.format)?;
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
