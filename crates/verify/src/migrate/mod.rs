//! Rolling migration (`vtool migrate run`): validator keys move from an old to a new client
//! through the standard Keymanager API, batch by batch, each batch through:
//!
//! 1. DELETE on the old client, which stops signing and returns the keys' EIP-3076 data;
//! 2. every key `deleted` or `not_active`;
//! 3. that data merged with the backup's by the max rule;
//! 4. finality past the merged data's highest target epoch;
//! 5. the gate (which watches every key offline for N epochs), and custody claimed;
//! 6. POST of the keystores and the merged slashing protection to the new client;
//! 7. every key seen live on the new side within M epochs;
//! 8. the batch's report (the gate's format, with the custody token) stored.
//!
//! It stops at the first anomaly (a key not stopped, live again on the old side, refused by
//! the new client, not live on the new side), leaving the state file ([`state`]) and saying
//! what to do; `--resume` goes on from the step recorded.

mod keystores;
mod plan;
mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vtool_snapshot::keys::ChunkKey;
use vtool_snapshot::repofile::{CheckStatus, GateCheck, GateReport};
use vtool_validator::keymanager::{DeleteStatus, ImportStatus, KeymanagerClient};
use vtool_validator::liveness::{watch, LivenessEvent, LivenessMode, LivenessOptions};
use vtool_validator::slashing::{merge, subset, Interchange, PublicKey};

use crate::gate::{gate, GateEvent, GateOptions, Location};
use crate::records::{save_record, MIGRATION_KIND};

pub use keystores::KeystoreSource;
use keystores::{load_keystores, restore_batch, snapshot_has_keystores, Importable};
pub use plan::{plan, Plan, PlanError, PLAN_KIND};
pub use state::{BatchState, MigrationState, StateError, Step, STATE_KIND};

/// How custody moves with a batch: claimed with the gate's report as evidence.
pub trait Custody {
    /// Claim `pubkeys` for the new host with the stored gate report (`report_bytes`, exactly
    /// as stored) as evidence; the fencing token.
    fn claim(&self, pubkeys: &[String], report_bytes: &[u8]) -> Result<i64, String>;
}

/// Everything a migration needs.
pub struct MigrateOptions<'a> {
    pub plan: Plan,
    /// BLAKE3 of the plan file's bytes.
    pub plan_blake3: String,
    pub state_file: PathBuf,
    pub resume: bool,
    pub from: KeymanagerClient,
    pub to: KeymanagerClient,
    /// Where the keystores and their passwords come from.
    pub keystores: KeystoreSource<'a>,
    /// The backup's EIP-3076 interchange, merged with what the old client returns.
    pub backup_slashing: Option<PathBuf>,
    /// The gate's options; `pubkeys` and `slashing` are set per batch.
    pub gate: GateOptions,
    /// The repository (first) and its copies, for the gate.
    pub locations: &'a [Location],
    pub key: &'a ChunkKey,
    /// Epochs within which every key must be seen live on the new side.
    pub live_within: u64,
    /// Most keys offline at once: no batch may be larger.
    pub max_offline: Option<usize>,
    /// How long to wait for finality past the batch's last vote.
    pub finality_timeout: Duration,
    pub custody: Option<&'a dyn Custody>,
}

