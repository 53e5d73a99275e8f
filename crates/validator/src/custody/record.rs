//! A custody record: the JSON value stored at a key's path, and the record as read back with
//! its revisions.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::CustodyKey;

/// The value stored in etcd (doc/CUSTODY.md). Unknown fields are refused: a record someone
/// else wrote is not to be trusted as ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stored {
    pub version: u32,
    /// The host that may sign; `None` once its holder released it.
    pub holder: Option<String>,
    /// When the current (or, released, the last) holder claimed it.
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
    /// The gate report that moved custody to the holder; `None` for a first claim.
    pub report_id: Option<String>,
    /// Who held it before the last change: the host custody was taken from, or the
    /// releasing host.
    pub previous_holder: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub released_at: Option<OffsetDateTime>,
}

pub(crate) const VERSION: u32 = 1;

/// A key's record as etcd holds it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub key: CustodyKey,
    pub holder: Option<String>,
    /// The fencing token: the revision of the transaction that last wrote the record.
    pub token: i64,
    /// When the record was first written.
    pub created_revision: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
    pub report_id: Option<String>,
    pub previous_holder: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub released_at: Option<OffsetDateTime>,
}

impl Record {
    pub(crate) fn from_kv(kv: &etcd_client::KeyValue) -> Result<Record, (String, String)> {
        let path = String::from_utf8_lossy(kv.key()).into_owned();
        let key = CustodyKey::from_path(&path).map_err(|e| (path.clone(), e))?;
        let stored: Stored =
            serde_json::from_slice(kv.value()).map_err(|e| (path.clone(), e.to_string()))?;
        if stored.version != VERSION {
            return Err((path, format!("record version {}", stored.version)));
        }
        if kv.lease() != 0 {
            // A leased record would vanish with its lease and let custody move.
            return Err((path, format!("bound to lease {:x}", kv.lease())));
        }
        Ok(Record {
            key,
            holder: stored.holder,
            token: kv.mod_revision(),
            created_revision: kv.create_revision(),
            claimed_at: stored.claimed_at,
            report_id: stored.report_id,
            previous_holder: stored.previous_holder,
            released_at: stored.released_at,
        })
    }
}
