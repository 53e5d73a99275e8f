//! The custody registry: one signer per validator key (or Solana identity) across hosts,
//! kept in etcd. doc/CUSTODY.md describes the records and the rules.
//!
//! Every key has one permanent record naming the host that may sign with it. Its fencing
//! token is the record's etcd `mod_revision`: a claim is one transaction that writes every
//! claimed key, so all of them share the claim's revision as their token. A record never
//! carries a lease, so nothing that expires can move custody; claims and releases serialize
//! on an etcd lock bound to a lease, and that lock is all a lost lease frees.
//!
//! ```no_run
//! use std::time::Duration;
//! use vtool_validator::custody::{CustodyKey, EtcdOptions, Registry, TlsFiles};
//!
//! let registry = Registry::connect(&EtcdOptions {
//!     endpoints: vec!["https://10.0.0.1:2379".into()],
//!     tls: Some(TlsFiles {
//!         ca: "/etc/vtool/etcd/ca.crt".into(),
//!         cert: "/etc/vtool/etcd/client.crt".into(),
//!         key: "/etc/vtool/etcd/client.key".into(),
//!     }),
//!     ..EtcdOptions::default()
//! })?;
//! let keys = vec![CustodyKey::eth("0xb845089a1457f811bfc000588fbb4e713669be8ce060ea6be3c6ece09afc3794106c91ca73acda5e5457122d58723bed")?];
//! let token = registry.claim("host-a", &keys, None)?;
//! registry.check("host-a", &keys, Some(token))?;
//! # Ok::<(), vtool_validator::custody::CustodyError>(())
//! ```

mod key;
mod lock;
mod options;
mod record;
mod registry;

use std::time::Duration;

pub use key::{Chain, CustodyKey};
pub use options::{EtcdOptions, TlsFiles};
pub use record::Record;
pub use registry::{Checked, Damaged, Registry, Status};

/// A passed gate report that the caller has authenticated: what lets custody of held keys
/// move to another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The sealed report's id (`reports/<id>`).
    pub report_id: String,
    /// The keys the report is for; must equal the claimed keys exactly.
    pub pubkeys: Vec<String>,
    /// Its `offline` check passed: the previous holder was seen not signing.
    pub passed_offline: bool,
    pub time: time::OffsetDateTime,
}

/// Why one key was refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyProblem {
    pub key: CustodyKey,
    pub reason: String,
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// The connection options are unusable (plaintext without consent, certificates).
    #[error("{0}")]
    Options(String),
    #[error("etcd {op}: {source}")]
    Etcd {
        op: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd {op}: no answer within {after:?}")]
    Timeout { op: &'static str, after: Duration },
    #[error("another custody operation holds the lock; still held after {0:?}")]
    LockBusy(Duration),
    /// The answer is no: some keys may not be claimed, released or confirmed.
    #[error("{} key(s) refused: {}", .0.len(), list(.0))]
    Refused(Vec<KeyProblem>),
    #[error("evidence refused: {0}")]
    Evidence(String),
    /// A record changed between our read and our transaction, or our lock was lost: nothing
    /// was written.
    #[error("custody changed while claiming ({0}); nothing was written, run it again")]
    Conflict(String),
    #[error("cannot start the etcd client runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

fn list(problems: &[KeyProblem]) -> String {
    let shown: Vec<String> = problems.iter().take(5).map(|p| p.to_string()).collect();
    let more = problems.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}; and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

/// `fut`, or [`CustodyError::Timeout`] after `after`.
pub(crate) async fn within<T>(
    op: &'static str,
    after: Duration,
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CustodyError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(CustodyError::Etcd { op, source }),
        Err(_) => Err(CustodyError::Timeout { op, after }),
    }
}
