//! `vtool`: back up, move and prove the restorability of validator nodes.
//!
//! Exit status: 0 success, 1 a check or gate said "no", 2 usage or environment error,
//! 3 a data problem (damaged or missing objects, files not backed up or restored).

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vtool",
    version,
    about = "Back up, move and prove the restorability of validator nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository, a restore identity and a backup key.
    Init(cmd::init::Args),
    /// Back up paths into a snapshot (needs only the backup key).
    Backup(cmd::backup::Args),
    /// List snapshots with their fingerprints (needs no key).
    Snapshots(cmd::snapshots::Args),
    /// Restore a snapshot into an empty directory (needs the identity).
    Restore(cmd::restore::Args),
    /// Compare a live directory with a snapshot (added, removed, changed files).
    Diff(cmd::diff::Args),
    /// Check the repository's integrity: structure, --packs (no key), --read-data.
    Check(cmd::check::Args),
    /// Print a manifest for `sha256sum -c` / `b3sum -c` on a restored snapshot.
    Checksums(cmd::checksums::Args),
    /// Restore into a scratch directory, prove it, boot programs on it, record the outcome.
    Drill(cmd::drill::Args),
    /// List drill records, newest first (authenticated with --identity or --backup-key).
    Drills(cmd::drills::Args),
    /// Copy a repository elsewhere (off-site, a drive), sending only what is missing.
    Copy(cmd::copy::Args),
    /// Apply retention rules: put the snapshots they remove in the trash (undoable).
    Forget(cmd::forget::Args),
    /// Delete what no snapshot needs (backup key only), never blocking backups.
    Prune(cmd::prune::Args),
    /// Prove that every EIP-2335 keystore in a directory unlocks with its password.
    Keys {
        #[command(subcommand)]
        command: cmd::keys::Command,
    },
    /// Repair a damaged repository from what it still holds (`repair index`).
    Repair {
        #[command(subcommand)]
        command: cmd::repair::Command,
    },
    /// List the client profiles: what each client keeps where, what is rebuildable, live locks.
    Profiles(cmd::profiles::Args),
    /// Inspect, split and merge EIP-3076 slashing-protection interchange files.
    Slashing {
        #[command(subcommand)]
        command: cmd::slashing::Command,
    },
}

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The answer is "no" (exit 1).
    No,
    /// Finished, but data was damaged or left out (exit 3).
    DataProblem,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(a) => cmd::init::run(a),
        Command::Backup(a) => cmd::backup::run(a),
        Command::Snapshots(a) => cmd::snapshots::run(a),
        Command::Restore(a) => cmd::restore::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Checksums(a) => cmd::checksums::run(a),
        Command::Drill(a) => cmd::drill::run(a),
        Command::Drills(a) => cmd::drills::run(a),
        Command::Copy(a) => cmd::copy::run(a),
        Command::Forget(a) => cmd::forget::run(a),
        Command::Prune(a) => cmd::prune::run(a),
        Command::Keys { command } => cmd::keys::run(command),
        Command::Slashing { command } => cmd::slashing::run(command),
        Command::Profiles(a) => cmd::profiles::run(a),
        Command::Repair { command } => cmd::repair::run(command),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::No) => ExitCode::from(1),
        Ok(Outcome::DataProblem) => ExitCode::from(3),
        Err(err) => {
            eprintln!("error: {err:#}");
            let data = err.chain().any(|c| {
                c.downcast_ref::<vtool_snapshot::Error>()
                    .is_some_and(|e| e.is_data_problem())
            });
            ExitCode::from(if data { 3 } else { 2 })
        }
    }
}
