//! Proving that validator keys are offline (no node sees them attesting or proposing) before
//! they are started elsewhere, from the liveness endpoint of one or more beacon nodes.
//!
//! The watch fails closed: a key is proven only when every node, healthy and on the same
//! chain, saw it offline in each of N consecutive completed epochs. An epoch some node could
//! not observe (syncing, optimistic, execution client offline, an error) restarts every
//! key's count, as does the key being seen live.
//!
//! ```no_run
//! use std::time::Duration;
//! use vtool_validator::beacon::BeaconClient;
//! use vtool_validator::liveness::{watch, LivenessOptions};
//!
//! let node = BeaconClient::new("http://localhost:5052", Duration::from_secs(10))?;
//! let pubkey = format!("0x{}", "a1".repeat(48));
//! let opts = LivenessOptions::new(vec![node], vec![pubkey]);
//! let report = watch(&opts, &mut |event| eprintln!("{event:?}"))?;
//! for key in report.keys.iter().filter(|k| !k.proven) {
//!     for reason in &key.reasons {
//!         println!("{}: {reason}", key.pubkey);
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod report;
mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use report::{
    KeyReason, KeyReport, LivenessEvent, LivenessMode, LivenessReport, NodeFacts, Observation,
    Reason,
};
use schedule::Schedule;

use crate::beacon::{BeaconClient, SyncStatus, ValidatorLookup};
use crate::keystore::normalize_pubkey;

/// Consecutive offline epochs required unless told otherwise.
pub const DEFAULT_EPOCHS: u64 = 2;

/// What to watch, and for how long.
pub struct LivenessOptions {
    /// Every node must agree; more than one guards against a node that misses attestations.
    pub nodes: Vec<BeaconClient>,
    /// Validator pubkeys, `0x` hex (any case).
    pub pubkeys: Vec<String>,
    /// Consecutive completed epochs required (Offline: exactly this many are watched unless
    /// `until_offline`), or within which each key must be seen live (ExpectLive: the watch
    /// ends as soon as every key was).
    pub epochs: u64,
    pub mode: LivenessMode,
    /// Keep watching past `epochs` until proven or `timeout`.
    pub until_offline: bool,
    /// Stop when the next ask would come later than this from the start.
    pub timeout: Option<Duration>,
}

impl LivenessOptions {
    /// Prove `pubkeys` offline on `nodes` for [`DEFAULT_EPOCHS`] epochs.
    pub fn new(nodes: Vec<BeaconClient>, pubkeys: Vec<String>) -> Self {
        LivenessOptions {
            nodes,
            pubkeys,
            epochs: DEFAULT_EPOCHS,
            mode: LivenessMode::Offline,
            until_offline: false,
            timeout: None,
        }
    }
}

/// Options that cannot start a watch.
#[derive(Debug, thiserror::Error)]
pub enum LivenessError {
    #[error("no beacon node given")]
    NoNodes,
    #[error("no validator pubkey given")]
    NoKeys,
    #[error("the number of epochs must be at least 1")]
    ZeroEpochs,
    #[error("{0:?} is not a validator public key (0x and 48 bytes of hex)")]
    Pubkey(String),
    #[error("the system clock is before 1970")]
    Clock,
}

/// One key's state during the watch.
struct Key {
    report: KeyReport,
    /// Reasons no later epoch can undo.
    permanent: Vec<KeyReason>,
    /// Offline: what restarted the count last. ExpectLive: errors met, one per node and kind.
    transient: Vec<KeyReason>,
    seen_live_on: BTreeSet<usize>,
}

impl Key {
    fn new(pubkey: String) -> Key {
        Key {
            report: KeyReport {
                pubkey,
                index: None,
                status: None,
                proven: false,
                consecutive_offline: 0,
                last_live_epoch: None,
                reasons: Vec::new(),
            },
            permanent: Vec::new(),
            transient: Vec::new(),
            seen_live_on: BTreeSet::new(),
        }
    }

    fn watchable(&self) -> bool {
        self.permanent.is_empty() && self.report.index.is_some()
    }