/// What the migration is doing, for progress output.
pub enum MigrateEvent<'a> {
    Step { batch: usize, of: usize, step: Step },
    Gate(GateEvent<'a>),
    Liveness(&'a LivenessEvent),
    Note(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("batch {batch} stopped: {reason}. {next}")]
    Stopped {
        batch: usize,
        reason: String,
        next: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Gate(#[from] crate::gate::GateError),
    #[error(transparent)]
    Repository(#[from] vtool_snapshot::Error),
}

/// Run (or resume) the migration; the final state when every batch is done.
pub fn run(
    opts: &MigrateOptions,
    progress: &mut dyn FnMut(MigrateEvent),
) -> Result<MigrationState, MigrateError> {
    if let Some(max) = opts.max_offline {
        if let Some(big) = opts.plan.batches.iter().find(|b| b.len() > max) {
            return Err(MigrateError::Setup(format!(
                "a batch of {} keys exceeds --max-offline {max}; plan smaller batches",
                big.len()
            )));
        }
    }
    // Every keystore (and, from a directory, every password) is found before anything is
    // stopped.
    let importable = match &opts.keystores {
        KeystoreSource::Dir { dir, passwords } => {
            let planned: Vec<String> = opts.plan.batches.concat();
            load_keystores(dir, passwords, &planned)?
        }
        KeystoreSource::Snapshot { opened, dir, .. } => {
            snapshot_has_keystores(opts, opened, dir)?;
            BTreeMap::new()
        }
    };
    let mut state = MigrationState::open(
        &opts.state_file,
        &opts.plan_blake3,
        opts.plan.batches.len(),
        opts.resume,
    )?;
    state.stopped = None;
    let of = opts.plan.batches.len();
    for b in 0..of {
        let resumed_at = state.batches[b].step;
        loop {
            let step = state.batches[b].step;
            if step == Step::Done {
                break;
            }
            progress(MigrateEvent::Step {
                batch: b + 1,
                of,
                step,
            });
            match advance(
                opts,
                &importable,
                &mut state,
                b,
                step == resumed_at,
                progress,
            ) {
                Ok(next) => state.batches[b].step = next,
                Err(MigrateError::Stopped {
                    batch,
                    reason,
                    next,
                }) => {
                    state.stopped = Some(format!("batch {batch}: {reason}. {next}"));
                    state.save(&opts.state_file)?;
                    return Err(MigrateError::Stopped {
                        batch,
                        reason,
                        next,
                    });
                }
                Err(e) => return Err(e),
            }
            state.save(&opts.state_file)?;
        }
    }
    Ok(state)
}

/// Do the step batch `b` is at; the step it is at afterwards. `resuming` when this step
/// was recorded by an earlier run, so a repeated DELETE or POST is expected.
fn advance(
    opts: &MigrateOptions,
    importable: &BTreeMap<String, Importable>,
    state: &mut MigrationState,
    b: usize,
    resuming: bool,
    progress: &mut dyn FnMut(MigrateEvent),
) -> Result<Step, MigrateError> {
    let keys = &opts.plan.batches[b];
    let batch = b + 1;
    let stop = |reason: String, next: &str| MigrateError::Stopped {
        batch,
        reason,
        next: next.into(),
    };
    let dir = opts
        .state_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let st = &mut state.batches[b];
    match st.step {
        // Recorded before the DELETE goes out: a crash after it resumes with a DELETE again.
        Step::Pending => Ok(Step::Deleting),
        Step::Deleting => {
            let deleted = opts.from.delete(keys).map_err(|e| {
                stop(
                    e.to_string(),
                    "the old client may still be signing: check it, then --resume",
                )
            })?;
            let bad: Vec<String> = keys
                .iter()
                .zip(&deleted.statuses)
                .filter(|(_, s)| {
                    !matches!(s.status, DeleteStatus::Deleted | DeleteStatus::NotActive)
                })
                .map(|(k, s)| format!("{k} {:?} {}", s.status, s.message))
                .collect();
            if !bad.is_empty() {
                return Err(stop(
                    format!("the old client did not stop every key: {}", bad.join("; ")),
                    "stop those keys on the old client by hand, then --resume",
                ));
            }
            let name = format!("batch-{batch}.old-slashing.json");
            write(dir, &name, deleted.slashing_protection.as_bytes())?;
            st.old_slashing = Some(name);
            Ok(Step::Deleted)
        }
        Step::Deleted => {
            let merged = merged_slashing(opts, dir, st, keys).map_err(|e| {
                stop(
                    e,
                    "fix the slashing data, then --resume (the old client stays stopped)",
                )
            })?;
            let name = format!("batch-{batch}.slashing.json");
            let text = merged
                .to_json_string()
                .map_err(|e| MigrateError::Setup(e.to_string()))?;
            write(dir, &name, text.as_bytes())?;
            st.merged_slashing = Some(name);
            let target = merged
                .data
                .iter()
                .flat_map(|v| v.signed_attestations.iter().map(|a| a.target_epoch))
                .max();
            wait_for_finality(opts, target, progress)
                .map_err(|e| stop(e, "wait for the chain to finalize, then --resume"))?;
            Ok(Step::Finalized)
        }
        Step::Finalized => {
            let mut gopts = opts.gate.clone();
            gopts.pubkeys = keys.clone();
            gopts.slashing = st.merged_slashing.as_ref().map(|n| dir.join(n));
            let run = gate(opts.locations, opts.key, &gopts, &mut |e| {
                progress(MigrateEvent::Gate(e))
            })?;
            st.gate_report = Some(run.report_name.clone());
            if !run.report.passed {
                let failed: Vec<String> = run
                    .report
                    .checks
                    .iter()
                    .filter(|c| c.status != CheckStatus::Pass)
                    .map(|c| format!("{}: {}", c.name, c.summary))
                    .collect();
                return Err(stop(
                    format!("the gate failed ({})", failed.join("; ")),
                    &format!(
                        "nothing was imported; see `vtool report show {}`, fix the cause, then --resume",
                        run.report_name
                    ),
                ));
            }
            Ok(Step::Gated)
        }
        Step::Gated => {
            if let Some(custody) = opts.custody {
                let report = st.gate_report.as_ref().ok_or_else(|| {
                    MigrateError::Setup("the state has no gate report for this batch".into())
                })?;
                let bytes = opts.locations[0]
                    .repo
                    .backend()
                    .get(report)
                    .map_err(|e| MigrateError::Setup(format!("cannot read {report}: {e}")))?;
                let token = custody.claim(keys, &bytes).map_err(|e| {
                    stop(
                        format!("custody was not granted: {e}"),
                        "nothing was imported; see `vtool custody status`, then --resume",
                    )
                })?;
                st.custody_token = Some(token);
            }
            Ok(Step::Claimed)
        }
        // Recorded before the POST goes out.
        Step::Claimed => Ok(Step::Importing),
        Step::Importing => {
            let merged = st
                .merged_slashing
                .as_ref()
                .map(|n| std::fs::read_to_string(dir.join(n)))
                .transpose()
                .map_err(|e| MigrateError::Setup(format!("the merged slashing data: {e}")))?;
            let restored;
            let importable = match &opts.keystores {
                KeystoreSource::Dir { .. } => importable,
                KeystoreSource::Snapshot {
                    opened,
                    dir: ks_dir,
                    passwords,
                } => {
                    restored = restore_batch(opened, ks_dir, passwords.as_ref(), keys)
                        .map_err(|e| stop(e, "nothing was imported; --resume tries again"))?;
                    &restored
                }
            };
            let (texts, passwords): (Vec<String>, Vec<String>) = keys
                .iter()
                .filter_map(|k| importable.get(k))
                .map(|i| (i.text.clone(), i.password.clone()))
                .unzip();
            if texts.len() != keys.len() {
                return Err(stop(
                    format!(
                        "{} of {} keystore(s) or passwords missing",
                        keys.len() - texts.len(),
                        keys.len()
                    ),
                    "nothing was imported; put them in place, then --resume",
                ));
            }
            let statuses = opts.to.import(&texts, &passwords, merged.as_deref()).map_err(|e| {
                stop(e.to_string(), "check the new client, then --resume (the import is repeated; keys already in are reported duplicate)")
            })?;
            let bad: Vec<String> = keys
                .iter()
                .zip(&statuses)
                .filter(|(_, s)| match s.status {
                    ImportStatus::Imported => false,
                    // Only a POST repeated after a crash finds its own keys there.
                    ImportStatus::Duplicate => !resuming,
                    ImportStatus::Error => true,
                })
                .map(|(k, s)| format!("{k} {:?} {}", s.status, s.message))
                .collect();
            if !bad.is_empty() {
                return Err(stop(
                    format!(
                        "the new client did not import every key: {}",
                        bad.join("; ")
                    ),
                    "fix the new client, then --resume",
                ));
            }
            Ok(Step::Imported)
        }
        Step::Imported => {
            let mut lopts = LivenessOptions::new(opts.gate.beacons.clone(), keys.clone());
            lopts.mode = LivenessMode::ExpectLive;
            lopts.epochs = opts.live_within;
            let seen = watch(&lopts, &mut |e| progress(MigrateEvent::Liveness(e)))
                .map_err(|e| stop(e.to_string(), "--resume to watch again"))?;
            if !seen.proven {
                let missing: Vec<String> = seen
                    .keys
                    .iter()
                    .filter(|k| !k.proven)
                    .map(|k| k.pubkey.clone())
                    .collect();
                return Err(stop(
                    format!(
                        "{} key(s) not seen live on the new side within {} epoch(s): {}",
                        missing.len(),
                        opts.live_within,
                        missing.join(", ")
                    ),
                    "look at the new client's logs; --resume watches again",
                ));
            }
            st.batch_report = Some(batch_report(opts, st, batch, &seen)?);
            Ok(Step::Done)
        }
        Step::Done => Ok(Step::Done),
    }
}

/// The old client's data for the batch merged with the backup's, by the max rule.
fn merged_slashing(
    opts: &MigrateOptions,
    dir: &Path,
    st: &BatchState,
    keys: &[String],
) -> Result<Interchange, String> {
    let read = |p: &Path| -> Result<Interchange, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        Interchange::from_json_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let old = st
        .old_slashing
        .as_ref()
        .ok_or("the state has no slashing data from the old client")?;
    let mut all = vec![read(&dir.join(old))?];
    if let Some(backup) = &opts.backup_slashing {
        all.push(read(backup)?);
    }
    let pubkeys: Vec<PublicKey> = keys
        .iter()
        .map(|k| k.parse::<PublicKey>())
        .collect::<Result<_, _>>()?;
    let merged = merge(&all).map_err(|e| e.to_string())?;
    Ok(subset(&merged, &pubkeys).interchange)
}

/// Poll finality until it passes `target` (the batch's last vote) on every node.
fn wait_for_finality(
    opts: &MigrateOptions,
    target: Option<u64>,
    progress: &mut dyn FnMut(MigrateEvent),
) -> Result<(), String> {
    let Some(target) = target else {
        return Ok(());
    };
    let started = Instant::now();
    loop {
        let lowest = opts
            .gate
            .beacons
            .iter()
            .map(|n| n.finality().map(|f| f.finalized.epoch))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| e.to_string())?
            .into_iter()
            .min();
        match lowest {
            Some(f) if f > target => return Ok(()),
            _ if started.elapsed() > opts.finality_timeout => {
                return Err(format!(
                    "finality did not pass epoch {target} within {} s",
                    opts.finality_timeout.as_secs()
                ))
            }
            f => {
                progress(MigrateEvent::Note(format!(
                    "waiting for finality past epoch {target} (finalized: {})",
                    f.map(|e| e.to_string()).unwrap_or("unknown".into())
                )));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// The batch's report: the gate's, with the new host's liveness and the custody token.
fn batch_report(
    opts: &MigrateOptions,
    st: &BatchState,
    batch: usize,
    seen: &vtool_validator::liveness::LivenessReport,
) -> Result<String, MigrateError> {
    let primary = &opts.locations[0];
    let gate_name = st
        .gate_report
        .as_ref()
        .ok_or_else(|| MigrateError::Setup("the state has no gate report for this batch".into()))?;
    let listing = crate::list_records::<GateReport>(primary.repo.backend(), Some(opts.key))?;
    let mut report = listing
        .records
        .into_iter()
        .find(|l| &l.name == gate_name && l.authenticity == crate::Authenticity::Authentic)
        .map(|l| l.record)
        .ok_or_else(|| MigrateError::Setup(format!("{gate_name} is missing or not authentic")))?;
    report.kind = MIGRATION_KIND.into();
    report.time = vtool_snapshot::time::OffsetDateTime::now_utc();
    report.batch = Some((batch as u32, opts.plan.batches.len() as u32));
    report.custody_token = st.custody_token;
    report.checks.push(GateCheck {
        name: "new-host".into(),
        status: CheckStatus::Pass,
        summary: format!(
            "all {} key(s) seen live on every node within {} epoch(s) of the import",
            report.pubkeys.len(),
            opts.live_within
        ),
        evidence: vec![format!(
            "epochs {}..{} on {} node(s); imported into {}",
            seen.first_epoch.unwrap_or_default(),
            seen.last_epoch.unwrap_or_default(),
            seen.nodes.len(),
            opts.to.url()
        )],
        warnings: Vec::new(),
        duration_secs: 0.0,
    });
    Ok(save_record(primary.repo.backend(), &report, opts.key)?)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), MigrateError> {
    vtool_transfer::write_atomic(&dir.join(name), bytes).map_err(|source| {
        MigrateError::State(StateError::Io {
            path: dir.join(name),
            source,
        })
    })
}
