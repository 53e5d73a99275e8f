use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use vtool_snapshot::copy::{copy_repository, RepoCopyOptions};
use vtool_snapshot::Repository;
use vtool_transfer::url::RepoUrl;
use vtool_transfer::CopyStats;

use crate::{output, Outcome};

/// Copy a repository to another place (an off-site server, a drive to ship), sending only
/// what the destination lacks. Needs no key: objects are copied as they are stored.
///
/// Key objects and config go first (only into a new destination; an existing one must be
/// the same repository), then packs, indexes, and snapshots last, so the destination is a
/// valid repository at every moment and an interrupted copy resumes where it stopped. Every
/// pack, index and snapshot is checked against its hash before it is sent.
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
    /// s3:// destinations: retain what restores need N days (COMPLIANCE Object Lock, as
    /// `init --object-lock-days`; the bucket must have Object Lock).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    object_lock_days: Option<u32>,
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

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let src = Repository::open(
        vtool_transfer::url::open(&a.from)
            .with_context(|| format!("cannot open source repository {}", a.from))?,
    )?;
    let snapshots = if a.snapshots.is_empty() {
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
    let opts = RepoCopyOptions {
        snapshots,
        parallel: a.parallel,
        readme_dir: match RepoUrl::parse(&a.to)? {
            RepoUrl::Local(dir) => Some(dir),
            RepoUrl::Sftp { .. } | RepoUrl::S3 { .. } => None,
        },
        object_lock_days: a.object_lock_days,
    };
    let progress = output::Bar::new("copying");
    let result = copy_repository(&src, dst.as_ref(), &opts, &progress);
    progress.finish();
    let report = match result {
        Ok(r) => r,
        // Damaged data at the source: a data problem (exit 3), not a usage error.
        Err(e) if e.is_data_problem() => {
            eprintln!("error: {e:#}");
            return Ok(Outcome::DataProblem);
        }
        Err(e) => return Err(e).with_context(|| format!("copy to {} failed", a.to)),
    };
    let phases: Vec<PhaseRow> = report
        .phases
        .iter()
        .map(|(p, s)| PhaseRow::new(p, s))
        .collect();
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
        repository_id: report.repository_id.to_hex(),
        initialized_destination: report.initialized_destination,
        readme: report.readme,
        snapshots: opts
            .snapshots
            .map(|ids| ids.iter().map(|i| i.to_hex()).collect()),
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
