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
//!   once. OpenDAL pages listings (1,000 keys a page) and batches deletes.
//!
//! The backend runs its own tokio runtime; call it from ordinary threads (not from inside an
//! async runtime).

use std::future::IntoFuture;
use std::time::Duration;

use futures::TryStreamExt;
use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};

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
    /// Access key id and secret; `None`: the AWS chain (environment, profile files).
    pub static_key: Option<(String, String)>,
    /// Requests in flight at once.
    pub connections: usize,
    /// Retries of a failed request.
    pub retries: usize,
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
            static_key: None,
            connections: 16,
            retries: 5,
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
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".to_string());
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
                    .with_max_times(config.retries),
            )
            .layer(ConcurrentLimitLayer::new(config.connections.max(1)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError::from_io("start runtime for", &location, e))?;
        Ok(S3Backend {
            op,
            runtime,
            location,
        })
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
            _ => BackendError::Io {
                op,
                name: format!("{name} in {}", self.location),
                source: std::io::Error::other(e),
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
    /// A server that honours the condition (AWS, moto) refuses an existing name atomically
    /// (412). One that ignores it (Garage) would overwrite, so the HEAD before refuses names
    /// that already exist. What the HEAD leaves open is two writers racing for one name, and
    /// that is harmless for content-addressed names (packs, indexes, snapshots): both write
    /// the same bytes. It is not harmless for `config`, whose content is not its name: two
    /// concurrent `init`s of one prefix on such a server can both succeed, the later config
    /// winning.
    fn put(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        validate_name(name)?;
        if self.size(name)?.is_some() {
            return Err(BackendError::AlreadyExists(name.to_string()));
        }
        self.block(self.op.write_with(name, data.to_vec()).if_not_exists(true))
            .map(|_| ())
            .map_err(|e| self.error("write", name, e))
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
        // A bucket with Object Lock may keep it; it is outside every listed directory.
        let _ = self.block(self.op.delete(&name));
        Ok(Some(honoured))
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
        // S3 deletes a missing key without complaint; the trait reports it.
        if self.size(name)?.is_none() {
            return Err(BackendError::NotFound(name.to_string()));
        }
        self.block(self.op.delete(name))
            .map_err(|e| self.error("delete", name, e))
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
