use vtool_snapshot::forget::{self, ForgetOptions, KeepPolicy, KeepReason, Verdict};

use super::{ChunkKeyArgs, RepoArg};
use crate::{output, Outcome};

/// Apply retention rules per group of host and paths and put the snapshots they remove in
/// the trash (undoable with `vtool prune --undo` until a prune past the grace period
/// deletes them). The newest snapshot holding a validator key or slashing-protection
/// database is always kept, unless --allow-losing-keys.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    key: ChunkKeyArgs,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_last: u32,
    /// Keep the newest snapshot of each of the N newest hours that have one (UTC).
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_hourly: u32,
    /// … of the N newest days (UTC).
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_daily: u32,
    /// … of the N newest ISO weeks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_weekly: u32,
    /// … of the N newest months.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_monthly: u32,
    /// … of the N newest years.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_yearly: u32,
    /// Keep every snapshot within DURATION (e.g. 36h, 14d) of the group's newest.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    keep_within: Option<time::Duration>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    keep_tags: Vec<String>,
    /// Only consider snapshots of this host (repeatable).
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// Only consider snapshots with this tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only consider snapshots of this backed-up path (repeatable).
    #[arg(long = "path")]
    paths: Vec<String>,
    /// Let the rules remove the last snapshot holding a validator key or slashing DB.
    #[arg(long)]
    allow_losing_keys: bool,
    /// Say what would be kept and removed; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

/// A duration as people write it: `90m`, `36h`, `14d`, `2w`.
pub fn parse_duration(text: &str) -> Result<time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e} (try 36h, 14d or 2w)"))?;
    time::Duration::try_from(d).map_err(|e| e.to_string())
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let repo = a.repo.open()?;
    let key = a.key.require(&repo, "forget")?;
    let opts = ForgetOptions {
        policy: KeepPolicy {
            last: a.keep_last,
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
            yearly: a.keep_yearly,
            within: a.keep_within,
            tags: a.keep_tags,
        },
        hosts: a.hosts,
        tags: a.tags,
        paths: a.paths,
        allow_losing_keys: a.allow_losing_keys,
        dry_run: a.dry_run,
    };
    let report = forget::forget(&repo, &key, &opts)?;
    if a.json {
        output::print_json(&report)?;
        return Ok(Outcome::Ok);
    }
    for obj in &report.skipped {
        eprintln!(
            "warning: {obj} is damaged or does not authenticate; left alone (run `vtool check`)"
        );
    }
    for g in &report.groups {
        println!(
            "{} {}: keep {}, remove {}",
            g.hostname,
            g.paths.join(" "),
            g.kept.len(),
            g.removed.len()
        );
        let line = |what: &str, v: &Verdict| {
            let reasons: Vec<String> = v.reasons.iter().map(reason).collect();
            println!(
                "  {what:<6}  {}  {}  {}",
                v.id.short(),
                output::datetime(&v.time),
                reasons.join(", ")
            );
        };
        g.kept.iter().for_each(|v| line("keep", v));
        g.removed.iter().for_each(|v| line("remove", v));
    }
    if report.guarded > 0 {
        println!(
            "kept {} snapshot(s) that are the newest to hold a validator key or slashing DB (--allow-losing-keys to let them go)",
            report.guarded
        );
    }
    if report.holdings_lost > 0 {
        println!(
            "warning: {} validator key(s) or slashing DB(s) are in no remaining snapshot",
            report.holdings_lost
        );
    }
    match (report.dry_run, report.trash) {
        (true, _) => println!("dry run: {} snapshot(s) would go to the trash", report.removed()),
        (false, Some(t)) => println!(
            "{} snapshot(s) in the trash ({}); `vtool prune` deletes them after the grace period, `vtool prune --undo` brings them back",
            report.removed(),
            t.short()
        ),
        (false, None) => println!("nothing to forget"),
    }
    Ok(Outcome::Ok)
}

fn reason(r: &KeepReason) -> String {
    match r {
        KeepReason::Tag(t) => format!("tag {t}"),
        KeepReason::HoldsKey => "holds a key".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}
