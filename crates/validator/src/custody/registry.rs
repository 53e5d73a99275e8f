//! The registry's operations, blocking: each runs to completion on a current-thread runtime
//! owned by the [`Registry`].

use std::collections::{BTreeMap, BTreeSet};

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::runtime::Runtime;

use super::key::PREFIX;
use super::lock::Held;
use super::record::{Stored, VERSION};
use super::{within, CustodyError, CustodyKey, EtcdOptions, Evidence, KeyProblem, Record};

/// A connection to the registry.
pub struct Registry {
    runtime: Runtime,
    /// One per endpoint.
    clients: Vec<Client>,
    options: EtcdOptions,
}

/// The member an operation talks to.
struct Conn<'a> {
    client: &'a Client,
    timeout: std::time::Duration,
}

/// The records etcd holds at one revision.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The etcd revision the answer was read at.
    pub revision: i64,
    pub records: Vec<Record>,
    /// Asked-for keys that have no record.
    pub missing: Vec<CustodyKey>,
    /// Values under the prefix that are not valid records.
    pub damaged: Vec<Damaged>,
}

/// A value where a record should be that is not one of vtool's.
#[derive(Debug, Clone, Serialize)]
pub struct Damaged {
    pub path: String,
    pub reason: String,
}

/// etcd confirmed custody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// The revision of the linearizable read that confirmed it.
    pub revision: i64,
    /// The keys' token, when they all share one (they do after one claim).
    pub token: Option<i64>,
}

/// Each asked-for key: its record, none, or why its value is not one.
type Read = BTreeMap<CustodyKey, Option<Result<Record, String>>>;

