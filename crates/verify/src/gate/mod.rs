//! The pre-migration gate (`vtool gate`): one fail-closed verdict that a validator may start
//! on its new host. Every check ends pass, fail or unknown, with its evidence, and unknown
//! counts as fail:
//!
//! * **backup**: the snapshot authenticates, is complete and no older than the age limit;
//! * **drill**: a passed, authenticated drill of the same fingerprint within the limit;
//! * **copies**: enough locations hold the fingerprint, each with a recent passed full
//!   `check --packs` recorded there, for that location;
//! * **keys**: every migrating key has a keystore in the snapshot that a drill decrypted;
//! * **slashing**: the interchange covers every key, is for the beacon nodes' chain, is
//!   version 5 and holds nothing slashable;
//! * **offline**: every key offline on every beacon node for N consecutive epochs;
//! * **finality**: the finalized epoch is past the interchange's highest target epoch and
//!   the last epoch any key was seen live;
//! * **software**: the client versions the snapshot recorded, against the expected ones.
//!
//! The verdict and its evidence are stored as a sealed `reports/<blake3>` object, which the
//! restore guard ([`guard`]) and custody claims rely on.

mod backup;
mod chain;
pub mod evidence;
pub mod guard;
mod keys;
mod markdown;
mod slashing;
mod software;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::{CheckStatus, GateCheck, GateInputs, GateReport, KeyEvidence};
use vtool_snapshot::time::OffsetDateTime;
use vtool_snapshot::Repository;
use vtool_validator::beacon::BeaconClient;
use vtool_validator::liveness::{LivenessEvent, LivenessReport};

use crate::records::{save_record, GATE_KIND};

pub use markdown::{render_markdown, status_word};

/// A repository location the gate reads, under the name its check records must carry.
pub struct Location {
    /// As [`vtool_transfer::url::RepoUrl::canonical`] spells it.
    pub name: String,
    pub repo: Repository,
}

/// What the gate is asked to prove.
#[derive(Clone)]
pub struct GateOptions {
    /// Snapshot id prefix or `latest`.
    pub snapshot: String,
    /// The migrating keys, `0x`-prefixed lowercase.
    pub pubkeys: Vec<String>,
    /// The EIP-3076 interchange the new host imports.
    pub slashing: Option<PathBuf>,
    pub beacons: Vec<BeaconClient>,
    /// Locations (the repository included) that must prove they hold the fingerprint.
    pub min_copies: u32,
    /// How old the snapshot, the drill and the check records may be.
    pub max_age: Duration,
    /// Consecutive offline epochs required.
    pub epochs: u64,
    /// `CLIENT=VERSION` expectations.
    pub expect_versions: Vec<(String, String)>,
    /// As given on the command line, for the report.
    pub inputs: GateInputs,
}

