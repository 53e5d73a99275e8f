//! Restore-and-boot drills (`vtool drill`): restore a snapshot into a scratch directory,
//! prove every byte against its fingerprint, run real programs on the result, and leave an
//! authenticated record of what happened in the repository.
//!
//! Boot commands run only on a restore that verified: a program that starts on a partial
//! tree proves nothing. Their results are still recorded as "did not run".

use std::path::{Path, PathBuf};
use std::time::Instant;

use vtool_snapshot::reader::OpenedSnapshot;
use vtool_snapshot::repofile::{DrillCommand, DrillRecord, DrillRestore};
use vtool_snapshot::{Progress, RestoreOptions};

use crate::boot::{run_boot, why_failed, BootCommand};
use crate::records::{save_record, DRILL_KIND};

/// When to leave the restored directory behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepDir {
    #[default]
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// Restore here (empty or absent) instead of a fresh temporary directory.
    pub target: Option<PathBuf>,
    pub boots: Vec<BootCommand>,
    pub keep: KeepDir,
    /// Decrypt the restored validator keystores with their passwords; their pubkeys go into
    /// the record (`proven_keys`), which is what `vtool gate` accepts as proof of the keys.
    pub prove_keys: Option<ProveKeys>,
}

/// Which restored keystores to prove, and with which passwords.
#[derive(Debug, Clone)]
pub struct ProveKeys {
    /// The keystore directory, relative to the snapshot's root (`node/validator/keys`).
    pub dir: PathBuf,
    /// Password files: a directory or one file, relative to the snapshot's root or absolute;
    /// by default the `secrets/` directory beside the keystores.
    pub passwords: Option<vtool_validator::PasswordSource>,
    /// Bytes the key derivations may use at once.
    pub memory_budget: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("cannot prepare the drill directory {path}: {source}")]
    Target {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the drill ran but its record could not be stored: {0}")]
    Save(#[from] vtool_snapshot::Error),
}

/// A finished drill.
#[derive(Debug, Clone)]
pub struct DrillRun {
    pub record: DrillRecord,
    /// `drills/<blake3>` where the record was stored.
    pub record_name: String,
    /// The restored directory, when it was kept.
    pub kept: Option<PathBuf>,
}

/// Run a drill of `snapshot` (object `snapshot_id`) and store its record.
pub fn drill(
    opened: &OpenedSnapshot,
    opts: &DrillOptions,
    progress: &dyn Progress,
) -> Result<DrillRun, DrillError> {
    let (repo, key, snapshot_id, snapshot) =
        (&opened.repo, &opened.key, opened.id, &opened.snapshot);
    let started = Instant::now();
    let (dir, created) = prepare_dir(opts.target.as_deref())?;
    let mut record = DrillRecord {
        kind: DRILL_KIND.into(),
        version: 2,
        snapshot: snapshot_id,
        fingerprint: snapshot.fingerprint,
        time: vtool_snapshot::time::OffsetDateTime::now_utc(),
        hostname: vtool_snapshot::hostname(),
        target: dir.display().to_string(),
        duration_secs: 0.0,
        restore: DrillRestore::default(),
        verified: false,
        commands: Vec::new(),
        passed: false,
        failure: None,
        vtool_version: env!("CARGO_PKG_VERSION").into(),
        proven_keys: Vec::new(),
    };
    let mut failure = restore_and_verify(opened, &dir, progress, &mut record);
    if let (None, Some(prove)) = (&failure, &opts.prove_keys) {
        progress.stage("proving keystores", 0, 0);
        failure = prove_keys(prove, &dir, &mut record);
    }
    for (i, boot) in opts.boots.iter().enumerate() {
        let command = if failure.is_none() {
            progress.stage(
                &format!("boot {}/{}: {}", i + 1, opts.boots.len(), boot.command),
                0,
                0,
            );
            run_boot(boot, &dir)
        } else {
            DrillCommand {
                command: boot.command.clone(),
                expect: boot.expect.as_ref().map(|r| r.as_str().to_string()),
                ..Default::default()
            }
        };
        if command.ran {
            progress.finished(&format!(
                "boot {}: {} ({:.2} s)",
                i + 1,
                crate::why_failed(&command),
                command.duration_secs
            ));
        }
        if failure.is_none() && !command.passed {
            failure = Some(format!(
                "boot command {} ({}) {}",
                i + 1,
                command.command,
                why_failed(&command)
            ));
        }
        record.commands.push(command);
    }
    record.passed = failure.is_none();
    record.failure = failure;
    record.duration_secs = started.elapsed().as_secs_f64();
    let record_name = save_record(repo.backend(), &record, &key.chunk_key)?;

    let keep = match opts.keep {
        KeepDir::Always => true,
        KeepDir::OnFailure => !record.passed,
        KeepDir::Never => false,
    };
    if !keep {
        clean_up(&dir, created);
    }
    Ok(DrillRun {
        record,
        record_name,
        kept: keep.then_some(dir),
    })
}

/// The directory to restore into and whether the drill created it.
fn prepare_dir(target: Option<&Path>) -> Result<(PathBuf, bool), DrillError> {
    match target {
        None => {
            let tmp = std::env::temp_dir();
            let dir = tempfile::Builder::new()
                .prefix("vtool-drill-")
                .tempdir_in(&tmp)
                .map_err(|source| DrillError::Target { path: tmp, source })?;
            Ok((dir.keep(), true))
        }
        Some(t) => Ok((t.to_path_buf(), !t.exists())),
    }
}

/// Restore and prove the restored tree; `None` when both succeeded, else why not.
fn restore_and_verify(
    opened: &OpenedSnapshot,
    dir: &Path,
    progress: &dyn Progress,
    record: &mut DrillRecord,
) -> Option<String> {
    let restore_started = Instant::now();
    let snapshot = &opened.snapshot;
    let ropts = RestoreOptions {
        target: dir.to_path_buf(),
        ..Default::default()
    };
    // One reader for restoring and verifying: the trees are decrypted once.
    let reader = opened.reader();
    let report = match vtool_snapshot::restore_from(&reader, snapshot, &ropts, progress) {
        Ok(r) => r,
        Err(e) => return Some(format!("restore failed: {e}")),
    };
    record.restore = DrillRestore {
        files: report.files,
        bytes: report.bytes,
        duration_secs: restore_started.elapsed().as_secs_f64(),
        damaged: report
            .damaged
            .iter()
            .map(|d| {
                Path::new(&d.path)
                    .strip_prefix(dir)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| d.path.clone())
            })
            .collect(),
    };
    if let Some(first) = report.damaged.first() {
        return Some(format!(
            "restore: {} file(s) damaged, first {} ({})",
            report.damaged.len(),
            record.restore.damaged[0],
            first.message
        ));
    }
    progress.stage("verifying", 0, 0);
    match crate::compare(&reader, snapshot, dir) {
        Ok(c) if c.fingerprint_matches && c.differences.is_empty() => {
            record.verified = true;
            None
        }
        Ok(c) => Some(format!(
            "verify: fingerprint on disk {} is not the snapshot's; {} difference(s){}",
            c.fingerprint_on_disk,
            c.differences.len(),
            c.differences
                .first()
                .map(|d| format!(", first {} ({})", d.path, d.detail))
                .unwrap_or_default()
        )),
        Err(e) => Some(format!("verify failed: {e}")),
    }
}

