//! A repository in an S3-compatible object store (`s3://bucket/prefix`), through Apache OpenDAL.
//!
//! # Configuration
//!
//! Credentials, region and endpoint come from the standard AWS sources, as read by OpenDAL:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE` with
//! `~/.aws/credentials` and `~/.aws/config`, `AWS_REGION` / `AWS_DEFAULT_REGION` (default
//! `us-east-1`) and `AWS_ENDPOINT_URL`. For self-hosted stores:
//!
//! | variable | meaning |
//! |---|---|
//! | `VTOOL_S3_ENDPOINT` | endpoint URL, e.g. `http://10.0.0.5:3900` (overrides `AWS_ENDPOINT_URL`) |
//! | `VTOOL_S3_PATH_STYLE=1` | address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key` |
//!
//! # Behaviour
//!
//! * An object is one PUT of the whole object: readers see all of it or nothing, so there are
//!   no temporary files ([`Backend::list_temp`] is empty) and no rename ([`Backend::can_rename`]
//!   is false; copy-and-delete would not be atomic, and nothing in vtool needs it).
//! * Puts never overwrite: see [`S3Backend::put`].
//! * Requests are retried with jittered backoff on transient errors (5xx, throttling, dropped
//!   connections), time out instead of hanging, and at most [`S3Config::connections`] run at
//!   once. OpenDAL pages listings (1,000 keys a page); [`Backend::delete_many`] batches
//!   deletes (DeleteObjects). Backups keep [`Backend::concurrency`] packs in flight.
//!
//! * Object Lock ([`lock`]): a location initialised with `--object-lock-days N` holds an
//!   `object-lock` object naming N; from then on every object written under `config`,
//!   `keys/`, `packs/`, `index/`, `snapshots/` and `refs/` gets a COMPLIANCE retention of N
//!   days, and [`Backend::retain`] extends it. Deletes remove the object's version, so the
//!   store refuses them (403) while it is retained, instead of hiding it behind a delete
//!   marker.
//!
//! The backend runs its own tokio runtime; call it from ordinary threads (not from inside an
//! async runtime).

mod lock;

use std::future::IntoFuture;
use std::sync::OnceLock;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};

use lock::LockClient;
pub use lock::LockSupport;

use crate::temp::validate_temp_name;
use crate::{validate_name, Backend, BackendError, ObjectInfo, TempFile};

/// Where and how to reach the store. [`S3Config::new`] gives defaults; [`S3Config::with_env`]
/// applies `VTOOL_S3_ENDPOINT` and `VTOOL_S3_PATH_STYLE` (what `s3://` URLs use).
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix of the repository inside the bucket, without leading or trailing `/`.
    pub prefix: String,
    /// Endpoint URL; `None`: `AWS_ENDPOINT_URL`, else AWS's for the region.
    pub endpoint: Option<String>,
    /// `endpoint/bucket/key` addressing, which self-hosted stores usually need.
    pub path_style: bool,
    /// Region to sign for; `None`: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Access key id and secret; `None`: the AWS chain (environment, profile files).
    pub static_key: Option<(String, String)>,
    /// Requests in flight at once.
    pub connections: usize,
    /// Retries of a failed request.
    pub retries: usize,
    /// Wait before the first retry; it doubles (with jitter) for each next one, up to 60 s.
    pub retry_delay: Duration,
    /// Limit for one request without I/O progress.
    pub timeout: Duration,
}

impl S3Config {
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
            endpoint: None,
            path_style: false,
            region: None,
            static_key: None,
            connections: 16,
            retries: 5,
            retry_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
        }
    }

    /// Apply `VTOOL_S3_ENDPOINT` and `VTOOL_S3_PATH_STYLE=1`.
    pub fn with_env(mut self) -> Self {
        if let Some(endpoint) = std::env::var("VTOOL_S3_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
        {
            self.endpoint = Some(endpoint);
        }
        if std::env::var("VTOOL_S3_PATH_STYLE").is_ok_and(|v| v == "1") {
            self.path_style = true;
        }
        self
    }
}

