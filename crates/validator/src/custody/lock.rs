//! The custody lock: claims and releases take turns on one etcd lock bound to a lease that
//! is kept alive while the operation works. When the holder dies the lease expires and the
//! lock is freed; the records, which carry no lease, stay as they are.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, LockOptions};
use tokio::task::JoinHandle;

use super::{within, CustodyError, EtcdOptions};

/// The lock's name; etcd keeps its owners' keys under `<name>/<lease>`, outside the records.
pub const LOCK_NAME: &str = "/vtool/lock/custody/v1";

/// A held custody lock.
pub(crate) struct Held {
    lease: i64,
    key: Vec<u8>,
    keeper: JoinHandle<()>,
}

impl Held {
    /// Take the lock, waiting at most `lock_wait` for another holder.
    pub(crate) async fn acquire(client: &Client, o: &EtcdOptions) -> Result<Held, CustodyError> {
        let ttl = o.lock_ttl.as_secs().max(2);
        let mut leases = client.lease_client();
        let lease = within(
            "lease grant",
            o.request_timeout,
            leases.grant(ttl as i64, None),
        )
        .await?
        .id();
        let (mut keeper, mut answers) = within(
            "lease keep-alive",
            o.request_timeout,
            leases.keep_alive(lease),
        )
        .await?;
        // Renew at a third of the TTL; if renewing fails, the lease lapses and the
        // transaction's compare on the lock key fails rather than writing unlocked.
        let period = Duration::from_secs((ttl / 3).max(1));
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match answers.message().await {
                    Ok(Some(a)) if a.ttl() > 0 => {}
                    _ => break,
                }
            }
        });
        let mut locks = client.lock_client();
        let locking = locks.lock(LOCK_NAME, Some(LockOptions::new().with_lease(lease)));
        let outcome = match tokio::time::timeout(o.lock_wait, locking).await {
            Ok(Ok(held)) => Ok(held.key().to_vec()),
            Ok(Err(source)) => Err(CustodyError::Etcd { op: "lock", source }),
            Err(_) => Err(CustodyError::LockBusy(o.lock_wait)),
        };
        let held = Held {
            lease,
            key: Vec::new(),
            keeper,
        };
        match outcome {
            Ok(key) => Ok(Held { key, ..held }),
            Err(e) => {
                // Revoking the lease also withdraws our place in the lock's queue.
                held.release(client, o.request_timeout).await;
                Err(e)
            }
        }
    }

    /// A transaction compare that holds only while we still own the lock.
    pub(crate) fn still_held(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Greater, 0)
    }

    /// Give the lock up. Failing to is harmless: the lease expires within its TTL.
    pub(crate) async fn release(self, client: &Client, timeout: Duration) {
        self.keeper.abort();
        let mut leases = client.lease_client();
        let _ = within("lease revoke", timeout, leases.revoke(self.lease)).await;
    }
}
