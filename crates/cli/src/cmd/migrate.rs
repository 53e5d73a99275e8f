use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use vtool_snapshot::repofile::GateInputs;
use vtool_transfer::url::RepoUrl;
use vtool_validator::beacon::BeaconClient;
use vtool_validator::keymanager::KeymanagerClient;
use vtool_verify::gate::{status_word, GateEvent, GateOptions, Location};
use vtool_verify::migrate::{KeystoreSource, MigrateEvent, MigrateOptions, Plan};

use super::{ChunkKeyArgs, PubkeyArgs, RepoArg};
use crate::{output, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write a migration plan (JSON on stdout): a test batch, then batches of --batch-size.
    Plan(PlanArgs),
    /// Move the keys of a plan from the old to the new validator client, batch by batch,
    /// through the Keymanager API, the gate and custody; stops at the first anomaly.
    Run(Box<RunArgs>),
}

#[derive(clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    keys: PubkeyArgs,
    /// Keys per batch after the first.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Keys in the first (test) batch.
    #[arg(long, default_value_t = 1)]
    first_batch: usize,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The plan from `vtool migrate plan`.
    plan: PathBuf,
    /// The old validator client's Keymanager API, and a file holding its bearer token.
    #[arg(long, value_name = "URL")]
    from: String,
    #[arg(long, value_name = "FILE")]
    from_token: PathBuf,
    /// The new validator client's Keymanager API, and its token file.
    #[arg(long, value_name = "URL")]
    to: String,
    #[arg(long, value_name = "FILE")]
    to_token: PathBuf,
    /// Beacon nodes (repeatable; two or more, of different clients, are safer).
    #[arg(long = "beacon", value_name = "URL", required = true)]
    beacons: Vec<String>,
    /// The repository holding the backup the gate proves.
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    key: ChunkKeyArgs,
    /// The snapshot the gate proves.
    #[arg(long, default_value = "latest")]
    snapshot: String,
    #[arg(long = "copy-repo", value_name = "URL")]
    copy_repos: Vec<String>,
    /// The keystores to import (any client's layout), on this host.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "keystores_from_snapshot"
    )]
    keystores: Option<PathBuf>,
    /// Or: the keystore directory in the gate's snapshot (relative to its root); each batch's
    /// keystores are restored through the restore guard into a private scratch directory.
    /// Needs --identity; --passwords and --password-file are then relative to the snapshot's
    /// root too, unless absolute.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "keystores",
        requires = "identity"
    )]
    keystores_from_snapshot: Option<PathBuf>,
    #[command(flatten)]
    passwords: super::PasswordArgs,
    /// The backup's EIP-3076 interchange, merged with what the old client returns.
    #[arg(long, value_name = "FILE")]
    backup_slashing: Option<PathBuf>,
    /// The state file; the batch files go beside it.
    #[arg(long, default_value = "migration-state.json")]
    state: PathBuf,
    /// Go on with the migration the state file records.
    #[arg(long)]
    resume: bool,
    /// Consecutive epochs every key must be offline before it moves.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Epochs within which every key must be seen live on the new side.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    live_within: u64,
    /// Most keys offline at once (no batch may be larger).
    #[arg(long)]
    max_offline: Option<usize>,
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    max_age: Duration,
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    finality_timeout: Duration,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    api_timeout: Duration,
    /// The host name custody is claimed for (the new host's).
    #[arg(long, required_unless_present = "no_custody")]
    host: Option<String>,
    #[command(flatten)]
    etcd: Option<super::custody::EtcdArgs>,
    /// Move keys without claiming custody in etcd: only where no validator client checks
    /// custody before it starts.
    #[arg(long, conflicts_with_all = ["host", "endpoints"])]
    no_custody: bool,
    #[arg(long)]
    json: bool,
}

/// Custody claimed in etcd with the batch's gate report as evidence.
struct EtcdCustody<'a> {
    registry: vtool_validator::custody::Registry,
    host: String,
    key: &'a vtool_snapshot::keys::ChunkKey,
    /// The gate report is fresh: it was just written.
    max_age: Duration,
}

impl vtool_verify::migrate::Custody for EtcdCustody<'_> {
    fn claim(&self, pubkeys: &[String], report_bytes: &[u8]) -> Result<i64, String> {
        let evidence = vtool_verify::gate::evidence::custody_evidence(
            report_bytes,
            self.key,
            pubkeys,
            self.max_age,
        )
        .map_err(|e| e.to_string())?;
        let keys = super::custody::custody_keys(pubkeys).map_err(|e| e.to_string())?;
        self.registry
            .claim(&self.host, &keys, Some(&evidence))
            .map_err(|e| e.to_string())
    }
}

pub fn run(c: Command) -> anyhow::Result<Outcome> {
    match c {
        Command::Plan(a) => {
            let pubkeys = a.keys.pubkeys()?;
            let plan = vtool_verify::migrate::plan(&pubkeys, a.batch_size, a.first_batch)?;
            output::print_json(&plan)?;
            Ok(Outcome::Ok)
        }
        Command::Run(a) => run_plan(*a),
    }
}

fn token(path: &PathBuf) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?
        .trim()
        .to_string())
}

