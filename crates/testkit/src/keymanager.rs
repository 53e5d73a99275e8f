//! A Keymanager API double standing in for a validator client (none can run here): `GET`,
//! `DELETE` and `POST /eth/v1/keystores` with a bearer token, answering with the API's JSON.
//! It logs every enable and disable of every key with its time, so tests can prove that no
//! key was ever enabled on two clients at once; [`KeymanagerDouble::live_between`] lets a
//! Beacon API double make a key live exactly while some client signs with it.
//!
//! While a key is enabled the client "signs": when the key is deleted, its slashing history
//! gains an attestation whose target is the epoch then current, as a real client's would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// One enable or disable.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    /// Unix seconds.
    pub time: f64,
    pub pubkey: String,
    pub enabled: bool,
}

#[derive(Default)]
struct State {
    /// Pubkey → enabled.
    keys: BTreeMap<String, bool>,
    /// Pubkey → its `signed_attestations` and `signed_blocks` (interchange JSON).
    history: BTreeMap<String, (Vec<Value>, Vec<Value>)>,
    log: Vec<Switch>,
    /// Pubkeys whose import answers `error`.
    failing: Vec<String>,
}

/// The chain clock the double signs by.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub genesis_time: u64,
    pub seconds_per_epoch: u64,
}

impl Clock {
    pub fn epoch_at(&self, time: f64) -> u64 {
        ((time - self.genesis_time as f64).max(0.0) / self.seconds_per_epoch as f64) as u64
    }
}

/// A running double; it stops when dropped.
pub struct KeymanagerDouble {
    url: String,
    token: String,
    server: Arc<tiny_http::Server>,
    state: Arc<Mutex<State>>,
    clock: Clock,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl KeymanagerDouble {
    /// A client holding `enabled` keys (signing since now), for the chain whose root is
    /// `genesis_validators_root`.
    pub fn start(clock: Clock, genesis_validators_root: &str, enabled: &[String]) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let mut state = State::default();
        let t = now();
        for pk in enabled {
            state.keys.insert(pk.clone(), true);
            state.log.push(Switch {
                time: t,
                pubkey: pk.clone(),
                enabled: true,
            });
        }
        let state = Arc::new(Mutex::new(state));
        let token = format!("api-token-{port}");
        let (listener, shared, root, tok) = (
            Arc::clone(&server),
            Arc::clone(&state),
            genesis_validators_root.to_string(),
            token.clone(),
        );
        std::thread::spawn(move || {
            for request in listener.incoming_requests() {
                serve(&shared, clock, &root, &tok, request);
            }
        });
        KeymanagerDouble {
            url: format!("http://127.0.0.1:{port}"),
            token,
            server,
            state,
            clock,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Every enable and disable so far, in order.
    pub fn log(&self) -> Vec<Switch> {
        self.state.lock().expect("state").log.clone()
    }

    /// Whether `pubkey` is enabled now.
    pub fn enabled(&self, pubkey: &str) -> bool {
        self.state
            .lock()
            .expect("state")
            .keys
            .get(pubkey)
            .copied()
            .unwrap_or(false)
    }

    /// Make the import of `pubkey` answer `error`.
    pub fn fail_import(&self, pubkey: &str) {
        self.state
            .lock()
            .expect("state")
            .failing
            .push(pubkey.to_string());
    }

    /// Enable `pubkey` behind vtool's back (an operator restarting the old client).
    pub fn re_enable(&self, pubkey: &str) {
        let mut s = self.state.lock().expect("state");
        s.keys.insert(pubkey.to_string(), true);
        s.log.push(Switch {
            time: now(),
            pubkey: pubkey.to_string(),
            enabled: true,
        });
    }

    /// Whether `pubkey` was enabled at any moment of epoch `epoch`: what a beacon node's
    /// liveness would report for it.
    pub fn live_in_epoch(&self, pubkey: &str, epoch: u64) -> bool {
        let start = (self.clock.genesis_time + epoch * self.clock.seconds_per_epoch) as f64;
        let end = start + self.clock.seconds_per_epoch as f64;
        live_between(&self.log(), pubkey, start, end)
    }
}

/// Whether the log shows `pubkey` enabled at some moment of `[start, end)`.
pub fn live_between(log: &[Switch], pubkey: &str, start: f64, end: f64) -> bool {
    let mut enabled = false;
    for s in log.iter().filter(|s| s.pubkey == pubkey) {
        if s.time >= end {
            break;
        }
        if s.time >= start && s.enabled {
            return true;
        }
        enabled = s.enabled;
    }
    enabled
}

impl Drop for KeymanagerDouble {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn serve(
    state: &Mutex<State>,
    clock: Clock,
    root: &str,
    token: &str,
    mut request: tiny_http::Request,
) {
    let mut body = String::new();
    let read = request.as_reader().read_to_string(&mut body);
    let authorized = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Authorization") && h.value.as_str() == format!("Bearer {token}"));
    let (status, answer) = if read.is_err() {
        (400, json!({"code": 400, "message": "unreadable body"}))
    } else if !authorized {
        (
            401,
            json!({"code": 401, "message": "missing or wrong bearer token"}),
        )
    } else if request.url() != "/eth/v1/keystores" {
        (404, json!({"code": 404, "message": "no such route"}))
    } else {
        let mut s = state.lock().expect("state");
        match request.method() {
            tiny_http::Method::Get => (200, list(&s)),
            tiny_http::Method::Delete => delete(&mut s, clock, root, &body),
            tiny_http::Method::Post => import(&mut s, &body),
            _ => (405, json!({"code": 405, "message": "method not allowed"})),
        }
    };
    let header =
        tiny_http::Header::from_bytes("Content-Type", "application/json").expect("static header");
    let _ = request.respond(
        tiny_http::Response::from_string(answer.to_string())
            .with_status_code(status)
            .with_header(header),
    );
}

fn list(s: &State) -> Value {
    let data: Vec<Value> = s
        .keys
        .iter()
        .filter(|(_, on)| **on)
        .map(|(pk, _)| json!({"validating_pubkey": pk, "derivation_path": "", "readonly": false}))
        .collect();
    json!({ "data": data })
}

fn delete(s: &mut State, clock: Clock, root: &str, body: &str) -> (u16, Value) {
    let Some(pubkeys) = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["pubkeys"].as_array().cloned())
    else {
        return (400, json!({"code": 400, "message": "pubkeys missing"}));
    };
    let t = now();
    let epoch = clock.epoch_at(t);
    let mut statuses = Vec::new();
    let mut data = Vec::new();
    for pk in pubkeys
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_lowercase)
    {
        let status = match s.keys.get(&pk).copied() {
            Some(true) => {
                // It signed until now: its history ends with this epoch's vote.
                let h = s.history.entry(pk.clone()).or_default();
                h.0.push(json!({"source_epoch": epoch.saturating_sub(1).to_string(),
                                "target_epoch": epoch.to_string()}));
                s.keys.insert(pk.clone(), false);
                s.log.push(Switch {
                    time: t,
                    pubkey: pk.clone(),
                    enabled: false,
                });
                "deleted"
            }
            Some(false) => "not_active",
            None => "not_found",
        };
        if status != "not_found" {
            let (atts, blocks) = s.history.get(&pk).cloned().unwrap_or_default();
            data.push(json!({"pubkey": pk, "signed_blocks": blocks, "signed_attestations": atts}));
        }
        statuses.push(json!({"status": status, "message": ""}));
    }
    let interchange = json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": root},
        "data": data,
    });
    (
        200,
        json!({"data": statuses, "slashing_protection": interchange.to_string()}),
    )
}