impl Registry {
    pub fn connect(options: &EtcdOptions) -> Result<Registry, CustodyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CustodyError::Runtime)?;
        let clients = runtime.block_on(options.connect())?;
        Ok(Registry {
            runtime,
            clients,
            options: options.clone(),
        })
    }

    /// The records of `keys`, or every record.
    pub fn status(&self, keys: Option<&[CustodyKey]>) -> Result<Status, CustodyError> {
        let keys = keys.map(sorted).transpose()?;
        let keys = keys.as_deref();
        self.runtime.block_on(async {
            let conn = self.reachable().await?;
            let (revision, kvs) = match keys {
                Some(keys) => conn.range(keys).await?,
                None => {
                    conn.get(PREFIX.as_bytes().to_vec(), GetOptions::new().with_prefix())
                        .await?
                }
            };
            let mut status = Status {
                revision,
                records: Vec::new(),
                missing: Vec::new(),
                damaged: Vec::new(),
            };
            let mut found = BTreeSet::new();
            for kv in &kvs {
                match Record::from_kv(kv) {
                    Ok(r) if keys.is_none_or(|k| k.contains(&r.key)) => {
                        found.insert(r.key.clone());
                        status.records.push(r);
                    }
                    Ok(_) => {}
                    Err((path, reason)) => status.damaged.push(Damaged { path, reason }),
                }
            }
            status.missing = keys
                .unwrap_or_default()
                .iter()
                .filter(|k| !found.contains(*k))
                .cloned()
                .collect();
            Ok(status)
        })
    }

    /// Claim `keys` for `host` in one transaction; returns the fencing token. Keys without
    /// a record, or released by their holder, need no evidence; held keys move only with
    /// `evidence` for exactly these keys.
    pub fn claim(
        &self,
        host: &str,
        keys: &[CustodyKey],
        evidence: Option<&Evidence>,
    ) -> Result<i64, CustodyError> {
        check_host(host)?;
        let keys = sorted(keys)?;
        if let Some(e) = evidence {
            check_evidence(e, &keys)?;
        }
        self.locked(async |conn: &Conn<'_>, held: &Held| {
            let read = conn.read(&keys).await?;
            let now = OffsetDateTime::now_utc();
            let mut compares = Vec::new();
            let mut puts = Vec::new();
            let mut problems = Vec::new();
            for (key, found) in &read {
                let previous = match found {
                    None => {
                        compares.push(Compare::create_revision(key.path(), CompareOp::Equal, 0));
                        None
                    }
                    Some(Err(reason)) => {
                        problems.push(problem(key, format!("record is not vtool's: {reason}")));
                        continue;
                    }
                    Some(Ok(r)) => {
                        if let (Some(holder), None) = (&r.holder, evidence) {
                            let whose = if holder == host { "this host" } else { holder };
                            problems.push(problem(
                                key,
                                format!(
                                    "held by {whose} (token {}); moving it needs a passing gate \
                                     report for exactly these keys (--evidence)",
                                    r.token
                                ),
                            ));
                            continue;
                        }
                        compares.push(Compare::mod_revision(key.path(), CompareOp::Equal, r.token));
                        r.holder.clone().or_else(|| r.previous_holder.clone())
                    }
                };
                let stored = Stored {
                    version: VERSION,
                    holder: Some(host.to_string()),
                    claimed_at: now,
                    report_id: evidence.map(|e| e.report_id.clone()),
                    previous_holder: previous,
                    released_at: None,
                };
                puts.push(put(key, &stored));
            }
            if !problems.is_empty() {
                return Err(CustodyError::Refused(problems));
            }
            conn.commit(held, compares, puts).await
        })
    }

    /// Release `keys`, held by `host` under `token`, leaving their records without a
    /// holder. Returns the release's revision.
    pub fn release(
        &self,
        host: &str,
        keys: &[CustodyKey],
        token: i64,
    ) -> Result<i64, CustodyError> {
        check_host(host)?;
        let keys = sorted(keys)?;
        self.locked(async |conn: &Conn<'_>, held: &Held| {
            let read = conn.read(&keys).await?;
            let now = OffsetDateTime::now_utc();
            let mut compares = Vec::new();
            let mut puts = Vec::new();
            let mut problems = Vec::new();
            for (key, found) in &read {
                match held_by(found, host, Some(token)) {
                    Ok(r) => {
                        compares.push(Compare::mod_revision(key.path(), CompareOp::Equal, token));
                        let stored = Stored {
                            version: VERSION,
                            holder: None,
                            claimed_at: r.claimed_at,
                            report_id: r.report_id.clone(),
                            previous_holder: Some(host.to_string()),
                            released_at: Some(now),
                        };
                        puts.push(put(key, &stored));
                    }
                    Err(reason) => problems.push(problem(key, reason)),
                }
            }
            if !problems.is_empty() {
                return Err(CustodyError::Refused(problems));
            }
            conn.commit(held, compares, puts).await
        })
    }

    /// Whether etcd confirms now, in a linearizable read, that `host` holds every key (under
    /// `token`, when given). Each request has the request timeout; an error is no answer.
    pub fn check(
        &self,
        host: &str,
        keys: &[CustodyKey],
        token: Option<i64>,
    ) -> Result<Checked, CustodyError> {
        check_host(host)?;
        let keys = sorted(keys)?;
        let (revision, read) = self.runtime.block_on(async {
            let (revision, kvs) = self.reachable().await?.range(&keys).await?;
            Ok::<_, CustodyError>((revision, pick(&keys, &kvs)))
        })?;
        let mut problems = Vec::new();
        let mut tokens = BTreeSet::new();
        for (key, found) in &read {
            match held_by(found, host, token) {
                Ok(r) => {
                    tokens.insert(r.token);
                }
                Err(reason) => problems.push(problem(key, reason)),
            }
        }
        if !problems.is_empty() {
            return Err(CustodyError::Refused(problems));
        }
        Ok(Checked {
            revision,
            token: (tokens.len() == 1)
                .then(|| tokens.into_iter().next())
                .flatten(),
        })
    }

    /// Run `work` holding the custody lock, which its commit compares on.
    fn locked<T>(
        &self,
        work: impl AsyncFnOnce(&Conn<'_>, &Held) -> Result<T, CustodyError>,
    ) -> Result<T, CustodyError> {
        self.runtime.block_on(async {
            let conn = self.reachable().await?;
            let held = Held::acquire(conn.client, &self.options).await?;
            let outcome = work(&conn, &held).await;
            held.release(conn.client, conn.timeout).await;
            outcome
        })
    }

    /// The first member, in the order given, that answers a linearizable read: a member that
    /// is down, or cut off from the quorum, is passed over. An operation then stays with it.
    async fn reachable(&self) -> Result<Conn<'_>, CustodyError> {
        let mut last = None;
        for client in &self.clients {
            let conn = Conn {
                client,
                timeout: self.options.request_timeout,
            };
            let probe = GetOptions::new().with_prefix().with_count_only();
            match conn.get(PREFIX.as_bytes().to_vec(), probe).await {
                Ok(_) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| CustodyError::Options("no etcd endpoint given".into())))
    }
}

