use std::path::PathBuf;

use super::{IdentityArg, RepoArg};
use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// Snapshot id prefix or `latest`.
    snapshot: String,
    /// Directory holding the snapshot's top-level entries (e.g. the parent of a node dir).
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

/// Exit 0 when the directory is exactly the snapshot, 1 when it differs.
pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let repo = a.repo.open()?;
    let key = a.identity.unlock(&repo)?;
    let (id, snap) = super::find_snapshot(&repo, &a.snapshot, Some(&key.chunk_key))?;
    let index = repo.load_index(None)?;
    let reader = vtool_snapshot::reader::BlobReader::new(&repo, &key, &index);
    let cmp = vtool_verify::compare(&reader, &snap, &a.dir)?;
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
