//! A blocking client for the standard Keymanager API's local keystores (`GET`, `DELETE` and
//! `POST /eth/v1/keystores`), with a bearer token, as every Ethereum validator client serves
//! it. Answers are checked against the API's JSON: one status per key asked, in order, from
//! the statuses the API defines; anything else is an error naming the client.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http;

/// Largest answer read: a DELETE of many keys carries their whole slashing history.
const BODY_LIMIT: u64 = 256 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymanagerError {
    #[error("validator client {url} cannot be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("validator client {url} did not answer in time")]
    Timeout { url: String },
    #[error(
        "validator client {url} refused the bearer token (HTTP {status}); check the token file"
    )]
    Unauthorized { url: String, status: u16 },
    #[error("validator client {url} answered HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("validator client {url} answered JSON the Keymanager API does not allow: {detail}")]
    Malformed { url: String, detail: String },
}

/// A key a validator client holds (`GET /eth/v1/keystores`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedKey {
    pub validating_pubkey: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivation_path: Option<String>,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteStatus {
    /// It was active and is removed.
    Deleted,
    /// Not active; its slashing protection is returned.
    NotActive,
    /// Unknown to the client; no slashing protection.
    NotFound,
    /// Found but could not be stopped: starting it elsewhere would be a slashing.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Imported,
    Duplicate,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus<S> {
    pub status: S,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What `DELETE /eth/v1/keystores` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// One per pubkey asked, in order.
    pub statuses: Vec<KeyStatus<DeleteStatus>>,
    /// The EIP-3076 interchange for the keys, exactly as sent (a JSON string in the answer).
    pub slashing_protection: String,
}

#[derive(Deserialize)]
struct DataOnly<T> {
    data: T,
}

#[derive(Deserialize)]
struct DeleteBody {
    data: Vec<KeyStatus<DeleteStatus>>,
    slashing_protection: String,
}

/// One validator client's Keymanager API.
#[derive(Debug, Clone)]
pub struct KeymanagerClient {
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl KeymanagerClient {
    /// `url` as `http(s)://host:port`; `token` the API's bearer token (the client's
    /// `api-token.txt`, without its newline).
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, KeymanagerError> {
        let url = http::base_url(url).map_err(|url| KeymanagerError::Unreachable {
            url,
            detail: "not an http:// or https:// URL".into(),
        })?;
        Ok(KeymanagerClient {
            url,
            token: token.trim().to_string(),
            agent: http::agent(timeout),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The keys the client holds.
    pub fn list(&self) -> Result<Vec<ListedKey>, KeymanagerError> {
        let response = self
            .agent
            .get(self.endpoint())
            .header("Authorization", self.bearer())
            .header("Accept", "application/json")
            .call();
        let keys: DataOnly<Vec<ListedKey>> = self.answer(response)?;
        Ok(keys.data)
    }

    /// Stop the client signing with `pubkeys` and take their slashing protection.
    pub fn delete(&self, pubkeys: &[String]) -> Result<Deleted, KeymanagerError> {
        let body = serde_json::json!({ "pubkeys": pubkeys });
        let response = self
            .agent
            .delete(self.endpoint())
            .header("Authorization", self.bearer())
            .header("Content-Type", "application/json")
            .force_send_body()
            .send(body.to_string());
        let answer: DeleteBody = self.answer(response)?;
        if answer.data.len() != pubkeys.len() {
            return Err(self.malformed(format!(
                "{} statuses for {} keys asked",
                answer.data.len(),
                pubkeys.len()
            )));
        }
        Ok(Deleted {
            statuses: answer.data,
            slashing_protection: answer.slashing_protection,
        })
    }

    /// Import `keystores` (their JSON text) unlocked by `passwords`, with `slashing`
    /// protection (EIP-3076 JSON text; the field is left out without it). One status per
    /// keystore, in order.
    pub fn import(
        &self,
        keystores: &[String],
        passwords: &[String],
        slashing: Option<&str>,
    ) -> Result<Vec<KeyStatus<ImportStatus>>, KeymanagerError> {
        let mut body = serde_json::json!({
            "keystores": keystores,
            "passwords": passwords,
        });
        if let Some(interchange) = slashing {
            body["slashing_protection"] = interchange.into();
        }
        let response = self
            .agent
            .post(self.endpoint())
            .header("Authorization", self.bearer())
            .header("Content-Type", "application/json")
            .send(body.to_string());
        let answer: DataOnly<Vec<KeyStatus<ImportStatus>>> = self.answer(response)?;
        if answer.data.len() != keystores.len() {
            return Err(self.malformed(format!(
                "{} statuses for {} keystores sent",
                answer.data.len(),
                keystores.len()
            )));
        }
        Ok(answer.data)
    }

    fn endpoint(&self) -> String {
        format!("{}/eth/v1/keystores", self.url)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, KeymanagerError> {
        let (status, text) = http::read(response, BODY_LIMIT).map_err(|e| self.transport(e))?;
        match status {
            200 => serde_json::from_str(&text).map_err(|e| self.malformed(e.to_string())),
            401 | 403 => Err(KeymanagerError::Unauthorized {
                url: self.url.clone(),
                status,
            }),
            _ => Err(KeymanagerError::Http {
                url: self.url.clone(),
                status,
                message: http::printable(&text),
            }),
        }
    }

    fn transport(&self, e: http::Transport) -> KeymanagerError {
        let url = self.url.clone();
        match e {
            http::Transport::Timeout => KeymanagerError::Timeout { url },
            http::Transport::TooLarge(limit) => KeymanagerError::Malformed {
                url,
                detail: format!("answer larger than {limit} bytes"),
            },
            http::Transport::Failed(detail) => KeymanagerError::Unreachable { url, detail },
        }
    }

    fn malformed(&self, detail: String) -> KeymanagerError {
        KeymanagerError::Malformed {
            url: self.url.clone(),
            detail,
        }
    }
}
