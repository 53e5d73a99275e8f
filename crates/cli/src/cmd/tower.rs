use std::path::PathBuf;

use crate::{output, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Copy an Agave identity's tower (tower-1_9-<identity>.bin) between ledger directories,
    /// checked by hash end to end, before `agave-validator set-identity --require-tower`.
    Copy(CopyArgs),
}

#[derive(clap::Args)]
pub struct CopyArgs {
    /// The validator identity (base58).
    #[arg(long)]
    identity: String,
    /// The ledger directory holding the tower (e.g. the active node's, mounted or fetched).
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The standby's ledger directory.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// The tower's BLAKE3 as printed on the machine it came from: refuse any other bytes.
    #[arg(long, value_name = "HEX")]
    expect_blake3: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(c: Command) -> anyhow::Result<Outcome> {
    let Command::Copy(a) = c;
    let copied = vtool_validator::tower::copy_tower(
        &a.identity,
        &a.from,
        &a.to,
        a.expect_blake3.as_deref(),
    )?;
    if a.json {
        output::print_json(&copied)?;
    } else {
        println!(
            "copied {} ({} bytes) to {}\nblake3 {}\nsha256 {}",
            copied.from.display(),
            copied.bytes,
            copied.to.display(),
            copied.blake3,
            copied.sha256
        );
    }
    Ok(Outcome::Ok)
}