/// A repository under `s3://bucket/prefix`.
pub struct S3Backend {
    op: Operator,
    runtime: tokio::runtime::Runtime,
    location: String,
    lock: LockClient,
    /// Days of retention given to what is written, from the `object-lock` object.
    retention: OnceLock<u32>,
}

/// The `object-lock` object: this location's retention, written by `init`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectLockFile {
    /// Always `"vtool-object-lock"`.
    kind: String,
    version: u32,
    /// COMPLIANCE retention of each retained object, from its write or last extension.
    days: u32,
}

const OBJECT_LOCK: &str = "object-lock";

/// Retention is at most a century: anything longer is not a setting of ours.
const MAX_RETENTION_DAYS: u32 = 36_500;

/// The top-level names whose objects get retention: what restores need, not the records
/// that coordinate writers and prunes (which must stay deletable) nor evidence records.
pub const RETAINED: [&str; 6] = ["config", "keys", "packs", "index", "snapshots", "refs"];

fn is_retained(name: &str) -> bool {
    let top = name.split('/').next().unwrap_or(name);
    top == OBJECT_LOCK || RETAINED.contains(&top)
}

impl S3Backend {
    /// Connect to an existing repository: the prefix must hold objects.
    pub fn open(config: S3Config) -> Result<Self, BackendError> {
        let backend = Self::connect(config)?;
        if backend.is_empty()? {
            return Err(BackendError::NoRepository(backend.location));
        }
        Ok(backend)
    }

    /// Connect for a new repository or a copy target. The bucket must exist; buckets are
    /// the store administrator's business (policies, Object Lock), so none is created here.
    pub fn create(config: S3Config) -> Result<Self, BackendError> {
        let backend = Self::connect(config)?;
        // Fails now, with the store's reason, on a missing bucket or bad credentials.
        backend.is_empty()?;
        Ok(backend)
    }