    fn proven(&self, mode: LivenessMode, epochs: u64, nodes: usize) -> bool {
        self.permanent.is_empty()
            && match mode {
                LivenessMode::Offline => self.report.consecutive_offline >= epochs,
                LivenessMode::ExpectLive => self.seen_live_on.len() == nodes,
            }
    }
}

/// What one node answered for one epoch.
struct NodeEpoch {
    lookup: Option<ValidatorLookup>,
    live: Result<BTreeMap<u64, bool>, Reason>,
}

/// Watch `opts.pubkeys` epoch by epoch, sleeping between asks; `progress` hears of each wait
/// and each answer.
pub fn watch(
    opts: &LivenessOptions,
    progress: &mut dyn FnMut(&LivenessEvent),
) -> Result<LivenessReport, LivenessError> {
    if opts.nodes.is_empty() {
        return Err(LivenessError::NoNodes);
    }
    if opts.epochs == 0 {
        return Err(LivenessError::ZeroEpochs);
    }
    let mut pubkeys = Vec::new();
    for text in &opts.pubkeys {
        let pubkey = normalize_pubkey(text).map_err(|_| LivenessError::Pubkey(text.clone()))?;
        if !pubkeys.contains(&pubkey) {
            pubkeys.push(pubkey);
        }
    }
    if pubkeys.is_empty() {
        return Err(LivenessError::NoKeys);
    }
    let deadline = match opts.timeout {
        Some(t) => Some(now()? + t.as_secs_f64()),
        None => None,
    };
    let mut keys: Vec<Key> = pubkeys.iter().cloned().map(Key::new).collect();
    let mut report = LivenessReport {
        mode: opts.mode,
        epochs_required: opts.epochs,
        proven: false,
        timed_out: false,
        nodes: each_node(&opts.nodes, facts),
        keys: Vec::new(),
        observations: Vec::new(),
        first_epoch: None,
        last_epoch: None,
        last_live_epoch: None,
    };

    let Some(schedule) = agree(&mut report.nodes) else {
        for node in &report.nodes {
            if let Some(reason) = &node.error {
                for key in &mut keys {
                    key.permanent.push(reason_for(&node.url, None, reason));
                }
            }
        }
        return Ok(finish(report, keys, opts));
    };

    let all: Vec<usize> = (0..keys.len()).collect();
    let lookups = each_node(&opts.nodes, |n| n.validators(&pubkeys));
    for (node, lookup) in opts.nodes.iter().zip(lookups) {
        match lookup {
            Ok(lookup) => apply_lookup(&mut keys, &all, node.url(), &lookup, None),
            Err(e) => {
                let reason = Reason::from_error(&e, false);
                for key in &mut keys {
                    key.permanent.push(reason_for(node.url(), None, &reason));
                }
            }
        }
    }

    let mut epoch = schedule.first_epoch(now()?);
    let mut watched = 0;
    loop {
        let watching: Vec<usize> = (0..keys.len()).filter(|&k| keys[k].watchable()).collect();
        if watching.is_empty() {
            break;
        }
        let at = schedule.ask_at(epoch);
        if deadline.is_some_and(|d| at as f64 > d) {
            report.timed_out = true;
            break;
        }
        progress(&LivenessEvent::Waiting { epoch, at });
        sleep_until(at)?;
        let late = now()? >= schedule.window_end(epoch) as f64;
        let watched_keys: Vec<String> = watching
            .iter()
            .map(|&k| keys[k].report.pubkey.clone())
            .collect();
        let indices: Vec<u64> = watching
            .iter()
            .filter_map(|&k| keys[k].report.index)
            .collect();
        let answers = each_node(&opts.nodes, |n| {
            if late {
                NodeEpoch {
                    lookup: None,
                    live: Err(Reason::Missed),
                }
            } else {
                observe(n, epoch, &watched_keys, &indices)
            }
        });
        for (node, answer) in opts.nodes.iter().zip(&answers) {
            if let Some(lookup) = &answer.lookup {
                apply_lookup(&mut keys, &watching, node.url(), lookup, Some(epoch));
            }
            let observation = Observation {
                epoch,
                node: node.url().to_string(),
                live_indices: match &answer.live {
                    Ok(live) => live.iter().filter(|(_, l)| **l).map(|(i, _)| *i).collect(),
                    Err(_) => Vec::new(),
                },
                asked: indices.len(),
                error: answer.live.as_ref().err().cloned(),
            };
            progress(&LivenessEvent::Observed(observation.clone()));
            report.observations.push(observation);
        }
        for &k in &watching {
            if keys[k].watchable() {
                apply_epoch(&mut keys[k], opts, epoch, &answers);
            }
        }
        report.first_epoch.get_or_insert(epoch);
        report.last_epoch = Some(epoch);
        watched += 1;
        let all_proven = watching
            .iter()
            .all(|&k| keys[k].proven(opts.mode, opts.epochs, opts.nodes.len()));
        if all_proven || (!opts.until_offline && watched >= opts.epochs) {
            break;
        }
        epoch += 1;
    }
    Ok(finish(report, keys, opts))
}

