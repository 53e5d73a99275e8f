use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use vtool_validator::custody::{
    Checked, CustodyError, CustodyKey, EtcdOptions, Registry, TlsFiles,
};
use vtool_verify::gate::evidence::custody_evidence;

use super::{ChunkKeyArgs, PubkeyArgs, RepoArg};
use crate::{output, Outcome};

/// The custody registry in etcd: which host may sign with each validator key. See
/// doc/CUSTODY.md.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Show the custody records (all, or those of --pubkey).
    Status(StatusArgs),
    /// Claim keys for a host in one transaction; prints the fencing token. Keys another host
    /// holds move only with --evidence: a passing gate report for exactly these keys.
    Claim(ClaimArgs),
    /// Give up keys this host holds under TOKEN (the records stay, without a holder).
    Release(ReleaseArgs),
    /// Exit 0 only if etcd confirms now that this host holds every key (ExecStartPre=).
    Check(CheckArgs),
}

/// Where etcd is and how to talk to it.
#[derive(clap::Args)]
pub struct EtcdArgs {
    /// An etcd member, https://host:port; repeat for every member of the cluster.
    #[arg(long = "etcd", value_name = "URL", required = true)]
    pub endpoints: Vec<String>,
    /// The CA that signed the members' certificates.
    #[arg(long, value_name = "FILE", requires_all = ["etcd_cert", "etcd_key"])]
    etcd_cacert: Option<PathBuf>,
    /// This host's client certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["etcd_cacert", "etcd_key"])]
    etcd_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["etcd_cacert", "etcd_cert"])]
    etcd_key: Option<PathBuf>,
    /// Allow http:// endpoints: anyone on the path could then move custody.
    #[arg(long)]
    insecure_plaintext: bool,
    /// The time limit of connecting and of each request.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    etcd_timeout: Duration,
    /// How long to wait for another claim or release to finish.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    lock_wait: Duration,
}

impl EtcdArgs {
    pub fn connect(&self) -> Result<Registry, CustodyError> {
        let tls = match (&self.etcd_cacert, &self.etcd_cert, &self.etcd_key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Registry::connect(&EtcdOptions {
            endpoints: self.endpoints.clone(),
            tls,
            insecure_plaintext: self.insecure_plaintext,
            connect_timeout: self.etcd_timeout,
            request_timeout: self.etcd_timeout,
            lock_wait: self.lock_wait,
            ..EtcdOptions::default()
        })
    }
}

/// The keys custody is about: Ethereum validator keys, Solana identities, or both.
#[derive(clap::Args)]
pub struct CustodyKeyArgs {
    /// A directory of EIP-2335 keystores (any client's layout); their pubkeys.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["pubkey", "sol_identity"])]
    keys: Option<PathBuf>,
    /// A validator public key (0x and 96 hex digits); repeatable.
    #[arg(long, value_name = "HEX", num_args = 1.., conflicts_with = "keys")]
    pubkey: Vec<String>,
    /// A Solana (Agave) validator identity, base58; repeatable.
    #[arg(long, value_name = "BASE58")]
    sol_identity: Vec<String>,
}

impl CustodyKeyArgs {
    /// The Ethereum keys among them, `0x` lowercase.
    fn eth(&self) -> anyhow::Result<Vec<String>> {
        PubkeyArgs {
            keys: self.keys.clone(),
            pubkey: self.pubkey.clone(),
        }
        .pubkeys()
    }