impl Conn<'_> {
    /// The keys' records, read at one revision.
    async fn read(&self, keys: &[CustodyKey]) -> Result<Read, CustodyError> {
        let (_, kvs) = self.range(keys).await?;
        Ok(pick(keys, &kvs))
    }

    /// One linearizable range read from the lowest to the highest of `keys` (sorted): one
    /// revision, and no limit on the number of keys.
    async fn range(
        &self,
        keys: &[CustodyKey],
    ) -> Result<(i64, Vec<etcd_client::KeyValue>), CustodyError> {
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Err(CustodyError::Options("no keys given".into()));
        };
        let mut end = last.path().into_bytes();
        end.push(0);
        self.get(first.path().into_bytes(), GetOptions::new().with_range(end))
            .await
    }

    async fn get(
        &self,
        key: Vec<u8>,
        options: GetOptions,
    ) -> Result<(i64, Vec<etcd_client::KeyValue>), CustodyError> {
        let mut kv = self.client.kv_client();
        let mut answer = within("read", self.timeout, kv.get(key, Some(options))).await?;
        let revision = answer.header().map(|h| h.revision()).unwrap_or_default();
        Ok((revision, answer.take_kvs()))
    }

    /// One transaction: every compare, or nothing is written. Returns its revision.
    async fn commit(
        &self,
        held: &Held,
        mut compares: Vec<Compare>,
        puts: Vec<TxnOp>,
    ) -> Result<i64, CustodyError> {
        compares.push(held.still_held());
        let txn = Txn::new().when(compares).and_then(puts);
        let mut kv = self.client.kv_client();
        let answer = within("transaction", self.timeout, kv.txn(txn)).await?;
        if !answer.succeeded() {
            return Err(CustodyError::Conflict(
                "a record changed since it was read, or the custody lock's lease lapsed".into(),
            ));
        }
        answer
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| CustodyError::Conflict("etcd sent no revision".into()))
    }
}

/// The record of `found` when `host` holds it (under `token`), else why not.
fn held_by<'r>(
    found: &'r Option<Result<Record, String>>,
    host: &str,
    token: Option<i64>,
) -> Result<&'r Record, String> {
    let r = match found {
        None => return Err("no custody record".into()),
        Some(Err(reason)) => return Err(format!("record is not vtool's: {reason}")),
        Some(Ok(r)) => r,
    };
    match (&r.holder, token) {
        (None, _) => Err(format!(
            "released by {} (revision {})",
            r.previous_holder.as_deref().unwrap_or("its holder"),
            r.token
        )),
        (Some(h), _) if h != host => Err(format!("held by {h} (token {}), not {host}", r.token)),
        (Some(_), Some(t)) if t != r.token => Err(format!(
            "stale token {t}: the record's token is {} (custody changed since)",
            r.token
        )),
        _ => Ok(r),
    }
}

fn pick(keys: &[CustodyKey], kvs: &[etcd_client::KeyValue]) -> Read {
    let mut read: Read = keys.iter().map(|k| (k.clone(), None)).collect();
    for kv in kvs {
        let parsed = Record::from_kv(kv);
        let key = match &parsed {
            Ok(r) => Some(r.key.clone()),
            Err((path, _)) => keys.iter().find(|k| &k.path() == path).cloned(),
        };
        if let Some(slot) = key.and_then(|k| read.get_mut(&k)) {
            *slot = Some(parsed.map_err(|(_, reason)| reason));
        }
    }
    read
}

fn put(key: &CustodyKey, stored: &Stored) -> TxnOp {
    // Strings, numbers and RFC 3339 times: serializing cannot fail.
    let value = serde_json::to_vec(stored).expect("a custody record serializes");
    // No lease, ever: a record must outlive every process and session.
    TxnOp::put(key.path(), value, None::<PutOptions>)
}

fn problem(key: &CustodyKey, reason: String) -> KeyProblem {
    KeyProblem {
        key: key.clone(),
        reason,
    }
}

fn sorted(keys: &[CustodyKey]) -> Result<Vec<CustodyKey>, CustodyError> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Err(CustodyError::Options("no keys given".into()));
    }
    Ok(keys)
}

/// A host name as records carry it: what a hostname may hold.
fn check_host(host: &str) -> Result<(), CustodyError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CustodyError::Options(format!(
            "--host {host:?}: use a host name (letters, digits, '.', '-', '_')"
        )))
    }
}

/// The evidence must be for exactly the claimed keys and prove them offline.
fn check_evidence(e: &Evidence, keys: &[CustodyKey]) -> Result<(), CustodyError> {
    if !e.passed_offline {
        return Err(CustodyError::Evidence(format!(
            "report {} did not pass its offline check",
            e.report_id
        )));
    }
    let claimed: BTreeSet<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    let proven: BTreeSet<&str> = e.pubkeys.iter().map(String::as_str).collect();
    if claimed != proven {
        let unproven: Vec<&str> = claimed.difference(&proven).copied().collect();
        let extra: Vec<&str> = proven.difference(&claimed).copied().collect();
        return Err(CustodyError::Evidence(format!(
            "report {} is for other keys: {} claimed key(s) not in it{}, {} of its key(s) not claimed{}",
            e.report_id,
            unproven.len(),
            first(&unproven),
            extra.len(),
            first(&extra),
        )));
    }
    Ok(())
}

fn first(keys: &[&str]) -> String {
    keys.first()
        .map(|k| format!(" (e.g. {k})"))
        .unwrap_or_default()
}
