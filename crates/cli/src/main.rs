//! `vtool`: back up, move and prove the restorability of validator nodes.
//!
//! Exit status: 0 success, 1 a check or gate said "no", 2 usage or environment error,
//! 3 a data problem (damaged or missing objects, files not backed up or restored),
//! 4 `vtool run` found another run holding this host's lock (after `--lock-wait`).
//! `vtool run` otherwise exits with the worst status of its steps: 0 < 1 < 3 < 2.

mod cmd;
mod metrics;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vtool",
    version,
    about = "Back up, move and prove the restorability of validator nodes"
)]
struct Cli {
    /// Record this run in a node_exporter textfile (merged with what it holds): commands
    /// that work on a repository write their step's and the repository's metrics.
    #[arg(long, global = true, env = "VTOOL_METRICS_FILE", value_name = "PATH")]
    metrics_file: Option<PathBuf>,
    /// The `step` label of those metrics (default: the command, e.g. `backup`, `check-packs`).
    #[arg(long, global = true, value_name = "NAME")]
    metrics_step: Option<String>,
    /// Endpoint of a self-hosted S3-compatible store for s3:// repositories, e.g.
    /// `http://10.0.0.5:3900` (the same as VTOOL_S3_ENDPOINT).
    #[arg(long, global = true, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Address s3:// buckets as `endpoint/bucket/key`, as self-hosted stores usually need
    /// (the same as VTOOL_S3_PATH_STYLE=1).
    #[arg(long, global = true)]
    s3_path_style: bool,
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
    /// The pre-migration gate: one fail-closed verdict that validators may start elsewhere.
    Gate(cmd::gate::Args),
    /// Move validators between clients in batches (`migrate plan`, `migrate run`).
    Migrate {
        #[command(subcommand)]
        command: cmd::migrate::Command,
    },
    /// List gate reports and restore overrides, newest first (authenticated with a key).
    Reports(cmd::reports::Args),
    /// Show one gate report (`report show ID --format md|json`).
    Report {
        #[command(subcommand)]
        command: cmd::report::Command,
    },
    /// The custody registry in etcd: one signing host per validator key (status, claim,
    /// release, check).
    Custody {
        #[command(subcommand)]
        command: cmd::custody::Command,
    },
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
    /// Prove validator keys offline (or, with --expect-live, live) on beacon nodes.
    Liveness(cmd::liveness::Args),
    /// List the client profiles: what each client keeps where, what is rebuildable, live locks.
    Profiles(cmd::profiles::Args),
    /// Inspect, split and merge EIP-3076 slashing-protection interchange files.
    Slashing {
        #[command(subcommand)]
        command: cmd::slashing::Command,
    },
    /// Solana: copy an identity's tower to a standby, checked by hash (`tower copy`).
    Tower {
        #[command(subcommand)]
        command: cmd::tower::Command,
    },
    /// Do what vtool.toml says is due: backup, copy, forget+prune, check slice, drill.
    Run(cmd::run::Args),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(cmd::completions::Args),
    /// Print the manual page, or write one per command with --dir.
    Man(cmd::man::Args),
}

/// How a command ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The answer is "no" (exit 1).
    No,
    /// Finished, but data was damaged or left out (exit 3).
    DataProblem,
    /// Another `vtool run` holds this host's lock (exit 4).
    Busy,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The S3 backend reads its endpoint settings from these (`S3Config::with_env`), also in
    // the processes `vtool run` starts; set before any thread exists.
    if let Some(endpoint) = &cli.s3_endpoint {
        std::env::set_var("VTOOL_S3_ENDPOINT", endpoint);
    }
    if cli.s3_path_style {
        std::env::set_var("VTOOL_S3_PATH_STYLE", "1");
    }
    let metrics_target = cli
        .metrics_file
        .as_ref()
        .and_then(|_| metrics::target(&matches, cli.metrics_step.as_deref()));
    let started = time::OffsetDateTime::now_utc();
    let clock = Instant::now();
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
        Command::Gate(a) => cmd::gate::run(a),
        Command::Migrate { command } => cmd::migrate::run(command),
        Command::Reports(a) => cmd::reports::run(a),
        Command::Report { command } => cmd::report::run(command),
        Command::Custody { command } => cmd::custody::run(command),
        Command::Copy(a) => cmd::copy::run(a),
        Command::Forget(a) => cmd::forget::run(a),
        Command::Prune(a) => cmd::prune::run(a),
        Command::Keys { command } => cmd::keys::run(command),
        Command::Slashing { command } => cmd::slashing::run(command),
        Command::Liveness(a) => cmd::liveness::run(a),
        Command::Profiles(a) => cmd::profiles::run(a),
        Command::Repair { command } => cmd::repair::run(command),
        Command::Tower { command } => cmd::tower::run(command),
        Command::Run(a) => cmd::run::run(a, cli.metrics_file.clone()),
        Command::Completions(a) => cmd::completions::run(a, Cli::command()),
        Command::Man(a) => cmd::man::run(a, Cli::command()),
    };
    let code = exit_code(result);
    if let (Some(file), Some(target)) = (&cli.metrics_file, &metrics_target) {
        metrics::record(file, target, started, clock.elapsed(), code);
    }
    ExitCode::from(code)
}

fn exit_code(result: anyhow::Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Ok) => 0,
        Ok(Outcome::No) => 1,
        Ok(Outcome::DataProblem) => 3,
        Ok(Outcome::Busy) => vtool_ops::EXIT_BUSY,
        Err(err) => {
            eprintln!("error: {err:#}");
            let data = err.chain().any(|c| {
                c.downcast_ref::<vtool_snapshot::Error>()
                    .is_some_and(|e| e.is_data_problem())
            });
            if data {
                3
            } else {
                2
            }
        }
    }
}