    fn connect(config: S3Config) -> Result<Self, BackendError> {
        let location = match config.prefix.as_str() {
            "" => format!("s3://{}", config.bucket),
            prefix => format!("s3://{}/{prefix}", config.bucket),
        };
        install_transport();
        let region = config
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut builder = opendal::services::S3::default()
            .bucket(&config.bucket)
            .root(&format!("/{}", config.prefix))
            .region(&region);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint(endpoint);
        }
        if let Some((id, secret)) = &config.static_key {
            builder = builder.access_key_id(id).secret_access_key(secret);
        }
        if !config.path_style {
            builder = builder.enable_virtual_host_style();
        }
        let setup = |e: opendal::Error| BackendError::Other(format!("{location}: {e}"));
        let op = Operator::new(builder)
            .map_err(setup)?
            .layer(TimeoutLayer::new().with_io_timeout(config.timeout))
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_min_delay(config.retry_delay)
                    .with_max_times(config.retries),
            )
            .layer(ConcurrentLimitLayer::new(config.connections.max(1)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError::from_io("start runtime for", &location, e))?;
        let lock = LockClient::new(&config, &region, &location)?;
        let backend = S3Backend {
            op,
            runtime,
            location,
            lock,
            retention: OnceLock::new(),
        };
        if let Some(days) = backend.read_object_lock()? {
            let _ = backend.retention.set(days);
        }
        Ok(backend)
    }

    /// The location's retention from its `object-lock` object, if it has one.
    fn read_object_lock(&self) -> Result<Option<u32>, BackendError> {
        let data = match self.block(self.op.read(OBJECT_LOCK)) {
            Ok(buf) => buf.to_vec(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error("read", OBJECT_LOCK, e)),
        };
        let damaged = |why: String| {
            BackendError::Other(format!(
                "{OBJECT_LOCK} in {} is damaged ({why}); it must hold {{\"kind\":\"vtool-object-lock\",\"version\":1,\"days\":N}}",
                self.location
            ))
        };
        let file: ObjectLockFile =
            serde_json::from_slice(&data).map_err(|e| damaged(e.to_string()))?;
        if file.kind != "vtool-object-lock" || file.version != 1 {
            return Err(damaged(format!(
                "kind {:?} version {}",
                file.kind, file.version
            )));
        }
        if !(1..=MAX_RETENTION_DAYS).contains(&file.days) {
            return Err(damaged(format!("{} days", file.days)));
        }
        Ok(Some(file.days))
    }

    /// Remove `name` for good: on a versioned bucket (Object Lock needs one) its version,
    /// which the store refuses while retained; a plain delete would only add a marker.
    fn delete_object(&self, name: &str) -> Result<(), BackendError> {
        let meta = match self.block(self.op.stat(name)) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(BackendError::NotFound(name.to_string()))
            }
            Err(e) => return Err(self.error("stat", name, e)),
        };
        let deleted = match meta.version() {
            Some(version) => self.block(self.op.delete_with(name).version(version)),
            None => self.block(self.op.delete(name)),
        };
        deleted.map_err(|e| self.error("delete", name, e))
    }

    /// Run one OpenDAL operation to completion on the backend's runtime.
    fn block<F: IntoFuture>(&self, operation: F) -> F::Output {
        self.runtime.block_on(operation.into_future())
    }

    fn is_empty(&self) -> Result<bool, BackendError> {
        // `limit` sizes a page, not the listing: stop at the first object.
        self.block(async {
            let mut lister = self.op.lister_with("").recursive(true).limit(10).await?;
            while let Some(entry) = lister.try_next().await? {
                if entry.metadata().is_file() {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .map_err(|e| self.error("list", "", e))
    }

    /// Translate an OpenDAL error, keeping apart what a user acts on differently.
    fn error(&self, op: &'static str, name: &str, e: opendal::Error) -> BackendError {
        match e.kind() {
            ErrorKind::NotFound => BackendError::NotFound(name.to_string()),
            ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => {
                BackendError::AlreadyExists(name.to_string())
            }
            // 403: bad credentials, a bucket policy, or Object Lock refusing a delete.
            ErrorKind::PermissionDenied => BackendError::PermissionDenied(format!(
                "{name} in {} (the store refused {op}: {e})",
                self.location
            )),
            // The store's own words (code and message), not OpenDAL's request dump.
            _ => BackendError::Io {
                op,
                name: format!("{name} in {}", self.location),
                source: std::io::Error::other(store_says(&e)),
            },
        }
    }

    fn size(&self, name: &str) -> Result<Option<u64>, BackendError> {
        match self.block(self.op.stat(name)) {
            Ok(meta) => Ok(Some(meta.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("stat", name, e)),
        }
    }
}

/// An S3 error as `<Code>: <Message>` when the store sent one, else OpenDAL's message; with
/// a note when the retry layer gave up on a transient error (OpenDAL marks it persistent).
fn store_says(e: &opendal::Error) -> String {
    let text = e.message();
    // A quoted Debug string: up to the first quote not escaped, unescaped.
    let field = |name: &str| {
        let start = text.find(&format!("{name}: \""))? + name.len() + 3;
        let mut out = String::new();
        let mut chars = text[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => out.push(chars.next()?),
                c => out.push(c),
            }
        }
        None
    };
    let said = match (field("code"), field("message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => text.to_string(),
    };
    if e.is_persistent() {
        format!("{said} (gave up after retries)")
    } else {
        said
    }
}

/// The end of a retention of `days` starting now.
fn until(days: u32) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days))
}

/// OpenDAL's process-wide HTTP transport: reqwest over rustls with ring (as for SSH; no
/// aws-lc build). The first installed provider and transport win, so calling again is harmless.
fn install_transport() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    opendal::HttpTransporter::install_default(
        opendal_http_transport_reqwest::ReqwestTransport::default(),
    );
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    /// One PUT with `If-None-Match: *`, after a HEAD of the name.
    ///
    /// A put refused by the condition although the HEAD found nothing is read back: holding
    /// exactly `data`, it is this put's own write whose answer was lost and retried.
    ///
    /// A server that honours the condition (AWS, moto) refuses an existing name atomically
    /// (412). One that ignores it (Garage) would overwrite, so the HEAD before refuses names
    /// that already exist. What the HEAD leaves open is two writers racing for one name, and
    /// that is harmless for content-addressed names (packs, indexes, snapshots): both write
    /// the same bytes. It is not harmless for `config`, whose content is not its name: two
    /// concurrent `init`s of one prefix on such a server can both succeed, the later config
    /// winning.
    fn put(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.put_owned(name, data.to_vec())
    }

    fn put_owned(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        validate_name(name)?;
        if self.size(name)?.is_some() {
            return Err(BackendError::AlreadyExists(name.to_string()));
        }
        // Shared, not copied: OpenDAL sends it, and a refused put compares with it.
        let data = bytes::Bytes::from(data);
        let written = self
            .block(self.op.write_with(name, data.clone()).if_not_exists(true))
            .map_err(|e| self.error("write", name, e));
        match written {
            Ok(_) => {}
            // Absent at the HEAD, present now: another writer, or this write itself, stored
            // and then retried after its answer was lost (the retry meets the condition).
            // Only the stored bytes tell them apart.
            Err(BackendError::AlreadyExists(_)) if self.get(name)? == data => {}
            Err(e) => return Err(e),
        }
        match self.retention.get() {
            // A crash between the two requests leaves the object unretained until the next
            // prune, which extends everything the snapshots need.
            Some(days) if is_retained(name) => self.block(self.lock.retain(name, until(*days))),
            _ => Ok(()),
        }
    }

    /// Two conditional PUTs of one probe name (outside the repository's directories), then
    /// its removal: AWS and moto refuse the second (412), Garage writes it.
    fn probe_conditional_put(&self) -> Result<Option<bool>, BackendError> {
        let name = format!("probe-if-none-match-{:016x}", fastrand::u64(..));
        let write = |data: &'static [u8]| {
            self.block(self.op.write_with(&name, data).if_not_exists(true))
                .map(|_| ())
                .map_err(|e| self.error("write", &name, e))
        };
        write(b"first")?;
        let honoured = match write(b"second") {
            Err(BackendError::AlreadyExists(_)) => true,
            Ok(()) => false,
            Err(e) => return Err(e),
        };
        // Outside every listed directory; a bucket's default retention may keep it.
        let _ = self.delete_object(&name);
        Ok(Some(honoured))
    }

    fn probe_object_lock(&self) -> Result<Option<LockSupport>, BackendError> {
        self.block(self.lock.support()).map(Some)
    }

    fn retention_days(&self) -> Option<u32> {
        self.retention.get().copied()
    }

    fn enable_retention(&self, days: u32) -> Result<(), BackendError> {
        if !(1..=MAX_RETENTION_DAYS).contains(&days) {
            return Err(BackendError::Other(format!(
                "an Object Lock retention of {days} days is outside 1..={MAX_RETENTION_DAYS}"
            )));
        }
        if let LockSupport::Absent(why) = self.block(self.lock.support())? {
            return Err(BackendError::Unsupported {
                op: "Object Lock",
                location: format!(
                    "{} ({why}); create the bucket with Object Lock enabled (e.g. aws s3api create-bucket --object-lock-enabled-for-bucket), or leave out --object-lock-days",
                    self.location
                ),
            });
        }
        if self.retention.set(days).is_err() {
            return Err(BackendError::AlreadyExists(OBJECT_LOCK.to_string()));
        }
        let file = ObjectLockFile {
            kind: "vtool-object-lock".into(),
            version: 1,
            days,
        };
        let data = serde_json::to_vec(&file).map_err(|e| BackendError::Other(e.to_string()))?;
        self.put(OBJECT_LOCK, &data)
    }

    /// Up to [`S3Config::connections`] retention requests at once.
    fn retain(&self, names: &[String]) -> Result<(), BackendError> {
        let Some(days) = self.retention.get().copied() else {
            return Err(BackendError::Unsupported {
                op: "retention (it was not initialised with --object-lock-days)",
                location: self.location.clone(),
            });
        };
        let until = until(days);
        for name in names {
            validate_name(name)?;
        }
        self.block(async {
            futures::stream::iter(names.iter().map(|name| self.lock.retain(name, until)))
                .buffer_unordered(16)
                .try_collect::<Vec<()>>()
                .await
        })
        .map(|_| ())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        validate_name(name)?;
        self.block(self.op.read(name))
            .map(|buf| buf.to_vec())
            .map_err(|e| self.error("read", name, e))
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        validate_name(name)?;
        let out_of_range = |size| BackendError::OutOfRange {
            name: name.to_string(),
            size,
            offset,
            len,
        };
        let end = offset.checked_add(len).ok_or_else(|| out_of_range(0))?;
        if len == 0 {
            // HTTP has no empty range; the object must still exist and reach `offset`.
            let size = self
                .size(name)?
                .ok_or_else(|| BackendError::NotFound(name.to_string()))?;
            return if offset <= size {
                Ok(Vec::new())
            } else {
                Err(out_of_range(size))
            };
        }
        let got = self
            .block(self.op.read_with(name).range(offset..end))
            .map(|buf| buf.to_vec());
        match got {
            Ok(data) if data.len() as u64 == len => Ok(data),
            // A range past the end comes back short (or as 416): the size says which.
            Ok(_) => Err(out_of_range(self.size(name)?.unwrap_or(0))),
            Err(e) if e.kind() == ErrorKind::RangeNotSatisfied => {
                Err(out_of_range(self.size(name)?.unwrap_or(0)))
            }
            Err(e) => Err(self.error("read", name, e)),
        }
    }

    fn stat(&self, name: &str) -> Result<Option<u64>, BackendError> {
        validate_name(name)?;
        self.size(name)
    }

    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        validate_name(dir)?;
        let entries = self
            .block(self.op.list_with(&format!("{dir}/")).recursive(true))
            .map_err(|e| self.error("list", dir, e))?;
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| ObjectInfo {
                size: e.metadata().content_length(),
                name: e.path().trim_start_matches('/').to_string(),
            })
            .collect())
    }

    fn delete(&self, name: &str) -> Result<(), BackendError> {
        validate_name(name)?;
        // S3 deletes a missing key without complaint; the trait reports it (the stat).
        self.delete_object(name)
    }

    /// DeleteObjects batches; on a versioned bucket (Object Lock makes one) one version at
    /// a time instead, as [`Backend::delete`] does, since a batch of plain keys would only
    /// add delete markers.
    fn delete_many(&self, names: &[String]) -> Result<(), BackendError> {
        for name in names {
            validate_name(name)?;
        }
        if names.is_empty() {
            return Ok(());
        }
        if self.block(self.lock.versioned())? {
            return crate::delete_each(self, names);
        }
        self.block(self.op.delete_iter(names.iter().map(String::as_str)))
            .map_err(|e| self.error("delete", &format!("{} objects", names.len()), e))
    }

    /// Four: packs are 16 MiB, so four in flight keep a link of a few Gbit/s busy at
    /// typical object-store latencies while holding 64 MiB.
    fn concurrency(&self) -> usize {
        4
    }

    fn can_rename(&self) -> bool {
        false
    }

    fn rename(&self, from: &str, _to: &str) -> Result<(), BackendError> {
        Err(BackendError::Unsupported {
            op: "rename",
            location: format!("{from} in {}", self.location),
        })
    }

    fn list_temp(&self) -> Result<Vec<TempFile>, BackendError> {
        Ok(Vec::new())
    }

    fn remove_temp(&self, name: &str) -> Result<(), BackendError> {
        validate_temp_name(name)?;
        Err(BackendError::NotFound(name.to_string()))
    }
}