    fn custody_keys(&self) -> anyhow::Result<Vec<CustodyKey>> {
        let mut keys = custody_keys(&self.eth()?)?;
        for id in &self.sol_identity {
            keys.push(CustodyKey::sol(id)?);
        }
        Ok(keys)
    }
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// Only this key (0x…); repeatable.
    #[arg(long, value_name = "HEX")]
    pubkey: Vec<String>,
    /// Only this Solana identity; repeatable.
    #[arg(long, value_name = "BASE58")]
    sol_identity: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ClaimArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The host that will sign.
    #[arg(long)]
    host: String,
    #[command(flatten)]
    keys: CustodyKeyArgs,
    /// The file `vtool gate --report FILE` wrote: needed to move keys another host holds.
    #[arg(long, value_name = "REPORT", requires = "repo")]
    evidence: Option<PathBuf>,
    /// The repository the gate ran on: its key authenticates the report.
    #[arg(long)]
    repo: Option<String>,
    #[command(flatten)]
    key: ChunkKeyArgs,
    /// How old the report may be.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    evidence_max_age: Duration,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The holder.
    #[arg(long)]
    host: String,
    #[command(flatten)]
    keys: CustodyKeyArgs,
    /// The token the claim printed.
    #[arg(long)]
    token: i64,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// This host.
    #[arg(long)]
    host: String,
    #[command(flatten)]
    keys: CustodyKeyArgs,
    /// Also require this token (custody unchanged since that claim).
    #[arg(long)]
    token: Option<i64>,
    #[arg(long)]
    json: bool,
}

pub fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Status(a) => status(a),
        Command::Claim(a) => claim(a),
        Command::Release(a) => release(a),
        Command::Check(a) => check(a),
    }
}

pub fn custody_keys(pubkeys: &[String]) -> anyhow::Result<Vec<CustodyKey>> {
    Ok(pubkeys
        .iter()
        .map(|p| CustodyKey::eth(p))
        .collect::<Result<_, _>>()?)
}

