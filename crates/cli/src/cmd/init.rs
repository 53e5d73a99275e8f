use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::Serialize;
use vtool_snapshot::{keys, InitOptions, Repository};
use vtool_transfer::LockSupport;

use super::RepoArg;
use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    /// Write a new restore identity here (0600). Keep it offline.
    #[arg(long)]
    identity_out: Option<PathBuf>,
    /// Write the backup key here (0600); backup hosts need only this file.
    #[arg(long)]
    backup_key_out: PathBuf,
    /// Also encrypt to this age public key (e.g. a cold identity kept elsewhere).
    #[arg(long = "recipient")]
    recipients: Vec<String>,
    /// s3:// only: keep every object restores need from deletion for N days (COMPLIANCE
    /// Object Lock; the bucket must have Object Lock enabled). Each prune extends it for
    /// what remaining snapshots need.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    object_lock_days: Option<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct InitReport {
    repository: String,
    repository_id: String,
    recipients: Vec<String>,
    identity: Option<PathBuf>,
    backup_key: PathBuf,
    /// Object stores: whether conditional puts are honoured (see `doc/FORMAT.md`, config).
    #[serde(skip_serializing_if = "Option::is_none")]
    conditional_put: Option<bool>,
    /// Object stores: whether the bucket has Object Lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    object_lock: Option<bool>,
    /// Days every object restores need is retained.
    #[serde(skip_serializing_if = "Option::is_none")]
    object_lock_days: Option<u32>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    if a.identity_out.is_none() && a.recipients.is_empty() {
        bail!("give --identity-out FILE (a new restore identity) or at least one --recipient AGE_PUBKEY");
    }
    for out in a.identity_out.iter().chain([&a.backup_key_out]) {
        if out.exists() {
            bail!(
                "{} already exists; refusing to overwrite a key file",
                out.display()
            );
        }
    }
    let mut recipients = keys::parse_recipients(&a.recipients)?;
    let identity = a
        .identity_out
        .as_ref()
        .map(|_| vtool_snapshot::age::x25519::Identity::generate());
    if let Some(id) = &identity {
        recipients.insert(0, id.to_public());
    }
    if let Some(dir) = a
        .backup_key_out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        if !dir.is_dir() {
            bail!("{} does not exist; create it first", dir.display());
        }
    }
    // The identity first: a repository whose identity could not be written would be one
    // nobody can restore from.
    if let (Some(id), Some(path)) = (&identity, &a.identity_out) {
        keys::save_identity(id, path)?;
    }
    let new = vtool_transfer::url::create(&a.repo.repo)
        .with_context(|| format!("cannot create repository at {}", a.repo.repo))
        .and_then(|backend| {
            let opts = InitOptions {
                object_lock_days: a.object_lock_days,
            };
            Ok(Repository::init_with(backend, recipients, &opts)?)
        });
    let new = match new {
        Ok(new) => new,
        Err(e) => {
            // It encrypts nothing yet; leave no file that blocks the re-run.
            if let Some(path) = &a.identity_out {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    new.backup_key.save(&a.backup_key_out)?;
    let report = InitReport {
        repository: a.repo.repo.clone(),
        repository_id: new.repo.config().id.to_hex(),
        recipients: new.repo.config().recipients.clone(),
        identity: a.identity_out.clone(),
        backup_key: a.backup_key_out.clone(),
        conditional_put: new.repo.config().conditional_put,
        object_lock: new.object_lock.as_ref().map(|l| *l == LockSupport::Enabled),
        object_lock_days: new.repo.backend().retention_days(),
    };
    if a.json {
        output::print_json(&report)?;
    } else {
        println!(
            "created repository {} (id {})",
            report.repository,
            new.repo.config().id.short()
        );
        if let Some(p) = &report.identity {
            println!(
                "restore identity: {}  <- move it offline; it decrypts every backup",
                p.display()
            );
        }
        match new.repo.config().conditional_put {
            Some(true) => println!("conditional puts: honoured by the store"),
            Some(false) => println!(
                "conditional puts: IGNORED by the store (Garage does); every put checks with a HEAD first, \
                 and two concurrent inits of this prefix could both succeed"
            ),
            None => {}
        }
        match (&new.object_lock, report.object_lock_days) {
            (Some(_), Some(days)) => println!(
                "object lock:      every object restores need is retained {days} days (COMPLIANCE); run prune at least every {} days so that it never lapses",
                (days / 2).max(1)
            ),
            (Some(LockSupport::Enabled), None) => println!(
                "object lock:      the bucket has it, but this repository retains nothing (give --object-lock-days N at init)"
            ),
            (Some(LockSupport::Absent(why)), None) => println!(
                "object lock:      NOT available ({why}): the store cannot refuse deletes, so a stolen backup host can delete backups"
            ),
            (None, _) => {}
        }
        println!(
            "backup key:       {}  <- give this to backup hosts",
            report.backup_key.display()
        );
        println!(
            "next: vtool backup --repo {} --backup-key {} PATH",
            report.repository,
            report.backup_key.display()
        );
    }
    Ok(Outcome::Ok)
}
