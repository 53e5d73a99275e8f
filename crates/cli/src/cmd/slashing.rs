use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use vtool_validator::slashing::{self, Interchange, PublicKey};

use crate::{output, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Validate an interchange file and summarise each key's watermarks.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write an interchange holding only the given keys (for moving a batch of validators).
    Subset {
        file: PathBuf,
        /// Comma-separated 0x-prefixed public keys.
        #[arg(long, value_delimiter = ',', required = true)]
        pubkeys: Vec<String>,
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Merge interchange files keeping what keeps validators safe (highest watermarks).
    Merge {
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn load(path: &PathBuf) -> anyhow::Result<Interchange> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Interchange::from_json_str(&text)
        .with_context(|| format!("{} is not a valid EIP-3076 interchange", path.display()))
}

fn write_out(out: &Option<PathBuf>, interchange: &Interchange) -> anyhow::Result<()> {
    let text = interchange.to_json_string()?;
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct KeyRow {
    pubkey: String,
    blocks: usize,
    attestations: usize,
    highest_block_slot: Option<u64>,
    highest_source_epoch: Option<u64>,
    highest_target_epoch: Option<u64>,
    slashable: Vec<String>,
}

#[derive(Serialize)]
struct CheckOut {
    genesis_validators_root: String,
    keys: Vec<KeyRow>,
    slashable_data: bool,
}

pub fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Check { file, json } => {
            let summary = slashing::summarize(&load(&file)?);
            let out = CheckOut {
                genesis_validators_root: summary.genesis_validators_root.to_string(),
                slashable_data: summary.has_slashable_data(),
                keys: summary
                    .keys
                    .iter()
                    .map(|k| KeyRow {
                        pubkey: k.pubkey.to_string(),
                        blocks: k.blocks,
                        attestations: k.attestations,
                        highest_block_slot: k.highest_block_slot,
                        highest_source_epoch: k.highest_source_epoch,
                        highest_target_epoch: k.highest_target_epoch,
                        slashable: k.slashable.iter().map(|f| f.to_string()).collect(),
                    })
                    .collect(),
            };
            if json {
                output::print_json(&out)?;
            } else {
                println!("genesis validators root {}", out.genesis_validators_root);
                let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                for k in &out.keys {
                    println!(
                        "{}  blocks {} (max slot {})  attestations {} (max source {}, max target {}){}",
                        k.pubkey,
                        k.blocks,
                        opt(k.highest_block_slot),
                        k.attestations,
                        opt(k.highest_source_epoch),
                        opt(k.highest_target_epoch),
                        if k.slashable.is_empty() { String::new() } else { format!("  SLASHABLE: {}", k.slashable.join("; ")) }
                    );
                }
                println!("{} key(s)", out.keys.len());
            }
            Ok(if out.slashable_data {
                Outcome::No
            } else {
                Outcome::Ok
            })
        }
        Command::Subset { file, pubkeys, out } => {
            let keys = pubkeys
                .iter()
                .map(|p| {
                    p.trim()
                        .parse::<PublicKey>()
                        .map_err(|e| anyhow::anyhow!("public key {p:?}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let sub = slashing::subset(&load(&file)?, &keys);
            write_out(&out, &sub.interchange)?;
            for m in &sub.missing {
                eprintln!("warning: {m} is not in {}", file.display());
            }
            Ok(if sub.missing.is_empty() {
                Outcome::Ok
            } else {
                Outcome::No
            })
        }
        Command::Merge { files, out } => {
            let all = files.iter().map(load).collect::<anyhow::Result<Vec<_>>>()?;
            write_out(&out, &slashing::merge(&all)?)?;
            Ok(Outcome::Ok)
        }
    }
}
