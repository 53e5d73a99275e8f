//! What a liveness watch found, in a form for people (`Display`) and for JSON reports.

use std::fmt;

use serde::Serialize;

use crate::beacon::{BeaconError, ChainSpec, Genesis, SyncStatus};

/// What is to be proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LivenessMode {
    /// Every key offline on every node for the required consecutive epochs.
    Offline,
    /// Every key seen live on every node (the positive control: the watch can see signing).
    ExpectLive,
}

/// Why a key is not proven (for one node, and one epoch where it applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    Live,
    NotSeenLive,
    /// Offline for fewer consecutive epochs than required when the watch ended.
    TooFewEpochs {
        offline: u64,
        required: u64,
    },
    Syncing {
        sync_distance: u64,
    },
    Optimistic,
    ElOffline,
    /// Liveness answered 400: the node does not track liveness or refused the epoch.
    NotTracking {
        message: String,
    },
    Http {
        status: u16,
        message: String,
    },
    Timeout,
    Unreachable {
        detail: String,
    },
    Malformed {
        detail: String,
    },
    Incomplete {
        detail: String,
    },
    /// The watch could not ask in time (the epoch left the node's window).
    Missed,
    UnknownPubkey,
    Slashed {
        status: String,
    },
    Exited {
        status: String,
    },
    Pending {
        status: String,
    },
    GenesisMismatch {
        expected: String,
        found: String,
    },
    SpecMismatch {
        expected: ChainSpec,
        found: ChainSpec,
    },
    IndexMismatch {
        expected: u64,
        found: u64,
    },
}

impl Reason {
    /// `liveness`: the error came from the liveness endpoint, where 400 means not tracking.
    pub fn from_error(e: &BeaconError, liveness: bool) -> Reason {
        match e {
            BeaconError::Http {
                status: 400,
                message,
                ..
            } if liveness => Reason::NotTracking {
                message: message.clone(),
            },
            BeaconError::Http {
                status, message, ..
            } => Reason::Http {
                status: *status,
                message: message.clone(),
            },
            BeaconError::Timeout { .. } => Reason::Timeout,
            BeaconError::Unreachable { detail, .. } => Reason::Unreachable {
                detail: detail.clone(),
            },
            BeaconError::Malformed { detail, .. } => Reason::Malformed {
                detail: detail.clone(),
            },
            BeaconError::Incomplete { detail, .. } => Reason::Incomplete {
                detail: detail.clone(),
            },
        }
    }

    /// The reason a status stops a key from being proven, if it does.
    pub fn from_status(status: &str) -> Option<Reason> {
        let status = status.to_string();
        match status.as_str() {
            "active_ongoing" | "active_exiting" => None,
            "active_slashed" | "exited_slashed" => Some(Reason::Slashed { status }),
            s if s.starts_with("pending_") => Some(Reason::Pending { status }),
            _ => Some(Reason::Exited { status }),
        }
    }

    /// True for reasons no later epoch can change.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Reason::UnknownPubkey
                | Reason::Slashed { .. }
                | Reason::Exited { .. }
                | Reason::Pending { .. }
                | Reason::GenesisMismatch { .. }
                | Reason::SpecMismatch { .. }
                | Reason::IndexMismatch { .. }
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Reason::Live => f.write_str("seen live (attesting or proposing)"),
            Reason::NotSeenLive => f.write_str("never seen live"),
            Reason::TooFewEpochs { offline, required } => write!(
                f,
                "offline only {offline} consecutive epochs of the {required} required"
            ),
            Reason::Syncing { sync_distance } => {
                write!(f, "node is syncing ({sync_distance} slots behind)")
            }
            Reason::Optimistic => f.write_str("node's head is optimistic (execution not verified)"),
            Reason::ElOffline => f.write_str("node's execution client is offline"),
            Reason::NotTracking { message } => write!(
                f,
                "node does not answer liveness ({message}); Teku needs --beacon-liveness-tracking-enabled"
            ),
            Reason::Http { status, message } => write!(f, "node answered HTTP {status}: {message}"),
            Reason::Timeout => f.write_str("node did not answer in time"),
            Reason::Unreachable { detail } => write!(f, "node cannot be reached: {detail}"),
            Reason::Malformed { detail } => write!(f, "node answered malformed JSON: {detail}"),
            Reason::Incomplete { detail } => write!(f, "node's answer does not match the question: {detail}"),
            Reason::Missed => f.write_str("the epoch could not be asked about in time"),
            Reason::UnknownPubkey => f.write_str("node knows no validator with this pubkey"),
            Reason::Slashed { status } => write!(f, "validator is slashed ({status})"),
            Reason::Exited { status } => write!(f, "validator has exited ({status})"),
            Reason::Pending { status } => write!(f, "validator is not active yet ({status})"),
            Reason::GenesisMismatch { expected, found } => write!(
                f,
                "node is on another chain: genesis_validators_root {found}, first node {expected}"
            ),
            Reason::SpecMismatch { expected, found } => write!(
                f,
                "node's spec differs: {}s slots of {} per epoch, first node {}s of {}",
                found.seconds_per_slot,
                found.slots_per_epoch,
                expected.seconds_per_slot,
                expected.slots_per_epoch
            ),
            Reason::IndexMismatch { expected, found } => write!(
                f,
                "node gives validator index {found}, first node {expected}"
            ),
        }
    }
}

/// What one node said about itself when the watch began.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFacts {
    pub url: String,
    pub genesis: Option<Genesis>,
    pub spec: Option<ChainSpec>,
    pub sync: Option<SyncStatus>,
    /// Why this node cannot take part, if it cannot.
    pub error: Option<Reason>,
}

/// One reason a key is not proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReason {
    pub node: String,
    pub epoch: Option<u64>,
    pub reason: Reason,
}

impl fmt::Display for KeyReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.epoch {
            Some(epoch) => write!(f, "{}, epoch {epoch}: {}", self.node, self.reason),
            None => write!(f, "{}: {}", self.node, self.reason),
        }
    }
}

/// The outcome for one key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    /// `0x` and lowercase hex.
    pub pubkey: String,
    pub index: Option<u64>,
    pub status: Option<String>,
    pub proven: bool,
    /// Epochs in a row, up to the last one watched, in which every node saw it offline.
    pub consecutive_offline: u64,
    pub last_live_epoch: Option<u64>,
    /// Empty when proven.
    pub reasons: Vec<KeyReason>,
}

/// What one node answered for one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    pub epoch: u64,
    pub node: String,
    /// The indices it saw live (not every index asked: the report stays small).
    pub live_indices: Vec<u64>,
    pub asked: usize,
    /// Why this is not an observation, if it is not.
    pub error: Option<Reason>,
}

/// The answer of a watch.
#[derive(Debug, Clone, Serialize)]
pub struct LivenessReport {
    pub mode: LivenessMode,
    pub epochs_required: u64,
    pub proven: bool,
    /// The watch ended because the timeout came before a proof.
    pub timed_out: bool,
    pub nodes: Vec<NodeFacts>,
    pub keys: Vec<KeyReport>,
    pub observations: Vec<Observation>,
    pub first_epoch: Option<u64>,
    pub last_epoch: Option<u64>,
    /// The latest epoch any key was seen live in.
    pub last_live_epoch: Option<u64>,
}

/// Progress of a watch.
#[derive(Debug, Clone)]
pub enum LivenessEvent {
    /// Sleeping until `at` (Unix seconds) to ask about `epoch`.
    Waiting { epoch: u64, at: u64 },
    /// A node answered (or failed to) for an epoch.
    Observed(Observation),
}
