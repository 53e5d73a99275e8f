use anyhow::{bail, Context};
use vtool_snapshot::prune::{self, MaxUnused, PruneOptions};

use super::forget::parse_duration;
use super::{ChunkKeyArgs, RepoArg};
use crate::{output, Outcome};

/// Delete what no snapshot needs, with the backup key alone, while backups go on.
///
/// Each run deletes trash whose grace period is over (once every backup that started
/// before it was marked has ended), then marks what is unused now: packs no snapshot needs,
/// and partly used packs whose used blobs it first copies, still encrypted, into new packs.
/// `--undo` takes back everything still in the trash.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    key: ChunkKeyArgs,
    /// Unused space allowed to remain in partly used packs: a percentage of the used
    /// bytes (5%), a size (200MiB) or `unlimited` (only delete whole unused packs).
    #[arg(long, default_value = "5%", value_parser = parse_max_unused)]
    max_unused: MaxUnused,
    /// Copy at most this much into new packs in one run (e.g. 10GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_repack: Option<u64>,
    /// How long trash stays undoable before a prune may delete it.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    grace: time::Duration,
    /// A backup that has not ended this long after it started is given up on: it will
    /// refuse to write its snapshot, and the trash that waited for it goes on.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    writer_timeout: time::Duration,
    /// Take back everything still in the trash (forgotten snapshots and condemned packs).
    #[arg(long)]
    undo: bool,
    /// Say what would be deleted and repacked; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

fn parse_max_unused(text: &str) -> Result<MaxUnused, String> {
    if text == "unlimited" {
        return Ok(MaxUnused::Unlimited);
    }
    if let Some(p) = text.strip_suffix('%') {
        return match p.trim().parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(MaxUnused::Percent(v)),
            _ => Err("a percentage between 0% and 100%".into()),
        };
    }
    parse_size(text).map(MaxUnused::Bytes)
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{e} (try 500MiB or 2GiB)"))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let repo = a.repo.open()?;
    let key = a.key.require(&repo, "prune")?;
    if a.undo {
        let r = prune::undo(&repo, &key, a.dry_run).with_context(|| {
            "cannot take the trash back; if the storage refuses deletes (an append-only account, Object Lock), run the undo where deleting is allowed"
        })?;
        if a.json {
            output::print_json(&r)?;
        } else {
            println!(
                "{} {} trash record(s): {} snapshot(s) and {} pack(s) back in use",
                if a.dry_run {
                    "would take back"
                } else {
                    "took back"
                },
                r.trash.len(),
                r.snapshots,
                r.packs
            );
        }
        return Ok(Outcome::Ok);
    }
    let opts = PruneOptions {
        max_unused: a.max_unused,
        max_repack: a.max_repack,
        grace: a.grace,
        writer_timeout: a.writer_timeout,
        dry_run: a.dry_run,
    };
    let progress = output::Bar::new("prune");
    let report = prune::prune(&repo, &key, &opts, &progress);
    progress.finish();
    let report = report?;
    if a.json {
        output::print_json(&report)?;
    } else {
        let hb = output::human_bytes;
        for n in &report.notes {
            eprintln!("note: {n}");
        }
        let verb = if report.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        if let Some(until) = &report.retained_until {
            println!(
                "object lock: {} {} object(s) still needed retained until {until}",
                if report.dry_run { "would keep" } else { "kept" },
                report.retained
            );
        }
        for p in &report.purged {
            println!(
                "trash {}: {verb} {} snapshot(s), {} index file(s), {} pack(s) ({}){}",
                p.trash.short(),
                p.snapshots,
                p.indexes,
                p.packs,
                hb(p.bytes),
                if p.kept_packs > 0 {
                    format!("; kept {} pack(s) still needed", p.kept_packs)
                } else {
                    String::new()
                }
            );
        }
        for p in &report.pending {
            println!("trash {}: kept, {}", p.trash.short(), p.reason);
        }
        println!(
            "packs: {} ({}), used {}, unused {}",
            report.packs,
            hb(report.pack_bytes),
            hb(report.used_bytes),
            hb(report.unused_bytes)
        );
        let verb = if report.dry_run {
            "would mark"
        } else {
            "marked"
        };
        println!(
            "{verb} {} unused pack(s) ({}) and {} partly used pack(s) repacked ({} copied into {} new pack(s)); {} unused left",
            report.condemned_packs,
            hb(report.condemned_bytes),
            report.repacked_packs,
            hb(report.repacked_bytes),
            report.new_packs,
            hb(report.unused_after)
        );
        if let Some(t) = report.trash {
            println!(
                "trash {}: deleted by a prune after the grace period; `vtool prune --undo` takes it back",
                t.short()
            );
        }
    }
    if let Some(first) = report.refused.first() {
        if report.retained_until.is_some() {
            bail!(
                "the storage refused to delete {first}; nothing further was deleted. The bucket's Object Lock still retains it (a longer bucket default retention, or clocks far apart): a later prune deletes it once its retention has ended"
            );
        }
        bail!(
            "the storage refused to delete {first}; nothing further was deleted. If the account is append-only or the bucket has Object Lock, that is its protection working: run prune where deleting is allowed"
        );
    }
    Ok(Outcome::Ok)
}
