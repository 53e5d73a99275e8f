//! Where a migration's keystores and passwords come from: a directory on this host, or the
//! gate's snapshot, restored batch by batch through the restore guard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vtool_snapshot::reader::OpenedSnapshot;
use vtool_validator::PasswordSource;

use super::{MigrateError, MigrateOptions};

/// Where the keystores (any client's layout) and their passwords come from.
pub enum KeystoreSource<'a> {
    /// A directory on this host.
    Dir {
        dir: PathBuf,
        passwords: PasswordSource,
    },
    /// The gate's snapshot: each batch's keystores are restored through the restore guard
    /// (its gate report just passed) into a private scratch directory, imported, removed.
    Snapshot {
        opened: &'a OpenedSnapshot,
        /// The keystore directory, relative to the snapshot's root.
        dir: PathBuf,
        /// Password files, relative to the snapshot's root (default: `secrets/` beside the
        /// keystores).
        passwords: Option<PasswordSource>,
    },
}

/// One keystore to import: its file's text and its password.
pub(super) struct Importable {
    pub text: String,
    pub password: String,
}

/// Every planned key has a keystore in the snapshot.
pub(super) fn snapshot_has_keystores(
    opts: &MigrateOptions,
    opened: &OpenedSnapshot,
    dir: &Path,
) -> Result<(), MigrateError> {
    let include = vec![format!("{}/**", dir.display())];
    let found = crate::snapshot_keystores(&opened.reader(), &opened.snapshot, &include)?;
    let held: std::collections::BTreeSet<&String> = found.iter().flat_map(|k| &k.pubkeys).collect();
    let missing: Vec<&String> = opts
        .plan
        .batches
        .iter()
        .flatten()
        .filter(|k| !held.contains(k))
        .collect();
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(MigrateError::Setup(format!(
            "the snapshot has no keystore under {} for {} planned key(s), first {first}; nothing was stopped",
            dir.display(),
            missing.len()
        ))),
    }
}

/// The batch's keystores and passwords, restored from the snapshot through the restore
/// guard into a private scratch directory that is gone when this returns.
pub(super) fn restore_batch(
    opened: &OpenedSnapshot,
    dir: &Path,
    passwords: Option<&PasswordSource>,
    keys: &[String],
) -> Result<BTreeMap<String, Importable>, String> {
    use crate::gate::guard::{restore_guard, GuardDecision};
    let allowed = restore_guard(
        &opened.repo,
        &opened.key.chunk_key,
        keys,
        Duration::from_secs(3600),
    )
    .map_err(|e| e.to_string())?;
    if let GuardDecision::Refused { missing } = allowed {
        return Err(format!(
            "the restore guard found no passing gate report for {} key(s)",
            missing.len()
        ));
    }
    let scratch = tempfile::Builder::new()
        .prefix("vtool-migrate-")
        .tempdir()
        .map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let inside = |p: &PathBuf| scratch.path().join(p);
    let passwords = match passwords {
        Some(PasswordSource::Dir(d)) => Some(PasswordSource::Dir(inside(d))),
        Some(PasswordSource::File(f)) => Some(PasswordSource::File(inside(f))),
        Some(PasswordSource::None) | None => None,
    };
    // Only this batch's keystores leave the repository, and only into the scratch directory.
    let found = crate::snapshot_keystores(
        &opened.reader(),
        &opened.snapshot,
        &[format!("{}/**", dir.display())],
    )
    .map_err(|e| e.to_string())?;
    let mut include: Vec<String> = found
        .into_iter()
        .filter(|k| k.pubkeys.iter().any(|p| keys.contains(p)))
        .map(|k| k.path)
        .collect();
    match &passwords {
        Some(PasswordSource::Dir(d)) | Some(PasswordSource::File(d)) => {
            if let Ok(rel) = d.strip_prefix(scratch.path()) {
                include.push(rel.display().to_string());
                include.push(format!("{}/**", rel.display()));
            }
        }
        // The default: `secrets/` beside the keystores.
        _ => include.push(format!("{}/secrets/**", dir.display())),
    }
    let ropts = vtool_snapshot::RestoreOptions {
        target: scratch.path().to_path_buf(),
        include,
        ..Default::default()
    };
    let report = vtool_snapshot::restore_from(
        &opened.reader(),
        &opened.snapshot,
        &ropts,
        &vtool_snapshot::NoProgress,
    )
    .map_err(|e| format!("restoring the keystores: {e}"))?;
    if !report.damaged.is_empty() {
        return Err(format!("{} restored file(s) damaged", report.damaged.len()));
    }
    let ks_dir = scratch.path().join(dir);
    let source = PasswordSource::or_default_for(passwords.as_ref(), &ks_dir);
    load_keystores(&ks_dir, &source, keys).map_err(|e| e.to_string())
}

/// The keystores (exact file text) and passwords of `wanted` under `dir`.
pub(super) fn load_keystores(
    dir: &Path,
    passwords: &PasswordSource,
    wanted: &[String],
) -> Result<BTreeMap<String, Importable>, MigrateError> {
    let setup = |m: String| MigrateError::Setup(m);
    let found = vtool_validator::find_keystores(dir).map_err(|e| setup(e.to_string()))?;
    let mut out = BTreeMap::new();
    for f in found {
        let text = std::fs::read_to_string(&f.path)
            .map_err(|e| setup(format!("{}: {e}", f.path.display())))?;
        let Ok(ks) = vtool_validator::Keystore::from_json_str(&text) else {
            continue;
        };
        let Some(pubkey) = ks.pubkey.clone() else {
            continue;
        };
        let password = match passwords.lookup(Some(&pubkey), &f.path) {
            vtool_validator::PasswordLookup::Found(p) => p.to_string(),
            _ => continue,
        };
        out.insert(pubkey, Importable { text, password });
    }
    out.retain(|k, _| wanted.contains(k));
    let missing: Vec<&String> = wanted.iter().filter(|k| !out.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Err(setup(format!(
            "no keystore with a password under {} for {} key(s), first {}; nothing was stopped",
            dir.display(),
            missing.len(),
            missing[0]
        )));
    }
    Ok(out)
}