fn import(s: &mut State, body: &str) -> (u16, Value) {
    let Ok(req) = serde_json::from_str::<Value>(body) else {
        return (400, json!({"code": 400, "message": "body is not JSON"}));
    };
    let (Some(keystores), Some(passwords)) =
        (req["keystores"].as_array(), req["passwords"].as_array())
    else {
        return (
            400,
            json!({"code": 400, "message": "keystores and passwords are required"}),
        );
    };
    if keystores.len() != passwords.len() {
        return (
            400,
            json!({"code": 400, "message": "one password per keystore"}),
        );
    }
    // Slashing protection first, as clients import it before enabling any key.
    if let Some(text) = req["slashing_protection"].as_str() {
        let Ok(interchange) = serde_json::from_str::<Value>(text) else {
            return (
                400,
                json!({"code": 400, "message": "slashing_protection is not JSON"}),
            );
        };
        for v in interchange["data"].as_array().cloned().unwrap_or_default() {
            let Some(pk) = v["pubkey"].as_str() else {
                continue;
            };
            let h = s.history.entry(pk.to_lowercase()).or_default();
            h.0.extend(
                v["signed_attestations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            h.1.extend(v["signed_blocks"].as_array().cloned().unwrap_or_default());
        }
    }
    let t = now();
    let mut statuses = Vec::new();
    for ks in keystores {
        let pubkey = ks
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|k| {
                k["pubkey"]
                    .as_str()
                    .map(|p| format!("0x{}", p.trim_start_matches("0x").to_lowercase()))
            });
        let Some(pk) = pubkey else {
            statuses.push(json!({"status": "error", "message": "not a keystore"}));
            continue;
        };
        if s.failing.contains(&pk) {
            statuses.push(json!({"status": "error", "message": "cannot decrypt"}));
        } else if s.keys.get(&pk) == Some(&true) {
            statuses.push(json!({"status": "duplicate", "message": ""}));
        } else {
            s.keys.insert(pk.clone(), true);
            s.log.push(Switch {
                time: t,
                pubkey: pk,
                enabled: true,
            });
            statuses.push(json!({"status": "imported", "message": ""}));
        }
    }
    (200, json!({ "data": statuses }))
}
