use std::path::PathBuf;

use serde::Serialize;
use vtool_validator::{check_keystores, KeyStatus};

use super::PasswordArgs;
use crate::{output, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Verify every keystore's password through its checksum (the secret is never decrypted).
    Check(CheckArgs),
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Directory holding keystores (lighthouse, nimbus, teku, lodestar, prysm layouts).
    dir: PathBuf,
    #[command(flatten)]
    passwords: PasswordArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    pubkey: Option<String>,
    path: PathBuf,
    layout: String,
    status: &'static str,
    detail: Option<String>,
}

fn status(s: &KeyStatus) -> (&'static str, Option<String>) {
    match s {
        KeyStatus::Ok => ("ok", None),
        KeyStatus::WrongPassword => ("wrong_password", None),
        KeyStatus::MissingPassword => ("missing_password", None),
        KeyStatus::PasswordUnreadable(why) => ("password_unreadable", Some(why.clone())),
        KeyStatus::Malformed(why) => ("malformed", Some(why.clone())),
        KeyStatus::DuplicatePubkey(other) => (
            "duplicate_pubkey",
            Some(format!("same key as {}", other.display())),
        ),
    }
}

#[derive(Serialize)]
struct Report {
    keys: Vec<Row>,
    ok: usize,
    total: usize,
    peak_concurrent_derivations: usize,
    peak_memory_bytes: u64,
}

pub fn run(command: Command) -> anyhow::Result<Outcome> {
    let Command::Check(a) = command;
    let opts = a.passwords.check_options(&a.dir);
    let report = check_keystores(&a.dir, &opts)?;
    let rows: Vec<Row> = report
        .keys
        .iter()
        .map(|k| {
            let (status, detail) = status(&k.status);
            Row {
                pubkey: k.pubkey.clone(),
                path: k.path.clone(),
                layout: k.layout.name().to_string(),
                status,
                detail,
            }
        })
        .collect();
    let out = Report {
        ok: report.ok_count(),
        total: rows.len(),
        keys: rows,
        peak_concurrent_derivations: report.stats.peak_concurrent,
        peak_memory_bytes: report.stats.peak_memory,
    };
    if a.json {
        output::print_json(&out)?;
    } else {
        for r in &out.keys {
            println!(
                "{:<18} {} {}{}",
                r.status,
                r.pubkey.as_deref().unwrap_or("-"),
                r.path.display(),
                r.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
        }
        println!(
            "{} of {} keystores proven; peak {} derivations at once, {}",
            out.ok,
            out.total,
            out.peak_concurrent_derivations,
            output::human_bytes(out.peak_memory_bytes)
        );
    }
    Ok(if out.total > 0 && out.ok == out.total {
        Outcome::Ok
    } else {
        Outcome::No
    })
}