/// Genesis, spec and sync status of one node.
fn facts(node: &BeaconClient) -> NodeFacts {
    let mut facts = NodeFacts {
        url: node.url().to_string(),
        genesis: None,
        spec: None,
        sync: None,
        error: None,
    };
    let found = node
        .genesis()
        .map(|g| facts.genesis = Some(g))
        .and_then(|()| node.spec().map(|s| facts.spec = Some(s)))
        .and_then(|()| node.syncing().map(|s| facts.sync = Some(s)));
    if let Err(e) = found {
        facts.error = Some(Reason::from_error(&e, false));
    }
    facts
}

/// The schedule every node agrees on; `None` (with each node's error set) when any node
/// failed or differs from the first.
fn agree(nodes: &mut [NodeFacts]) -> Option<Schedule> {
    let first = nodes
        .iter()
        .find_map(|n| Some((n.genesis.clone()?, n.spec?)));
    let (genesis, spec) = first?;
    for node in nodes.iter_mut().filter(|n| n.error.is_none()) {
        let (Some(g), Some(s)) = (&node.genesis, node.spec) else {
            continue;
        };
        if g.genesis_validators_root != genesis.genesis_validators_root {
            node.error = Some(Reason::GenesisMismatch {
                expected: genesis.genesis_validators_root.clone(),
                found: g.genesis_validators_root.clone(),
            });
        } else if s != spec || g.genesis_time != genesis.genesis_time {
            node.error = Some(Reason::SpecMismatch {
                expected: spec,
                found: s,
            });
        }
    }
    nodes.iter().all(|n| n.error.is_none()).then_some(Schedule {
        genesis_time: genesis.genesis_time,
        spec,
    })
}

/// Record what a node said of the keys `which`: indices, statuses, unknown pubkeys.
fn apply_lookup(
    keys: &mut [Key],
    which: &[usize],
    node: &str,
    lookup: &ValidatorLookup,
    epoch: Option<u64>,
) {
    for &k in which {
        let key = &mut keys[k];
        let Some(state) = lookup.found.get(&key.report.pubkey) else {
            key.permanent
                .push(reason_for(node, epoch, &Reason::UnknownPubkey));
            continue;
        };
        match key.report.index {
            None => key.report.index = Some(state.index),
            Some(index) if index != state.index => {
                let reason = Reason::IndexMismatch {
                    expected: index,
                    found: state.index,
                };
                key.permanent.push(reason_for(node, epoch, &reason));
            }
            Some(_) => {}
        }
        key.report.status = Some(state.status.clone());
        if let Some(reason) = Reason::from_status(&state.status) {
            key.permanent.push(reason_for(node, epoch, &reason));
        }
    }
}

/// Ask one node about `epoch`: its health first, since a node that is not in sync has not
/// seen what it would be asked about.
fn observe(node: &BeaconClient, epoch: u64, pubkeys: &[String], indices: &[u64]) -> NodeEpoch {
    let failed = |reason| NodeEpoch {
        lookup: None,
        live: Err(reason),
    };
    match node.syncing() {
        Err(e) => return failed(Reason::from_error(&e, false)),
        Ok(sync) => {
            if let Some(reason) = sync_reason(&sync) {
                return failed(reason);
            }
        }
    }
    let live = match node.liveness(epoch, indices) {
        Ok(live) => live,
        Err(e) => return failed(Reason::from_error(&e, true)),
    };
    match node.validators(pubkeys) {
        Ok(lookup) => NodeEpoch {
            lookup: Some(lookup),
            live: Ok(live),
        },
        Err(e) => failed(Reason::from_error(&e, false)),
    }
}

