use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use serde::Serialize;
use vtool_snapshot::repofile::Config;
use vtool_snapshot::sealed::{Sealed, SealedKind};
use vtool_snapshot::Repository;
use vtool_transfer::url::RepoUrl;
use vtool_transfer::{
    copy_objects, Backend, BackendError, CopyError, CopyOptions, CopyPhase, CopyProgress,
    CopyStats, Hooked,
};

use crate::{output, Outcome};

/// Copy a repository to another place (an off-site server, a drive to ship), sending only
/// what the destination lacks. Needs no key: objects are copied as they are stored.
///
/// Order: key objects and config (only into a new destination; an existing one must be the
/// same repository), then packs, indexes, and snapshots last, so the destination is a valid
/// repository at every moment and an interrupted copy resumes where it stopped. Every pack,
/// index and snapshot is checked against its hash before it is sent.
///
/// With SNAPSHOT arguments only those snapshot objects are copied. Packs and indexes are
/// still copied whole: without the key nobody can tell which packs a snapshot uses (its
/// trees are encrypted).
#[derive(clap::Args)]
pub struct Args {
    /// Source repository: a path or sftp://user@host[:port]/path.
    #[arg(long)]
    from: String,
    /// Destination: a path or sftp://…; created if it does not exist.
    #[arg(long)]
    to: String,
    /// Copy only these snapshots (id prefixes or `latest`); packs and indexes are copied
    /// whole regardless, since which packs a snapshot uses cannot be known without the key.
    snapshots: Vec<String>,
    /// Objects transferred at the same time.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Default)]
struct PhaseRow {
    phase: String,
    copied_objects: u64,
    copied_bytes: u64,
    skipped_objects: u64,
    skipped_bytes: u64,
}

impl PhaseRow {
    fn new(phase: &str, s: &CopyStats) -> Self {
        PhaseRow {
            phase: phase.to_string(),
            copied_objects: s.copied_objects,
            copied_bytes: s.copied_bytes,
            skipped_objects: s.skipped_objects,
            skipped_bytes: s.skipped_bytes,
        }
    }

