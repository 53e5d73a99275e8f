//! A Beacon API double on loopback: the endpoints `vtool liveness` uses, answering with the
//! spec's JSON (quoted integers, `data` envelopes, `execution_optimistic`/`finalized` where
//! the spec has them) from a scripted chain whose clock runs in real time. It counts the
//! requests it gets, so tests can hold the watcher to one liveness request per epoch.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// One validator the chain knows.
#[derive(Debug, Clone)]
pub struct Validator {
    /// `0x` and 96 lowercase hex digits.
    pub pubkey: String,
    pub index: u64,
    /// A spec status: `active_ongoing`, `exited_slashed`, …
    pub status: String,
}

/// `n` active validators with indices `0..n` and made-up but well-formed pubkeys.
pub fn validators(n: u64) -> Vec<Validator> {
    (0..n)
        .map(|index| Validator {
            pubkey: pubkey(index),
            index,
            status: "active_ongoing".into(),
        })
        .collect()
}

/// The made-up pubkey of validator `index` in [`validators`].
pub fn pubkey(index: u64) -> String {
    format!("0x{:0>96x}", 0xb000_0000_u64 + index)
}

/// How the node misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    /// `node/syncing` says it is syncing, 100 slots behind.
    Syncing,
    /// `node/syncing` says its head is optimistic.
    Optimistic,
    /// `node/syncing` says its execution client is offline.
    ElOffline,
    /// Every endpoint answers 500.
    ServerError,
    /// Liveness answers 400, as Teku does without `--beacon-liveness-tracking-enabled`.
    NotTracking,
    /// Every answer comes this late (longer than the client's timeout).
    Slow(Duration),
    /// Liveness leaves out the last index asked; validators answers for every validator,
    /// asked or not.
    OtherThanAsked,
}

/// Liveness of `(epoch, index)`.
pub type LiveFn = Arc<dyn Fn(u64, u64) -> bool + Send + Sync>;

/// What the chain looks like.
#[derive(Clone)]
pub struct Scenario {
    pub seconds_per_slot: u64,
    pub slots_per_epoch: u64,
    pub genesis_time: u64,
    pub genesis_validators_root: String,
    pub validators: Vec<Validator>,
    pub live: LiveFn,
    /// Finalized epoch from the current epoch.
    pub finalized: Arc<dyn Fn(u64) -> u64 + Send + Sync>,
    pub behaviour: Behaviour,
}

impl Scenario {
    /// A chain of 1 s slots and 4-slot epochs whose epoch `epoch` has just begun, with these
    /// validators all offline and epochs finalized two behind.
    pub fn at_epoch(epoch: u64, validators: Vec<Validator>) -> Scenario {
        let (seconds_per_slot, slots_per_epoch) = (1, 4);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        Scenario {
            seconds_per_slot,
            slots_per_epoch,
            genesis_time: now - epoch * seconds_per_slot * slots_per_epoch,
            genesis_validators_root: format!("0x{}", "4b".repeat(32)),
            validators,
            live: Arc::new(|_, _| false),
            finalized: Arc::new(|current| current.saturating_sub(2)),
            behaviour: Behaviour::Normal,
        }
    }

    pub fn with_live(mut self, live: impl Fn(u64, u64) -> bool + Send + Sync + 'static) -> Self {
        self.live = Arc::new(live);
        self
    }

    pub fn with_behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    fn current_slot(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        now.saturating_sub(self.genesis_time) / self.seconds_per_slot
    }

    fn current_epoch(&self) -> u64 {
        self.current_slot() / self.slots_per_epoch
    }
}

/// Endpoints the double counts requests of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    Genesis,
    Spec,
    Syncing,
    Finality,
    Validators,
    Liveness,
    Unknown,
}

#[derive(Default)]
struct Counts {
    by_endpoint: BTreeMap<Endpoint, usize>,
    liveness_by_epoch: BTreeMap<u64, usize>,
}

/// A running double; it stops when dropped.
pub struct BeaconDouble {
    url: String,
    server: Arc<tiny_http::Server>,
    counts: Arc<Mutex<Counts>>,
}