/// Decrypt every keystore under the restored `prove.dir`; `None` when all opened.
fn prove_keys(prove: &ProveKeys, restored: &Path, record: &mut DrillRecord) -> Option<String> {
    use vtool_validator::{KeyStatus, PasswordSource};
    let dir = restored.join(&prove.dir);
    let inside = |p: &PathBuf| restored.join(p);
    let passwords = match &prove.passwords {
        Some(PasswordSource::Dir(d)) => Some(PasswordSource::Dir(inside(d))),
        Some(PasswordSource::File(f)) => Some(PasswordSource::File(inside(f))),
        Some(PasswordSource::None) | None => None,
    };
    let options = vtool_validator::CheckOptions {
        passwords: PasswordSource::or_default_for(passwords.as_ref(), &dir),
        memory_budget: prove.memory_budget,
    };
    let report = match vtool_validator::check_keystores(&dir, &options) {
        Ok(r) => r,
        Err(e) => return Some(format!("prove keys: {e}")),
    };
    record.proven_keys = report
        .keys
        .iter()
        .filter(|k| k.status == KeyStatus::Ok)
        .filter_map(|k| k.pubkey.clone())
        .collect();
    if report.keys.is_empty() {
        return Some(format!(
            "prove keys: no keystore under {}",
            prove.dir.display()
        ));
    }
    let failed: Vec<String> = report
        .keys
        .iter()
        .filter(|k| k.status != KeyStatus::Ok)
        .map(|k| {
            format!(
                "{} ({:?})",
                k.pubkey.as_deref().unwrap_or("unknown key"),
                k.status
            )
        })
        .collect();
    (!failed.is_empty()).then(|| {
        format!(
            "prove keys: {} of {} keystore(s) did not open: {}",
            failed.len(),
            report.keys.len(),
            failed.join(", ")
        )
    })
}

/// Remove what the drill restored: the directory if the drill created it, else its contents.
fn clean_up(dir: &Path, created: bool) {
    make_writable(dir);
    if created {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            let _ = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
        }
    }
}

/// Restored directories keep their modes; a read-only one would block the clean-up.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let path = e.path();
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700));
            make_writable(&path);
        }
    }
}