fn sync_reason(sync: &SyncStatus) -> Option<Reason> {
    if sync.is_syncing {
        Some(Reason::Syncing {
            sync_distance: sync.sync_distance,
        })
    } else if sync.is_optimistic == Some(true) {
        Some(Reason::Optimistic)
    } else if sync.el_offline == Some(true) {
        Some(Reason::ElOffline)
    } else {
        None
    }
}

/// Count one epoch for a key from every node's answer.
fn apply_epoch(key: &mut Key, opts: &LivenessOptions, epoch: u64, answers: &[NodeEpoch]) {
    let Some(index) = key.report.index else {
        return;
    };
    let mut events = Vec::new();
    for (n, (node, answer)) in opts.nodes.iter().zip(answers).enumerate() {
        match &answer.live {
            Err(reason) => events.push(reason_for(node.url(), Some(epoch), reason)),
            Ok(live) if live.get(&index) == Some(&true) => {
                key.seen_live_on.insert(n);
                key.report.last_live_epoch = Some(epoch);
                events.push(reason_for(node.url(), Some(epoch), &Reason::Live));
            }
            Ok(_) => {}
        }
    }
    if events.is_empty() {
        key.report.consecutive_offline += 1;
        return;
    }
    key.report.consecutive_offline = 0;
    match opts.mode {
        LivenessMode::Offline => key.transient = events,
        LivenessMode::ExpectLive => {
            for event in events.into_iter().filter(|e| e.reason != Reason::Live) {
                let known = key
                    .transient
                    .iter()
                    .any(|t| t.node == event.node && t.reason == event.reason);
                if !known {
                    key.transient.push(event);
                }
            }
        }
    }
}

/// The report, with each key's verdict and the reasons for it.
fn finish(mut report: LivenessReport, keys: Vec<Key>, opts: &LivenessOptions) -> LivenessReport {
    let nodes = opts.nodes.len();
    for key in keys {
        let proven = key.proven(opts.mode, opts.epochs, nodes);
        let mut k = key.report;
        k.proven = proven;
        if !proven {
            k.reasons = key.permanent;
            if k.reasons.is_empty() {
                k.reasons.extend(match opts.mode {
                    LivenessMode::Offline if key.transient.is_empty() => opts
                        .nodes
                        .iter()
                        .map(|n| {
                            let reason = Reason::TooFewEpochs {
                                offline: k.consecutive_offline,
                                required: opts.epochs,
                            };
                            reason_for(n.url(), None, &reason)
                        })
                        .collect(),
                    LivenessMode::Offline => key.transient,
                    LivenessMode::ExpectLive => opts
                        .nodes
                        .iter()
                        .enumerate()
                        .filter(|(n, _)| !key.seen_live_on.contains(n))
                        .flat_map(|(_, node)| {
                            let errors = key
                                .transient
                                .iter()
                                .filter(|t| t.node == node.url())
                                .cloned()
                                .collect::<Vec<_>>();
                            std::iter::once(reason_for(node.url(), None, &Reason::NotSeenLive))
                                .chain(errors)
                        })
                        .collect(),
                });
            }
        }
        report.last_live_epoch = report.last_live_epoch.max(k.last_live_epoch);
        report.keys.push(k);
    }
    report.proven = !report.keys.is_empty() && report.keys.iter().all(|k| k.proven);
    report
}

fn reason_for(node: &str, epoch: Option<u64>, reason: &Reason) -> KeyReason {
    KeyReason {
        node: node.to_string(),
        epoch,
        reason: reason.clone(),
    }
}

/// `f` for every node at once: a slow node must not push the others past their window.
fn each_node<T: Send>(nodes: &[BeaconClient], f: impl Fn(&BeaconClient) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = nodes.iter().map(|n| scope.spawn(|| f(n))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn now() -> Result<f64, LivenessError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .map_err(|_| LivenessError::Clock)
}

fn sleep_until(at: u64) -> Result<(), LivenessError> {
    let wait = at as f64 - now()?;
    if wait > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
    Ok(())
}
