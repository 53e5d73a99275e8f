use std::path::PathBuf;

use super::SnapshotArgs;
use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    snapshot: SnapshotArgs,
    /// Directory holding the snapshot's top-level entries (e.g. the parent of a node dir).
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

/// Exit 0 when the directory is exactly the snapshot, 1 when it differs.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let opened = a.snapshot.open_reader()?;
    let id = opened.id;
    let cmp = vtool_verify::compare(&opened.reader(), &opened.snapshot, &a.dir)?;
    let same = cmp.fingerprint_matches && cmp.differences.is_empty();
    if a.json {
        output::print_json(&cmp)?;
    } else {
        for d in &cmp.differences {
            println!("{:<9} {}  {}", d.kind.name(), d.path, d.detail);
        }
        println!(
            "{} vs snapshot {}: {} ({} files hashed)",
            a.dir.display(),
            id.short(),
            if same {
                "identical, fingerprint matches"
            } else {
                "DIFFERENT"
            },
            cmp.files_hashed
        );
    }
    Ok(if same { Outcome::Ok } else { Outcome::No })
}