fn status(a: StatusArgs) -> anyhow::Result<Outcome> {
    let mut keys = custody_keys(&a.pubkey)?;
    for id in &a.sol_identity {
        keys.push(CustodyKey::sol(id)?);
    }
    let registry = a.etcd.connect()?;
    let status = registry
        .status((!keys.is_empty()).then_some(keys.as_slice()))
        .context("cannot read the custody records")?;
    if a.json {
        output::print_json(&status)?;
    } else {
        println!(
            "{:<104}  {:<20}  {:>8}  {:<20}  REPORT",
            "KEY", "HOLDER", "TOKEN", "CLAIMED"
        );
        for r in &status.records {
            let holder = match (&r.holder, &r.previous_holder) {
                (Some(h), _) => h.clone(),
                (None, Some(p)) => format!("(released by {p})"),
                (None, None) => "(released)".into(),
            };
            println!(
                "{:<104}  {:<20}  {:>8}  {:<20}  {}",
                r.key.to_string(),
                holder,
                r.token,
                output::datetime(&r.claimed_at),
                r.report_id.as_deref().map(short).unwrap_or("-")
            );
        }
        for k in &status.missing {
            println!("{k}: no custody record");
        }
        for d in &status.damaged {
            println!("DAMAGED {}: {}", d.path, d.reason);
        }
        if status.records.is_empty() && status.missing.is_empty() {
            println!("no custody records yet: `vtool custody claim` writes them");
        }
    }
    Ok(if status.damaged.is_empty() {
        Outcome::Ok
    } else {
        Outcome::DataProblem
    })
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn claim(a: ClaimArgs) -> anyhow::Result<Outcome> {
    let pubkeys = a.keys.eth()?;
    let keys = a.keys.custody_keys()?;
    let evidence = match (&a.evidence, &a.repo) {
        (Some(path), Some(repo)) => {
            let repo = RepoArg { repo: repo.clone() }.open()?;
            let chunk_key = a.key.require(&repo, "custody claim --evidence")?;
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            match custody_evidence(&bytes, &chunk_key, &pubkeys, a.evidence_max_age) {
                Ok(e) => Some(e),
                Err(e) => {
                    let reason = format!("evidence {} refused: {e}", path.display());
                    return refused(a.json, &reason, &[]);
                }
            }
        }
        _ => None,
    };
    let registry = a.etcd.connect()?;
    match registry.claim(&a.host, &keys, evidence.as_ref()) {
        Ok(token) => {
            let report = evidence.as_ref().map(|e| e.report_id.clone());
            if a.json {
                output::print_json(&json!({
                    "claimed": true, "host": a.host, "token": token,
                    "keys": keys, "report": report,
                }))?;
            } else {
                println!(
                    "claimed {} key(s) for {}: token {token}{}",
                    keys.len(),
                    a.host,
                    report
                        .map(|r| format!(" (on the evidence of report {})", short(&r)))
                        .unwrap_or_default()
                );
            }
            Ok(Outcome::Ok)
        }
        Err(e) => answer_or_error(a.json, e, "claim"),
    }
}

fn release(a: ReleaseArgs) -> anyhow::Result<Outcome> {
    let keys = a.keys.custody_keys()?;
    let registry = a.etcd.connect()?;
    match registry.release(&a.host, &keys, a.token) {
        Ok(revision) => {
            if a.json {
                output::print_json(&json!({
                    "released": true, "host": a.host, "token": a.token,
                    "revision": revision, "keys": keys,
                }))?;
            } else {
                println!(
                    "released {} key(s) {} held under token {} (revision {revision}); \
                     any host may now claim them",
                    keys.len(),
                    a.host,
                    a.token
                );
            }
            Ok(Outcome::Ok)
        }
        Err(e) => answer_or_error(a.json, e, "release"),
    }
}

/// Every failure is a "no": a validator client must not start on anything less than a
/// confirmation.
fn check(a: CheckArgs) -> anyhow::Result<Outcome> {
    match confirm(&a) {
        Ok((count, c)) => {
            if a.json {
                output::print_json(&json!({
                    "confirmed": true, "host": a.host, "keys": count,
                    "token": c.token, "revision": c.revision,
                }))?;
            } else {
                println!(
                    "{} holds all {count} key(s){} (etcd revision {})",
                    a.host,
                    c.token
                        .map(|t| format!(" under token {t}"))
                        .unwrap_or_default(),
                    c.revision
                );
            }
            Ok(Outcome::Ok)
        }
        Err(e) => {
            let keys: Vec<(String, String)> = match e.downcast_ref::<CustodyError>() {
                Some(CustodyError::Refused(problems)) => problems
                    .iter()
                    .map(|p| (p.key.to_string(), p.reason.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            let reason = format!("custody not confirmed: {e:#}");
            if a.json {
                let keys: Vec<_> = keys
                    .iter()
                    .map(|(k, r)| json!({"key": k, "reason": r}))
                    .collect();
                output::print_json(&json!({
                    "confirmed": false, "host": a.host, "reason": reason, "keys": keys,
                }))?;
            } else if keys.is_empty() {
                println!("{}: {reason}", a.host);
            } else {
                let n = keys.len();
                println!("{}: custody not confirmed, {n} key(s) refused:", a.host);
                for (k, r) in &keys {
                    println!("  {k}: {r}");
                }
            }
            Ok(Outcome::No)
        }
    }
}

/// The number of keys and etcd's confirmation, or why there is none.
fn confirm(a: &CheckArgs) -> anyhow::Result<(usize, Checked)> {
    let keys = a.keys.custody_keys()?;
    let checked = a.etcd.connect()?.check(&a.host, &keys, a.token)?;
    Ok((keys.len(), checked))
}

/// A refusal is the answer "no" (exit 1); anything else is an error (exit 2).
fn answer_or_error(json: bool, e: CustodyError, what: &str) -> anyhow::Result<Outcome> {
    match e {
        CustodyError::Refused(problems) => {
            let lines: Vec<(String, String)> = problems
                .iter()
                .map(|p| (p.key.to_string(), p.reason.clone()))
                .collect();
            refused(json, &format!("{what} refused"), &lines)
        }
        CustodyError::Evidence(reason) => refused(json, &reason, &[]),
        CustodyError::LockBusy(_) => Err(anyhow::Error::new(e).context(
            "another custody claim or release is running; try again when it has finished",
        )),
        other => Err(anyhow::Error::new(other).context(format!(
            "custody {what} failed (check the etcd endpoints and certificates); \
             `vtool custody status` shows what etcd holds"
        ))),
    }
}

fn refused(json: bool, reason: &str, keys: &[(String, String)]) -> anyhow::Result<Outcome> {
    if json {
        let keys: Vec<_> = keys
            .iter()
            .map(|(k, r)| json!({"key": k, "reason": r}))
            .collect();
        output::print_json(&json!({"refused": true, "reason": reason, "keys": keys}))?;
    } else {
        println!("{reason}");
        for (k, r) in keys {
            println!("  {k}: {r}");
        }
    }
    Ok(Outcome::No)
}