/// What the gate is doing, for progress output.
pub enum GateEvent<'a> {
    Checked(&'a GateCheck),
    Liveness(&'a LivenessEvent),
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Repository(#[from] vtool_snapshot::Error),
    #[error("no migrating keys: give --keys DIR or --pubkey")]
    NoKeys,
    #[error("no repository to prove the backup with")]
    NoRepository,
    #[error("the verdict could not be stored in the repository: {0}")]
    Save(vtool_snapshot::Error),
}

/// A finished gate: its report and where it was stored.
pub struct GateRun {
    pub report: GateReport,
    pub report_name: String,
    /// The liveness watch, when it ran.
    pub liveness: Option<LivenessReport>,
}

/// Run every check against `locations`: the repository the snapshot is in first, then its
/// copies. The verdict is stored in the first.
pub fn gate(
    locations: &[Location],
    key: &ChunkKey,
    opts: &GateOptions,
    progress: &mut dyn FnMut(GateEvent),
) -> Result<GateRun, GateError> {
    if opts.pubkeys.is_empty() {
        return Err(GateError::NoKeys);
    }
    let primary = locations.first().ok_or(GateError::NoRepository)?;
    let mut checks = Checks {
        done: Vec::new(),
        since: Instant::now(),
    };
    let fresh = backup::Freshness::new(opts.max_age);
    let (snap_id, snap) = primary.repo.snapshots()?.find(&opts.snapshot, Some(key))?;
    let mut keys: BTreeMap<String, KeyEvidence> = opts
        .pubkeys
        .iter()
        .map(|p| {
            (
                p.clone(),
                KeyEvidence {
                    pubkey: p.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();

    checks.push(
        progress,
        backup::snapshot_check(&snap_id, &snap, key, &fresh),
    );
    let drills = backup::fresh_drills(&primary.repo, key, &snap.fingerprint, &fresh)?;
    checks.push(progress, backup::drill_check(&drills, &fresh));
    checks.push(
        progress,
        backup::copies_check(locations, key, &snap.fingerprint, opts.min_copies, &fresh),
    );
    checks.push(progress, keys::keys_check(&snap, key, &drills, &mut keys));
    let chain_roots = chain::genesis_roots(&opts.beacons);
    let slashing = slashing::slashing_check(opts.slashing.as_deref(), &chain_roots, &mut keys);
    checks.push(progress, slashing.check);
    checks.push(
        progress,
        software::software_check(&snap, &opts.expect_versions),
    );

    // The epoch waits come last, and only when everything else passed: minutes spent
    // watching cannot turn a failed verdict into a pass.
    let failed_so_far: Vec<String> = checks
        .done
        .iter()
        .filter(|c| c.status != CheckStatus::Pass)
        .map(|c| c.name.clone())
        .collect();
    let (mut liveness, mut finalized_epoch) = (None, None);
    if failed_so_far.is_empty() {
        let watched = chain::offline_check(
            &opts.beacons,
            &opts.pubkeys,
            opts.epochs,
            &mut keys,
            &mut |e| progress(GateEvent::Liveness(e)),
        );
        let last_live = watched.report.as_ref().and_then(|r| r.last_live_epoch);
        checks.push(progress, watched.check);
        liveness = watched.report;
        let finality = chain::finality_check(&opts.beacons, slashing.max_target_epoch, last_live);
        finalized_epoch = finality.finalized_epoch;
        checks.push(progress, finality.check);
    } else {
        let why = format!("not watched: fix {} first", failed_so_far.join(", "));
        for name in ["offline", "finality"] {
            checks.push(
                progress,
                check(name, CheckStatus::Unknown, &why, Vec::new()),
            );
        }
    }

    let checks = checks.done;
    let passed = checks.iter().all(|c| c.status == CheckStatus::Pass);
    let report = GateReport {
        kind: GATE_KIND.into(),
        version: 1,
        time: OffsetDateTime::now_utc(),
        hostname: vtool_snapshot::hostname(),
        vtool_version: env!("CARGO_PKG_VERSION").into(),
        passed,
        snapshot: Some(snap_id),
        fingerprint: Some(snap.fingerprint),
        pubkeys: opts.pubkeys.clone(),
        inputs: opts.inputs.clone(),
        checks,
        keys: keys.into_values().collect(),
        finalized_epoch,
        interchange: slashing.evidence,
        override_of: None,
        batch: None,
        custody_token: None,
    };
    let report_name = save_record(primary.repo.backend(), &report, key).map_err(GateError::Save)?;
    Ok(GateRun {
        report,
        report_name,
        liveness,
    })
}

/// The finished checks, each timed from the end of the one before.
struct Checks {
    done: Vec<GateCheck>,
    since: Instant,
}

impl Checks {
    /// Keep a finished check and tell the caller.
    fn push(&mut self, progress: &mut dyn FnMut(GateEvent), mut c: GateCheck) {
        c.duration_secs = self.since.elapsed().as_secs_f64();
        self.since = Instant::now();
        progress(GateEvent::Checked(&c));
        self.done.push(c);
    }
}

fn check(name: &str, status: CheckStatus, summary: &str, evidence: Vec<String>) -> GateCheck {
    GateCheck {
        name: name.into(),
        status,
        summary: summary.into(),
        evidence,
        warnings: Vec::new(),
        duration_secs: 0.0,
    }
}

/// `3 h 05 min`, `2 d 4 h`, `45 s`: how old a piece of evidence is.
fn human_secs(secs: i64) -> String {
    let (sign, s) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    let text = match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    };
    format!("{sign}{text}")
}
