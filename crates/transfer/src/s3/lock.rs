//! S3 requests OpenDAL does not make: reading the bucket's Object Lock and versioning
//! configurations and setting an object's retention (`PUT <key>?retention`).
//!
//! They are signed with AWS SigV4 by reqsign (the signer OpenDAL itself uses, with the
//! same credential chain: the static key if given, else environment and profile files) and
//! sent with reqwest over the same rustls stack. Retention is always COMPLIANCE mode: no
//! account, not even the bucket owner's, can shorten it or delete the object version
//! before it ends.

use std::time::Duration;

use base64::Engine;
use md5::{Digest, Md5};
use reqsign_aws_v4::{DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};
use reqsign_file_read_tokio::TokioFileRead;
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::S3Config;
use crate::BackendError;

/// Whether a bucket can refuse deletes, as its Object Lock configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockSupport {
    Enabled,
    /// No Object Lock, with the store's own words for why.
    Absent(String),
}

pub(super) struct LockClient {
    http: reqwest::Client,
    signer: Signer<reqsign_aws_v4::Credential>,
    /// `scheme://host[:port]` plus `/bucket` in path style: where keys are appended.
    bucket_url: String,
    /// The repository's key prefix with a trailing `/`, or empty.
    prefix: String,
    location: String,
}

impl LockClient {
    pub(super) fn new(
        config: &S3Config,
        region: &str,
        location: &str,
    ) -> Result<Self, BackendError> {
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| {
                std::env::var("AWS_ENDPOINT_URL")
                    .ok()
                    .filter(|e| !e.is_empty())
            })
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint = endpoint.trim_end_matches('/');
        let bucket_url = if config.path_style {
            format!("{endpoint}/{}", encode_path(&config.bucket))
        } else {
            let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
            format!("{scheme}://{}.{host}", config.bucket)
        };
        let mut chain =
            ProvideCredentialChain::new().push(DefaultCredentialProvider::builder().build());
        if let Some((id, secret)) = &config.static_key {
            chain = chain.push_front(StaticCredentialProvider::new(id, secret));
        }
        let ctx = Context::new().with_file_read(TokioFileRead).with_env(OsEnv);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| BackendError::Other(format!("{location}: HTTP client: {e}")))?;
        Ok(LockClient {
            http,
            signer: Signer::new(ctx, chain, RequestSigner::new("s3", region)),
            bucket_url,
            prefix: match config.prefix.as_str() {
                "" => String::new(),
                p => format!("{p}/"),
            },
            location: location.to_string(),
        })
    }

    /// `GET /?object-lock`: enabled, or absent with the store's reason (AWS and moto say
    /// `ObjectLockConfigurationNotFoundError`; stores without the feature answer 501 or 400).
    pub(super) async fn support(&self) -> Result<LockSupport, BackendError> {
        let url = format!("{}/?object-lock", self.bucket_url);
        let (status, body) = self.send(http::Method::GET, &url, Vec::new(), "").await?;
        let body = String::from_utf8_lossy(&body);
        match status {
            200 if body.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>") => {
                Ok(LockSupport::Enabled)
            }
            200 => Ok(LockSupport::Absent(
                "the bucket's Object Lock configuration does not enable it".into(),
            )),
            // Not knowing is not having: a repository without --object-lock-days still works.
            403 => Ok(LockSupport::Absent(format!(
                "this account may not read the bucket's Object Lock configuration ({}; it needs s3:GetBucketObjectLockConfiguration)",
                error_code(&body)
            ))),
            _ => Ok(LockSupport::Absent(format!(
                "the store answered {status} {}",
                error_code(&body)
            ))),
        }
    }

    /// `GET /?versioning`: whether the bucket keeps versions (enabled, or suspended with old
    /// ones kept). Stores without versioning (Garage answers 501) do not.
    pub(super) async fn versioned(&self) -> Result<bool, BackendError> {
        let url = format!("{}/?versioning", self.bucket_url);
        let (status, body) = self.send(http::Method::GET, &url, Vec::new(), "").await?;
        let body = String::from_utf8_lossy(&body);
        Ok(status == 200
            && (body.contains("<Status>Enabled</Status>")
                || body.contains("<Status>Suspended</Status>")))
    }

    /// Keep object `name` (COMPLIANCE mode) until `until`.
    pub(super) async fn retain(
        &self,
        name: &str,
        until: OffsetDateTime,
    ) -> Result<(), BackendError> {
        let until = until
            .replace_nanosecond(0)
            .unwrap_or(until)
            .format(&Rfc3339)
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode><RetainUntilDate>{until}</RetainUntilDate></Retention>"
        )
        .into_bytes();
        // AWS requires Content-MD5 on retention requests.
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        let url = format!(
            "{}/{}?retention",
            self.bucket_url,
            encode_path(&format!("{}{name}", self.prefix))
        );
        let (status, reply) = self.send(http::Method::PUT, &url, body, &md5).await?;
        match status {
            200..=299 => Ok(()),
            404 => Err(BackendError::NotFound(name.to_string())),
            403 => Err(BackendError::PermissionDenied(format!(
                "{name} in {} (the store refused setting its retention: {})",
                self.location,
                error_code(&String::from_utf8_lossy(&reply))
            ))),
            _ => Err(BackendError::Io {
                op: "set retention of",
                name: format!("{name} in {}", self.location),
                source: std::io::Error::other(format!(
                    "the store answered {status} {}",
                    error_code(&String::from_utf8_lossy(&reply))
                )),
            }),
        }
    }

    /// Sign and send one request, retrying dropped connections and 5xx answers with
    /// jittered backoff; the final status and body.
    async fn send(
        &self,
        method: http::Method,
        url: &str,
        body: Vec<u8>,
        content_md5: &str,
    ) -> Result<(u16, Vec<u8>), BackendError> {
        let io = |e: String| BackendError::Io {
            op: "send Object Lock request to",
            name: self.location.clone(),
            source: std::io::Error::other(e),
        };
        let mut attempt = 0u32;
        loop {
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(url)
                .header("x-amz-content-sha256", hex::encode(Sha256::digest(&body)))
                .header("content-length", body.len());
            if !content_md5.is_empty() {
                builder = builder.header("content-md5", content_md5);
            }
            let (mut parts, ()) = builder
                .body(())
                .map_err(|e| io(format!("bad request {url}: {e}")))?
                .into_parts();
            self.signer
                .sign(&mut parts, None)
                .await
                .map_err(|e| io(format!("signing: {e}")))?;
            let request =
                reqwest::Request::try_from(http::Request::from_parts(parts, body.clone()))
                    .map_err(|e| io(e.to_string()))?;
            let reason = match self.http.execute(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.bytes().await {
                        // 501: the store has no such request, an answer and not a fault.
                        Ok(bytes) if status < 500 || status == 501 => {
                            return Ok((status, bytes.to_vec()))
                        }
                        Ok(bytes) => {
                            format!("{status} {}", error_code(&String::from_utf8_lossy(&bytes)))
                        }
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            attempt += 1;
            if attempt >= 5 {
                return Err(io(format!("{reason} (after {attempt} attempts)")));
            }
            let backoff = Duration::from_millis(200 << attempt.min(5));
            tokio::time::sleep(backoff + Duration::from_millis(fastrand::u64(..200))).await;
        }
    }
}

/// The `<Code>` of an S3 error document, or the body's start.
fn error_code(body: &str) -> String {
    match body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
    {
        Some((code, _)) => code.to_string(),
        None => body.chars().take(120).collect(),
    }
}

/// Percent-encode a key for a URL path, keeping `/` (SigV4 canonicalizes what is sent).
fn encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