fn run_plan(a: RunArgs) -> anyhow::Result<Outcome> {
    let bytes =
        std::fs::read(&a.plan).with_context(|| format!("cannot read {}", a.plan.display()))?;
    let text = String::from_utf8(bytes.clone()).context("the plan is not UTF-8")?;
    let plan = Plan::parse(&a.plan.display().to_string(), &text)?;
    let repo = a.repo.open()?;
    let key = a.key.require(&repo, "the migration's gate")?;
    let mut locations = vec![Location {
        name: RepoUrl::parse(&a.repo.repo)?.canonical(),
        repo,
    }];
    for url in &a.copy_repos {
        locations.push(Location {
            name: RepoUrl::parse(url)?.canonical(),
            repo: RepoArg { repo: url.clone() }.open()?,
        });
    }
    let beacons = a
        .beacons
        .iter()
        .map(|u| BeaconClient::new(u, a.api_timeout).with_context(|| format!("--beacon {u}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let min_copies = locations.len() as u32;
    let opened = match (&a.keystores_from_snapshot, &a.key.identity) {
        (Some(_), Some(identity)) => Some(super::open_snapshot(
            &a.repo,
            &super::IdentityArg {
                identity: identity.clone(),
            },
            &a.snapshot,
            false,
        )?),
        _ => None,
    };
    let keystores = match (&a.keystores, &a.keystores_from_snapshot, &opened) {
        (Some(dir), _, _) => KeystoreSource::Dir {
            dir: dir.clone(),
            passwords: vtool_validator::PasswordSource::or_default_for(
                a.passwords.explicit().as_ref(),
                dir,
            ),
        },
        (None, Some(dir), Some(opened)) => KeystoreSource::Snapshot {
            opened,
            dir: dir.clone(),
            passwords: a.passwords.explicit(),
        },
        _ => {
            anyhow::bail!("give --keystores DIR, or --keystores-from-snapshot DIR with --identity")
        }
    };
    let custody = match (&a.etcd, &a.host) {
        (Some(etcd), Some(host)) if !a.no_custody => Some(EtcdCustody {
            registry: etcd
                .connect()
                .context("cannot reach the custody registry")?,
            host: host.clone(),
            key: &key,
            max_age: Duration::from_secs(3600),
        }),
        _ if a.no_custody => None,
        _ => {
            anyhow::bail!("give --etcd and --host (custody is claimed per batch), or --no-custody")
        }
    };
    let opts = MigrateOptions {
        plan,
        plan_blake3: vtool_snapshot::Id::hash(&bytes).to_hex(),
        state_file: a.state.clone(),
        resume: a.resume,
        from: KeymanagerClient::new(&a.from, &token(&a.from_token)?, a.api_timeout)?,
        to: KeymanagerClient::new(&a.to, &token(&a.to_token)?, a.api_timeout)?,
        keystores,
        backup_slashing: a.backup_slashing.clone(),
        gate: GateOptions {
            snapshot: a.snapshot.clone(),
            pubkeys: Vec::new(),
            slashing: None,
            beacons,
            min_copies,
            max_age: a.max_age,
            epochs: a.epochs,
            expect_versions: Vec::new(),
            inputs: GateInputs {
                repo: a.repo.repo.clone(),
                copy_repos: a.copy_repos.clone(),
                snapshot: a.snapshot.clone(),
                slashing: None,
                beacons: a.beacons.clone(),
                copies: min_copies,
                max_age_secs: a.max_age.as_secs(),
                epochs: a.epochs,
                expect_versions: Vec::new(),
            },
        },
        locations: &locations,
        key: &key,
        live_within: a.live_within,
        max_offline: a.max_offline,
        finality_timeout: a.finality_timeout,
        custody: custody
            .as_ref()
            .map(|c| c as &dyn vtool_verify::migrate::Custody),
    };
    let quiet = a.json;
    let result = vtool_verify::migrate::run(&opts, &mut |e| {
        if quiet {
            return;
        }
        match e {
            MigrateEvent::Step { batch, of, step } => eprintln!("batch {batch}/{of}: {step:?}"),
            MigrateEvent::Gate(GateEvent::Checked(c)) => {
                eprintln!(
                    "  gate {:<8} {:<9} {}",
                    status_word(c.status),
                    c.name,
                    c.summary
                )
            }
            MigrateEvent::Gate(GateEvent::Liveness(l)) | MigrateEvent::Liveness(l) => {
                super::liveness::progress(l)
            }
            MigrateEvent::Note(n) => eprintln!("  {n}"),
        }
    });
    match result {
        Ok(state) => {
            if a.json {
                output::print_json(&state)?;
            } else {
                for (i, b) in state.batches.iter().enumerate() {
                    println!(
                        "batch {}: done; report {}",
                        i + 1,
                        b.batch_report.as_deref().unwrap_or("-")
                    );
                }
                println!("MIGRATION DONE: every key runs on {}", a.to);
            }
            Ok(Outcome::Ok)
        }
        Err(vtool_verify::migrate::MigrateError::Stopped {
            batch,
            reason,
            next,
        }) => {
            let message = format!(
                "MIGRATION STOPPED at batch {batch}: {reason}\nnext: {next}\nstate: {}",
                a.state.display()
            );
            if a.json {
                output::print_json(&serde_json::json!({
                    "stopped": {"batch": batch, "reason": reason, "next": next},
                    "state": a.state,
                }))?;
            }
            eprintln!("{message}");
            Ok(Outcome::No)
        }
        Err(e) => Err(e.into()),
    }
}
