//! A blocking client for the few Beacon API endpoints that proving a validator offline needs.
//! Every answer is checked against the spec's JSON ([`wire`]); anything else is an error
//! naming the node, never a guess.

mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::http;

pub use wire::{
    ChainSpec, Checkpoint, Finality, Genesis, SyncStatus, ValidatorLookup, ValidatorState,
};
use wire::{Data, ErrorBody, LivenessEntry, ValidatorEntry};

/// Pubkeys per `states/head/validators` request: nodes cap the ids of one request.
const LOOKUP_BATCH: usize = 1000;

/// Largest answer read: a validators answer for a batch is well under this.
const BODY_LIMIT: u64 = 64 << 20;

/// Why a node's answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("beacon node {url} cannot be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("beacon node {url} did not answer in time")]
    Timeout { url: String },
    #[error("beacon node {url} answered HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("beacon node {url} answered JSON the Beacon API does not allow: {detail}")]
    Malformed { url: String, detail: String },
    #[error("beacon node {url} answered something other than what was asked: {detail}")]
    Incomplete { url: String, detail: String },
}

/// One beacon node.
#[derive(Debug, Clone)]
pub struct BeaconClient {
    url: String,
    agent: ureq::Agent,
}

impl BeaconClient {
    /// A client for the node at `url` (`http://host:port`, a trailing `/` is dropped); every
    /// connection and answer must come within `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, BeaconError> {
        let url = http::base_url(url).map_err(|url| BeaconError::Unreachable {
            url,
            detail: "not an http:// or https:// URL".into(),
        })?;
        Ok(BeaconClient {
            url,
            agent: http::agent(timeout),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn genesis(&self) -> Result<Genesis, BeaconError> {
        self.get("/eth/v1/beacon/genesis")
    }

    pub fn spec(&self) -> Result<ChainSpec, BeaconError> {
        let data: BTreeMap<String, serde_json::Value> = self.get("/eth/v1/config/spec")?;
        wire::chain_spec(&data).map_err(|detail| self.malformed("/eth/v1/config/spec", detail))
    }

    pub fn syncing(&self) -> Result<SyncStatus, BeaconError> {
        self.get("/eth/v1/node/syncing")
    }

    pub fn finality(&self) -> Result<Finality, BeaconError> {
        self.get("/eth/v1/beacon/states/head/finality_checkpoints")
    }

    /// Index and status of each pubkey (`0x` hex, any case), asked in batches.
    pub fn validators(&self, pubkeys: &[String]) -> Result<ValidatorLookup, BeaconError> {
        const PATH: &str = "/eth/v1/beacon/states/head/validators";
        let asked: Vec<String> = pubkeys.iter().map(|p| canonical_pubkey(p)).collect();
        let wanted: BTreeSet<&str> = asked.iter().map(String::as_str).collect();
        let mut found = BTreeMap::new();
        let unique: Vec<&str> = wanted.iter().copied().collect();
        for batch in unique.chunks(LOOKUP_BATCH) {
            let entries: Vec<ValidatorEntry> =
                self.post(PATH, &serde_json::json!({ "ids": batch }))?;
            for e in entries {
                let pubkey = e.validator.pubkey;
                if !batch.contains(&pubkey.as_str()) {
                    return Err(self.incomplete(PATH, format!("answered for {pubkey}, not asked")));
                }
                let state = ValidatorState {
                    index: e.index,
                    status: e.status,
                };
                if found.insert(pubkey.clone(), state).is_some() {
                    return Err(self.malformed(PATH, format!("{pubkey} answered twice")));
                }
            }
        }
        let missing = asked
            .into_iter()
            .filter(|p| !found.contains_key(p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(ValidatorLookup { found, missing })
    }

    /// Whether each validator index was seen live (attesting or proposing) in `epoch`; nodes
    /// answer only for the current and the previous epoch. One request for all indices.
    pub fn liveness(
        &self,
        epoch: u64,
        indices: &[u64],
    ) -> Result<BTreeMap<u64, bool>, BeaconError> {
        let path = format!("/eth/v1/validator/liveness/{epoch}");
        let asked: BTreeSet<u64> = indices.iter().copied().collect();
        let body: Vec<String> = asked.iter().map(u64::to_string).collect();
        let entries: Vec<LivenessEntry> = self.post(&path, &serde_json::json!(body))?;
        let mut live = BTreeMap::new();
        for e in entries {
            if !asked.contains(&e.index) {
                return Err(
                    self.incomplete(&path, format!("answered for index {}, not asked", e.index))
                );
            }
            if live.insert(e.index, e.is_live).is_some() {
                return Err(self.malformed(&path, format!("index {} answered twice", e.index)));
            }
        }
        if let Some(index) = asked.iter().find(|i| !live.contains_key(i)) {
            return Err(self.incomplete(
                &path,
                format!(
                    "no answer for index {index} ({} of {} answered)",
                    live.len(),
                    asked.len()
                ),
            ));
        }
        Ok(live)
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, BeaconError> {
        let response = self
            .agent
            .get(format!("{}{path}", self.url))
            .header("Accept", "application/json")
            .call();
        self.answer(path, response)
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, BeaconError> {
        let response = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .send(body.to_string());
        self.answer(path, response)
    }

    /// The `data` of a 200 answer; the status and `message` of any other.
    fn answer<T: DeserializeOwned>(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, BeaconError> {
        let (status, text) = http::read(response, BODY_LIMIT).map_err(|e| self.transport(e))?;
        if status != 200 {
            let message = serde_json::from_str::<ErrorBody>(&text).map_or(text, |b| b.message);
            let message = http::printable(&message);
            return Err(BeaconError::Http {
                url: format!("{}{path}", self.url),
                status,
                message,
            });
        }
        serde_json::from_str::<Data<T>>(&text)
            .map(|d| d.data)
            .map_err(|e| self.malformed(path, e.to_string()))
    }

    fn transport(&self, e: http::Transport) -> BeaconError {
        let url = self.url.clone();
        match e {
            http::Transport::Timeout => BeaconError::Timeout { url },
            http::Transport::TooLarge(limit) => BeaconError::Malformed {
                url,
                detail: format!("answer larger than {limit} bytes"),
            },
            http::Transport::Failed(detail) => BeaconError::Unreachable { url, detail },
        }
    }

    fn malformed(&self, path: &str, detail: String) -> BeaconError {
        BeaconError::Malformed {
            url: format!("{}{path}", self.url),
            detail,
        }
    }

    fn incomplete(&self, path: &str, detail: String) -> BeaconError {
        BeaconError::Incomplete {
            url: format!("{}{path}", self.url),
            detail,
        }
    }
}

/// A pubkey as the validators answer writes it: `0x` and lowercase hex.
fn canonical_pubkey(pubkey: &str) -> String {
    let lower = pubkey.to_ascii_lowercase();
    if lower.starts_with("0x") {
        lower
    } else {
        format!("0x{lower}")
    }
}
