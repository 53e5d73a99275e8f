use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use vtool_snapshot::repofile::{CheckStatus, GateInputs};
use vtool_transfer::url::RepoUrl;
use vtool_validator::beacon::BeaconClient;
use vtool_verify::gate::{status_word, GateEvent, GateOptions, Location};

use super::{ChunkKeyArgs, PubkeyArgs, RepoArg};
use crate::{output, Outcome};

/// One fail-closed verdict that validators may start on their new host.
///
/// Checks the backup (the snapshot authenticates and is fresh, a recent drill of its
/// fingerprint passed, enough locations hold it with a recent passed `check --packs`), the
/// keys (in the snapshot, decrypted by a drill), the slashing-protection interchange (covers
/// every key, same chain, version 5, nothing slashable), that the old signer is offline on
/// every beacon node for --epochs epochs, finality, and the client versions. Every check is
/// pass, fail or unknown; unknown counts as fail. The verdict and its evidence are stored in
/// the repository (`vtool reports`). Exit 0 only when every check passes, 1 otherwise.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    key: ChunkKeyArgs,
    /// Snapshot id (any unique prefix) or `latest`.
    #[arg(default_value = "latest")]
    snapshot: String,
    #[command(flatten)]
    keys: PubkeyArgs,
    /// The EIP-3076 interchange the new host will import.
    #[arg(long, value_name = "FILE")]
    slashing: Option<PathBuf>,
    /// A beacon node's REST API (repeatable; two or more, of different clients, are safer).
    #[arg(long = "beacon", value_name = "URL")]
    beacons: Vec<String>,
    /// Another copy of the repository that must prove it holds the snapshot (repeatable).
    #[arg(long = "copy-repo", value_name = "URL")]
    copy_repos: Vec<String>,
    /// Locations (the repository and the copies) that must prove they hold the snapshot;
    /// default: all of them.
    #[arg(long)]
    copies: Option<u32>,
    /// How old the snapshot, its drill and each copy's check may be.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    max_age: Duration,
    /// Consecutive completed epochs every key must be offline on every node.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// CLIENT=VERSION the new host runs, compared with the versions the snapshot recorded
    /// (repeatable; the recorded version must contain VERSION).
    #[arg(long = "expect-version", value_name = "CLIENT=VERSION")]
    expect_versions: Vec<String>,
    /// How long one beacon API request may take.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    beacon_timeout: Duration,
    /// Also write the sealed report, byte for byte as stored, to FILE (the evidence
    /// `vtool custody claim` takes).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let pubkeys = a.keys.pubkeys()?;
    let expect_versions = a
        .expect_versions
        .iter()
        .map(|e| match e.split_once('=') {
            Some((c, v)) if !c.is_empty() && !v.is_empty() => Ok((c.to_string(), v.to_string())),
            _ => bail!("--expect-version {e:?}: expected CLIENT=VERSION, e.g. lighthouse=v5.3.0"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let repo = a.repo.open()?;
    let key = a.key.require(&repo, "the gate")?;
    let mut locations = vec![Location {
        name: RepoUrl::parse(&a.repo.repo)?.canonical(),
        repo,
    }];
    let copies = a
        .copy_repos
        .iter()
        .map(|url| {
            let repo = RepoArg { repo: url.clone() }
                .open()
                .with_context(|| format!("--copy-repo {url}"))?;
            Ok(Location {
                name: RepoUrl::parse(url)?.canonical(),
                repo,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let beacons = a
        .beacons
        .iter()
        .map(|u| BeaconClient::new(u, a.beacon_timeout).with_context(|| format!("--beacon {u}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    locations.extend(copies);
    let count = locations.len() as u32;
    let min_copies = a.copies.unwrap_or(count);
    if min_copies == 0 || min_copies > count {
        bail!("--copies {min_copies}: between 1 and the {count} location(s) given");
    }
    let opts = GateOptions {
        snapshot: a.snapshot.clone(),
        pubkeys,
        slashing: a.slashing.clone(),
        beacons,
        min_copies,
        max_age: a.max_age,
        epochs: a.epochs,
        expect_versions,
        inputs: GateInputs {
            repo: a.repo.repo.clone(),
            copy_repos: a.copy_repos.clone(),
            snapshot: a.snapshot.clone(),
            slashing: a.slashing.as_ref().map(|p| p.display().to_string()),
            beacons: a.beacons.clone(),
            copies: min_copies,
            max_age_secs: a.max_age.as_secs(),
            epochs: a.epochs,
            expect_versions: a.expect_versions.clone(),
        },
    };
    let quiet = a.json;
    let run = vtool_verify::gate::gate(&locations, &key, &opts, &mut |e| {
        if quiet {
            return;
        }
        match e {
            GateEvent::Checked(c) => {
                eprintln!("{:<8} {:<9} {}", status_word(c.status), c.name, c.summary);
                for w in &c.warnings {
                    eprintln!("         warning: {w}");
                }
            }
            GateEvent::Liveness(l) => super::liveness::progress(l),
        }
    })?;
    if let Some(path) = &a.report {
        let bytes = locations[0]
            .repo
            .backend()
            .get(&run.report_name)
            .context("cannot read the stored report back")?;
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let r = &run.report;
    if a.json {
        output::print_json(&serde_json::json!({
            "report": run.report_name,
            "passed": r.passed,
            "gate": r,
        }))?;
    } else {
        for c in &r.checks {
            println!("{:<8} {:<9} {}", status_word(c.status), c.name, c.summary);
            if c.status != CheckStatus::Pass {
                for e in &c.evidence {
                    println!("         {e}");
                }
            }
        }
        let failing = r.keys.iter().filter(|k| !k.problems.is_empty()).count();
        if failing > 0 {
            println!(
                "{failing} key(s) fail; `vtool report show {}` lists them",
                short_name(&run.report_name)
            );
        }
        println!(
            "{}: recorded as {}",
            if r.passed {
                "GATE PASSED: the validators may start on the new host"
            } else {
                "GATE FAILED: do not start the validators on the new host"
            },
            run.report_name
        );
    }
    Ok(if r.passed { Outcome::Ok } else { Outcome::No })
}

fn short_name(name: &str) -> &str {
    let id = name.trim_start_matches("reports/");
    id.get(..12).unwrap_or(id)
}