    fn add(&mut self, o: &PhaseRow) {
        self.copied_objects += o.copied_objects;
        self.copied_bytes += o.copied_bytes;
        self.skipped_objects += o.skipped_objects;
        self.skipped_bytes += o.skipped_bytes;
    }
}

#[derive(Serialize)]
struct Summary {
    from: String,
    to: String,
    repository_id: String,
    /// The destination had no config and was set up by this copy.
    initialized_destination: bool,
    /// README.txt written by this copy.
    readme: Option<PathBuf>,
    /// Snapshots selected on the command line (all when absent).
    snapshots: Option<Vec<String>>,
    phases: Vec<PhaseRow>,
    total: PhaseRow,
}

/// Progress on stderr: one bar per phase (bytes, objects, rate).
struct Bar {
    bar: Option<ProgressBar>,
    phase: Mutex<String>,
}

impl Bar {
    fn update(&self, p: &CopyProgress) {
        let Some(bar) = &self.bar else { return };
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if *phase != p.phase {
            phase.clone_from(&p.phase);
            bar.set_length(p.phase_bytes_to_copy);
            bar.reset();
        }
        bar.set_position(p.phase_done.copied_bytes);
        bar.set_message(format!(
            "{} {}/{} objects",
            p.phase, p.phase_done.copied_objects, p.phase_objects_to_copy
        ));
    }
}

fn read_config(backend: &dyn Backend, what: &str) -> anyhow::Result<Option<(Vec<u8>, Config)>> {
    let data = match backend.get("config") {
        Ok(d) => d,
        Err(BackendError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read the config of {what}")),
    };
    let config = Sealed::<Config>::parse(SealedKind::Config, &data)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{what} holds a config object that is not a vtool config"))?;
    Ok(Some((data, config.into_value())))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let src = Repository::open(
        vtool_transfer::url::open(&a.from)
            .with_context(|| format!("cannot open source repository {}", a.from))?,
    )?;
    let src_id = src.config().id;
    let selected = if a.snapshots.is_empty() {
        None
    } else {
        let mut ids = Vec::new();
        for spec in &a.snapshots {
            let (id, _) = super::find_snapshot(&src, spec, None)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Some(ids)
    };
    let dst = vtool_transfer::url::create(&a.to)
        .with_context(|| format!("cannot open or create destination {}", a.to))?;
    let dst_config = read_config(dst.as_ref(), &a.to)?;
    if let Some((_, c)) = &dst_config {
        if c.id != src_id {
            bail!(
                "{} holds another repository (id {}), not a copy of {} (id {}); refusing to mix them. \
                 Copy into an empty directory or the copy of this repository",
                a.to,
                c.id.short(),
                a.from,
                src_id.short()
            );
        }
    }
    let opts = CopyOptions {
        parallel: a.parallel.max(1),
    };
    let bar = Bar {
        bar: output::bytes_bar("copying"),
        phase: Mutex::new(String::new()),
    };
    let progress = |p: &CopyProgress| bar.update(p);
    let result = copy_all(
        &a,
        &src,
        dst.as_ref(),
        &dst_config,
        &selected,
        &opts,
        &progress,
    );
    if let Some(b) = &bar.bar {
        b.finish_and_clear();
    }
    let (phases, readme) = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(CopyError::CorruptSource { .. }) = e.downcast_ref::<CopyError>() {
                // Damaged data at the source: a data problem (exit 3), not a usage error.
                eprintln!("error: {e:#}");
                return Ok(Outcome::DataProblem);
            }
            return Err(e);
        }
    };
    let mut total = PhaseRow {
        phase: "total".into(),
        ..Default::default()
    };
    for p in &phases {
        total.add(p);
    }
    let summary = Summary {
        from: a.from.clone(),
        to: a.to.clone(),
        repository_id: src_id.to_hex(),
        initialized_destination: dst_config.is_none(),
        readme,
        snapshots: selected.map(|ids| ids.iter().map(|i| i.to_hex()).collect()),
        phases,
        total,
    };
    if a.json {
        output::print_json(&summary)?;
    } else {
        print_human(&summary);
    }
    Ok(Outcome::Ok)
}

#[allow(clippy::type_complexity)]
fn copy_all(
    a: &Args,
    src: &Repository,
    dst: &dyn Backend,
    dst_config: &Option<(Vec<u8>, Config)>,
    selected: &Option<Vec<vtool_snapshot::Id>>,
    opts: &CopyOptions,
    progress: &(dyn Fn(&CopyProgress) + Sync),
) -> anyhow::Result<(Vec<PhaseRow>, Option<PathBuf>)> {
    let mut rows = Vec::new();
    if dst_config.is_none() {
        // Key objects before the config, as `init` writes them: a config without its key
        // object would be an unusable repository.
        let keys = copy_objects(
            src.backend(),
            dst,
            &[CopyPhase::content_addressed("keys")],
            opts,
            progress,
        )?;
        let data = src
            .backend()
            .get("config")
            .context("cannot read the source config")?;
        let config_row = match dst.put("config", &data) {
            Ok(()) => PhaseRow {
                phase: "config".into(),
                copied_objects: 1,
                copied_bytes: data.len() as u64,
                ..Default::default()
            },
            Err(BackendError::AlreadyExists(_)) => {
                // Another copy got there first: it must be the same repository.
                match read_config(dst, &a.to)? {
                    Some((_, c)) if c.id == src.config().id => PhaseRow {
                        phase: "config".into(),
                        skipped_objects: 1,
                        skipped_bytes: data.len() as u64,
                        ..Default::default()
                    },
                    _ => bail!("{} received another repository's config meanwhile", a.to),
                }
            }
            Err(e) => return Err(e).context("cannot write the config at the destination"),
        };
        rows.extend(keys.phases.iter().map(|(p, s)| PhaseRow::new(p, s)));
        rows.push(config_row);
    }
    let readme = match RepoUrl::parse(&a.to)? {
        RepoUrl::Local(dir) => write_readme(&dir, &src.config().id.to_hex())?,
        RepoUrl::Sftp { .. } => None,
    };
    let phases = [
        CopyPhase::content_addressed("packs"),
        CopyPhase::content_addressed("index"),
        CopyPhase::content_addressed("snapshots"),
        // Drill records name snapshots; they travel after them.
        CopyPhase::content_addressed("drills"),
    ];
    let report = match selected {
        None => copy_objects(src.backend(), dst, &phases, opts, progress)?,
        Some(ids) => {
            // The source, listing only the chosen snapshot objects.
            let names: HashSet<String> = ids.iter().map(|id| format!("snapshots/{id}")).collect();
            let only = Hooked::new(src.backend())
                .keep_listed(move |o| !o.name.starts_with("snapshots/") || names.contains(&o.name));
            copy_objects(&only, dst, &phases, opts, progress)?
        }
    };
    rows.extend(report.phases.iter().map(|(p, s)| PhaseRow::new(p, s)));
    Ok((rows, readme))
}

/// Write `README.txt` at the root of a local destination unless it is there already. It is
/// not a repository object: the backend never lists files at the root.
fn write_readme(dir: &Path, repo_id: &str) -> anyhow::Result<Option<PathBuf>> {
    let path = dir.join("README.txt");
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
    };
    let text = format!(
        "This directory is a vtool repository: encrypted, deduplicated backups of validator nodes.

Repository id: {repo_id}
First copied here: {time}

Everything in it is encrypted with age (https://age-encryption.org). Nothing here can be
read without the repository's restore identity, which is kept offline and is not part of
this copy. Do not change, add or remove files: every object is named by its hash and is
never modified; `vtool copy` only adds what is missing.

Verify the copy on arrival (needs no key):

    vtool check --repo DIR --packs

where DIR is this directory. It re-hashes every pack and checks that every object the
indexes list is present and complete; exit status 0 means intact, 3 means damaged.

Compare the fingerprints:

    vtool snapshots --repo DIR            (the first 16 digits)
    vtool snapshots --repo DIR --json     (full fingerprints)

Each snapshot's fingerprint is the Merkle root of its content. Compare them with the
fingerprints recorded at the source (`vtool snapshots --repo SOURCE`, or the reports of the
backups), obtained over another channel than this copy: equal fingerprints mean the same
data, bit for bit. With the restore identity,
`vtool check --repo DIR --identity FILE --read-data` also authenticates every snapshot and
decrypts and checks every blob.

This file is not part of the repository; vtool ignores it.
",
        time = vtool_snapshot::now_rfc3339()
    );
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(path))
}

fn print_human(s: &Summary) {
    println!(
        "{:<10} {:>8} {:>12} {:>8} {:>12}",
        "PHASE", "COPIED", "BYTES", "SKIPPED", "BYTES"
    );
    for p in s.phases.iter().chain([&s.total]) {
        println!(
            "{:<10} {:>8} {:>12} {:>8} {:>12}",
            p.phase,
            p.copied_objects,
            output::human_bytes(p.copied_bytes),
            p.skipped_objects,
            output::human_bytes(p.skipped_bytes)
        );
    }
    if let Some(ids) = &s.snapshots {
        println!(
            "snapshots copied: {}",
            ids.iter().map(|i| &i[..8]).collect::<Vec<_>>().join(" ")
        );
    }
    if s.initialized_destination {
        println!(
            "{} is a new copy of repository {}",
            s.to,
            &s.repository_id[..8]
        );
    }
    if let Some(r) = &s.readme {
        println!("wrote {}", r.display());
    }
    println!(
        "verify it on arrival with `vtool check --repo {} --packs` and compare fingerprints with `vtool snapshots`",
        s.to
    );
}