impl BeaconDouble {
    pub fn start(scenario: Scenario) -> BeaconDouble {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let counts = Arc::new(Mutex::new(Counts::default()));
        let (listener, seen) = (Arc::clone(&server), Arc::clone(&counts));
        let scenario = Arc::new(scenario);
        std::thread::spawn(move || {
            for request in listener.incoming_requests() {
                let (scenario, seen) = (Arc::clone(&scenario), Arc::clone(&seen));
                // A request of its own thread, so a slow answer holds up no other.
                std::thread::spawn(move || serve(&scenario, &seen, request));
            }
        });
        BeaconDouble {
            url: format!("http://127.0.0.1:{port}"),
            server,
            counts,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received at `endpoint`.
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        let counts = self.counts.lock().expect("counts");
        counts.by_endpoint.get(&endpoint).copied().unwrap_or(0)
    }

    /// Liveness requests received for each epoch.
    pub fn liveness_requests(&self) -> BTreeMap<u64, usize> {
        self.counts
            .lock()
            .expect("counts")
            .liveness_by_epoch
            .clone()
    }
}

impl Drop for BeaconDouble {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// A URL where nothing listens: a port that was bound and released.
pub fn unreachable_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn serve(scenario: &Scenario, counts: &Mutex<Counts>, mut request: tiny_http::Request) {
    let mut body = String::new();
    let read = request.as_reader().read_to_string(&mut body);
    let url = request.url().to_string();
    let post = *request.method() == tiny_http::Method::Post;
    let endpoint = endpoint(&url, post);
    {
        let mut counts = counts.lock().expect("counts");
        *counts.by_endpoint.entry(endpoint).or_default() += 1;
        if endpoint == Endpoint::Liveness {
            if let Some(epoch) = liveness_epoch(&url) {
                *counts.liveness_by_epoch.entry(epoch).or_default() += 1;
            }
        }
    }
    let (status, answer) = match (read, scenario.behaviour) {
        (Err(e), _) => error(400, &format!("unreadable body: {e}")),
        (Ok(_), Behaviour::ServerError) => error(500, "internal server error"),
        (Ok(_), behaviour) => {
            if let Behaviour::Slow(delay) = behaviour {
                std::thread::sleep(delay);
            }
            answer(scenario, endpoint, &url, &body)
        }
    };
    let header =
        tiny_http::Header::from_bytes("Content-Type", "application/json").expect("static header");
    let response = tiny_http::Response::from_string(answer.to_string())
        .with_status_code(status)
        .with_header(header);
    // The client may have given up (timeouts); nothing to do about it here.
    let _ = request.respond(response);
}

fn endpoint(url: &str, post: bool) -> Endpoint {
    match (url, post) {
        ("/eth/v1/beacon/genesis", false) => Endpoint::Genesis,
        ("/eth/v1/config/spec", false) => Endpoint::Spec,
        ("/eth/v1/node/syncing", false) => Endpoint::Syncing,
        ("/eth/v1/beacon/states/head/finality_checkpoints", false) => Endpoint::Finality,
        ("/eth/v1/beacon/states/head/validators", true) => Endpoint::Validators,
        (u, true) if u.starts_with("/eth/v1/validator/liveness/") => Endpoint::Liveness,
        _ => Endpoint::Unknown,
    }
}

fn liveness_epoch(url: &str) -> Option<u64> {
    url.strip_prefix("/eth/v1/validator/liveness/")?
        .parse()
        .ok()
}

fn error(code: u16, message: &str) -> (u16, Value) {
    (code, json!({ "code": code, "message": message }))
}

fn answer(s: &Scenario, endpoint: Endpoint, url: &str, body: &str) -> (u16, Value) {
    let slot = s.current_slot();
    let epoch = s.current_epoch();
    match endpoint {
        Endpoint::Genesis => (
            200,
            json!({ "data": {
                "genesis_time": s.genesis_time.to_string(),
                "genesis_validators_root": s.genesis_validators_root,
                "genesis_fork_version": "0x00000000",
            }}),
        ),
        Endpoint::Spec => (
            200,
            json!({ "data": {
                "CONFIG_NAME": "testkit",
                "SECONDS_PER_SLOT": s.seconds_per_slot.to_string(),
                "SLOTS_PER_EPOCH": s.slots_per_epoch.to_string(),
                "MAX_VALIDATORS_PER_COMMITTEE": "2048",
            }}),
        ),
        Endpoint::Syncing => {
            let syncing = s.behaviour == Behaviour::Syncing;
            let distance: u64 = if syncing { 100 } else { 0 };
            (
                200,
                json!({ "data": {
                    "head_slot": slot.saturating_sub(distance).to_string(),
                    "sync_distance": distance.to_string(),
                    "is_syncing": syncing,
                    "is_optimistic": s.behaviour == Behaviour::Optimistic,
                    "el_offline": s.behaviour == Behaviour::ElOffline,
                }}),
            )
        }
        Endpoint::Finality => {
            let finalized = (s.finalized)(epoch);
            let checkpoint =
                |e: u64| json!({ "epoch": e.to_string(), "root": format!("0x{e:064x}") });
            (
                200,
                json!({
                    "execution_optimistic": false,
                    "finalized": false,
                    "data": {
                        "previous_justified": checkpoint(finalized),
                        "current_justified": checkpoint(finalized + 1),
                        "finalized": checkpoint(finalized),
                    }
                }),
            )
        }
        Endpoint::Validators => validators_answer(s, body),
        Endpoint::Liveness => liveness_answer(s, epoch, url, body),
        Endpoint::Unknown => error(404, &format!("no route {url}")),
    }
}

fn validators_answer(s: &Scenario, body: &str) -> (u16, Value) {
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return error(400, "body is not JSON");
    };
    let Some(ids) = request["ids"].as_array() else {
        return error(400, "ids missing");
    };
    let data: Vec<Value> = s
        .validators
        .iter()
        .filter(|v| {
            s.behaviour == Behaviour::OtherThanAsked
                || ids.iter().filter_map(Value::as_str).any(|id| {
                    id.eq_ignore_ascii_case(&v.pubkey) || id.parse::<u64>() == Ok(v.index)
                })
        })
        .map(|v| {
            json!({
                "index": v.index.to_string(),
                "balance": "32000000000",
                "status": v.status,
                "validator": {
                    "pubkey": v.pubkey,
                    "withdrawal_credentials": format!("0x01{}", "00".repeat(31)),
                    "effective_balance": "32000000000",
                    "slashed": v.status.ends_with("_slashed"),
                    "activation_eligibility_epoch": "0",
                    "activation_epoch": "0",
                    "exit_epoch": "18446744073709551615",
                    "withdrawable_epoch": "18446744073709551615",
                }
            })
        })
        .collect();
    (
        200,
        json!({ "execution_optimistic": false, "finalized": false, "data": data }),
    )
}

fn liveness_answer(s: &Scenario, current: u64, url: &str, body: &str) -> (u16, Value) {
    if s.behaviour == Behaviour::NotTracking {
        return error(400, "liveness tracking is not enabled");
    }
    let Some(epoch) = liveness_epoch(url) else {
        return error(400, "epoch is not a number");
    };
    if epoch != current && epoch + 1 != current {
        return error(
            400,
            &format!("epoch {epoch} is neither the current ({current}) nor the previous"),
        );
    }
    let Ok(indices) = serde_json::from_str::<Vec<String>>(body) else {
        return error(400, "body is not an array of quoted indices");
    };
    let mut data = Vec::new();
    for text in indices {
        let Ok(index) = text.parse::<u64>() else {
            return error(400, &format!("{text:?} is not an index"));
        };
        data.push(json!({ "index": text, "is_live": (s.live)(epoch, index) }));
    }
    if s.behaviour == Behaviour::OtherThanAsked {
        data.pop();
    }
    (200, json!({ "data": data }))
}
