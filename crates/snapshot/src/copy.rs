//! Copying a repository to another place (an off-site server, a drive to ship), sending only
//! what the destination lacks. Needs no key: objects are copied as they are stored.
//!
//! Order: key objects and config (only into a new destination; an existing one must be the
//! same repository), then packs, indexes, snapshots, drill records and gate reports last, so the
//! destination is a valid repository at every moment and an interrupted copy resumes where
//! it stopped. Every content-addressed object is checked against its hash before it is sent.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use vtool_transfer::{
    copy_objects, Backend, BackendError, CopyError, CopyOptions, CopyPhase, CopyStats, Hooked,
    Progress,
};

use crate::repository::read_config;
use crate::{Error, FileType, Id, Repository};

/// What to copy and how.
#[derive(Debug, Clone, Default)]
pub struct RepoCopyOptions {
    /// Copy only these snapshot objects (all when `None`). Packs and indexes are copied
    /// whole regardless: without the key nobody can tell which packs a snapshot uses.
    pub snapshots: Option<Vec<Id>>,
    /// Objects transferred at the same time.
    pub parallel: usize,
    /// A local destination directory to leave a README.txt in for whoever finds the drive.
    pub readme_dir: Option<PathBuf>,
    /// Set up a new destination to retain what restores need this many days (S3 Object
    /// Lock, as `init --object-lock-days`); one that already retains keeps its own days.
    pub object_lock_days: Option<u32>,
}

/// The outcome of a copy.
#[derive(Debug, Clone)]
pub struct RepoCopyReport {
    pub repository_id: Id,
    /// The destination had no config and was set up by this copy.
    pub initialized_destination: bool,
    /// README.txt written by this copy.
    pub readme: Option<PathBuf>,
    /// Per phase (`keys`, `config`, `packs`, ...), in the order run.
    pub phases: Vec<(String, CopyStats)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoCopyError {
    #[error("the destination holds another repository (id {found}), not a copy of this one (id {expected}); refusing to mix them. Copy into an empty directory or the copy of this repository")]
    OtherRepository { found: String, expected: String },
    #[error("the destination received another repository's config meanwhile")]
    ConfigRace,
    #[error("the destination's config: {0}")]
    DestinationConfig(Error),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error("cannot set up Object Lock at the destination: {0}")]
    ObjectLock(BackendError),
    #[error("cannot copy the config: {0}")]
    Config(BackendError),
    #[error("cannot write {path}: {error}")]
    Readme {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl RepoCopyError {
    /// True when the source is damaged (exit status 3), not the copy's setup.
    pub fn is_data_problem(&self) -> bool {
        matches!(self, RepoCopyError::Copy(CopyError::CorruptSource { .. }))
    }
}

/// Copy `src` into `dst`, which is empty or a copy of the same repository.
pub fn copy_repository(
    src: &Repository,
    dst: &dyn Backend,
    opts: &RepoCopyOptions,
    progress: &dyn Progress,
) -> Result<RepoCopyReport, RepoCopyError> {
    let src_id = src.config().id;
    let same_repository = |dst: &dyn Backend| -> Result<Option<()>, RepoCopyError> {
        match read_config(dst).map_err(RepoCopyError::DestinationConfig)? {
            None => Ok(None),
            Some(c) if c.id == src_id => Ok(Some(())),
            Some(c) => Err(RepoCopyError::OtherRepository {
                found: c.id.short(),
                expected: src_id.short(),
            }),
        }
    };
    let initialized_destination = same_repository(dst)?.is_none();
    let copy_opts = CopyOptions {
        parallel: opts.parallel.max(1),
    };
    let mut phases = Vec::new();
    if let Some(days) = opts.object_lock_days {
        if dst.retention_days().is_none() {
            // First, so that keys and config are retained too (an interrupted copy left
            // neither: a re-run comes here again).
            dst.enable_retention(days)
                .map_err(RepoCopyError::ObjectLock)?;
        }
    }
    if initialized_destination {
        // Key objects before the config, as `init` writes them: a config without its key
        // object would be an unusable repository.
        let keys = copy_objects(
            src.backend(),
            dst,
            &[CopyPhase::content_addressed("keys")],
            &copy_opts,
            progress,
        )?;
        phases.extend(keys.phases);
        let data = src.backend().get("config").map_err(RepoCopyError::Config)?;
        let size = data.len() as u64;
        let row = match dst.put("config", &data) {
            Ok(()) => CopyStats {
                copied_objects: 1,
                copied_bytes: size,
                ..Default::default()
            },
            // Another copy got there first: it must be the same repository.
            Err(BackendError::AlreadyExists(_)) => match same_repository(dst)? {
                Some(()) => CopyStats {
                    skipped_objects: 1,
                    skipped_bytes: size,
                    ..Default::default()
                },
                None => return Err(RepoCopyError::ConfigRace),
            },
            Err(e) => return Err(RepoCopyError::Config(e)),
        };
        phases.push(("config".into(), row));
    }
    let readme = match &opts.readme_dir {
        Some(dir) => write_readme(dir, &src_id.to_hex())?,
        None => None,
    };
    let data_phases = [
        CopyPhase::content_addressed("packs"),
        CopyPhase::content_addressed("index"),
        // A snapshot's refs object before the snapshot that names it.
        CopyPhase::content_addressed("refs"),
        CopyPhase::content_addressed("snapshots"),
        // Drill records and gate reports name snapshots; they travel after them. Check
        // records stay: each vouches only for the location it checked.
        CopyPhase::content_addressed("drills"),
        CopyPhase::content_addressed("reports"),
    ];
    let report = match &opts.snapshots {
        None => copy_objects(src.backend(), dst, &data_phases, &copy_opts, progress)?,
        Some(ids) => {
            // The source, listing only the chosen snapshot objects.
            let names: HashSet<String> = ids.iter().map(|id| FileType::Snapshot.name(id)).collect();
            let only = Hooked::new(src.backend()).keep_listed(move |o| {
                FileType::Snapshot.id_of(&o.name).is_none() || names.contains(&o.name)
            });
            copy_objects(&only, dst, &data_phases, &copy_opts, progress)?
        }
    };
    phases.extend(report.phases);
    Ok(RepoCopyReport {
        repository_id: src_id,
        initialized_destination,
        readme,
        phases,
    })
}

/// Write `README.txt` at the root of a local destination unless it is there already. It is
/// not a repository object: the backend never lists files at the root.
fn write_readme(dir: &Path, repo_id: &str) -> Result<Option<PathBuf>, RepoCopyError> {
    let path = dir.join("README.txt");
    let failed = |error| RepoCopyError::Readme {
        path: path.clone(),
        error,
    };
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let text = format!(
        include_str!("copy_readme.txt"),
        repo_id = repo_id,
        time = crate::now_rfc3339()
    );
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(failed)?;
    Ok(Some(path))
}
