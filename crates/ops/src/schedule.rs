//! What `vtool run` does, in order, and which of it is due now and why.
//!
//! Every step is one or more ordinary `vtool` command lines, exactly what an operator would
//! type by hand; `vtool run --dry-run` prints them. A step is due when it never ran, when its
//! last run failed (it is retried at the next run), or when its interval has passed, less a
//! tenth of it, so that a daily timer's random delay never skips a night.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::Config;
use crate::duration::{human, Span};
use crate::state::State;

const DAY: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Backup,
    Copy,
    Retention,
    CheckPacks,
    CheckReadData,
    Drill,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// Its name in the state, the output and the metrics: `backup:NAME`, `copy:TO`,
    /// `retention`, `check-packs`, `check-read-data`, `drill`.
    pub key: String,
    pub kind: StepKind,
    pub due: bool,
    pub reason: String,
    /// `vtool` argument lists, run in order (retention is forget, then prune).
    pub commands: Vec<Vec<String>>,
    #[serde(skip)]
    pub every: Duration,
}

/// Every step the config asks for, in run order, each marked due or not.
///
/// With `metrics_file`, every command writes its metrics there (`--metrics-file`), a backup
/// under its step key (`--metrics-step backup:NAME`, since sources share a repository).
pub fn plan(
    config: &Config,
    state: &State,
    now: OffsetDateTime,
    metrics_file: Option<&Path>,
) -> Vec<PlannedStep> {
    let repo = &config.repository;
    let key_arg = repo.backup_key.display().to_string();
    let mut steps = Vec::new();
    let mut add = |key: String, kind, every: &Option<Span>, default: u64, commands: Vec<_>| {
        let commands = commands
            .into_iter()
            .map(|c| with_metrics(c, metrics_file, (kind == StepKind::Backup).then_some(&key)))
            .collect();
        let every = every
            .as_ref()
            .map_or(Duration::from_secs(default), |s| s.duration);
        let (due, reason) = due(state, &key, every, now);
        steps.push(PlannedStep {
            key,
            kind,
            due,
            reason,
            commands,
            every,
        });
    };

    for s in &config.sources {
        let mut a = args(&["backup", "--repo", &repo.url, "--backup-key", &key_arg]);
        if let Some(p) = &s.profile {
            a.extend(args(&["--profile", p]));
        }
        for t in &s.tags {
            a.extend(args(&["--tag", t]));
        }
        for e in &s.exclude {
            a.extend(args(&["--exclude", e]));
        }
        for (flag, on) in [
            ("--skip-rebuildable", s.skip_rebuildable),
            ("--live-precopy", s.live_precopy),
            ("--verify-keys", s.verify_keys),
        ] {
            if on {
                a.push(flag.to_string());
            }
        }
        if let Some(pre) = &s.pre {
            a.extend(args(&["--pre", pre]));
        }
        if let Some(post) = &s.post {
            a.extend(args(&["--post", post]));
        }
        a.push("--".into());
        a.extend(s.paths.iter().map(|p| p.display().to_string()));
        add(
            format!("backup:{}", s.name),
            StepKind::Backup,
            &s.every,
            DAY,
            vec![a],
        );
    }

    for c in &config.copies {
        let a = args(&["copy", "--from", &repo.url, "--to", &c.to]);
        add(
            format!("copy:{}", c.to),
            StepKind::Copy,
            &c.every,
            DAY,
            vec![a],
        );
    }

    if let Some(r) = &config.retention {
        let mut forget = args(&["forget", "--repo", &repo.url, "--backup-key", &key_arg]);
        for (flag, n) in [
            ("--keep-last", r.keep_last),
            ("--keep-hourly", r.keep_hourly),
            ("--keep-daily", r.keep_daily),
            ("--keep-weekly", r.keep_weekly),
            ("--keep-monthly", r.keep_monthly),
            ("--keep-yearly", r.keep_yearly),
        ] {
            if let Some(n) = n {
                forget.extend(args(&[flag, &n.to_string()]));
            }
        }
        if let Some(w) = &r.keep_within {
            forget.extend(args(&["--keep-within", &w.text]));
        }
        for t in &r.keep_tag {
            forget.extend(args(&["--keep-tag", t]));
        }
        let mut prune = args(&["prune", "--repo", &repo.url, "--backup-key", &key_arg]);
        if let Some(m) = &r.max_unused {
            prune.extend(args(&["--max-unused", m]));
        }
        if let Some(g) = &r.grace {
            prune.extend(args(&["--grace", &g.text]));
        }
        let commands = if r.prune {
            vec![forget, prune]
        } else {
            vec![forget]
        };
        add(
            "retention".into(),
            StepKind::Retention,
            &r.every,
            DAY,
            commands,
        );
    }

    if let Some(c) = &config.check {
        let every_secs = c.every.as_ref().map_or(DAY, Span::secs);
        if let Some(days) = c.packs_days {
            let a = args(&[
                "check",
                "--repo",
                &repo.url,
                "--packs",
                "--subset",
                &slice_percent(every_secs, days),
            ]);
            add(
                "check-packs".into(),
                StepKind::CheckPacks,
                &c.every,
                DAY,
                vec![a],
            );
        }
        if let (Some(days), Some(id)) = (c.read_data_days, &repo.identity) {
            let a = args(&[
                "check",
                "--repo",
                &repo.url,
                "--read-data",
                "--subset",
                &slice_percent(every_secs, days),
                "--identity",
                &id.display().to_string(),
            ]);
            add(
                "check-read-data".into(),
                StepKind::CheckReadData,
                &c.every,
                DAY,
                vec![a],
            );
        }
    }

    if let (Some(d), Some(id)) = (&config.drill, &repo.identity) {
        let mut a = args(&[
            "drill",
            "--repo",
            &repo.url,
            "--identity",
            &id.display().to_string(),
        ]);
        for b in &d.boot {
            a.extend(args(&["--boot", &b.command]));
        }
        // --expect pairs with --boot by position: give all or none.
        if d.boot.iter().any(|b| b.expect.is_some()) {
            for b in &d.boot {
                a.extend(args(&["--expect", b.expect.as_deref().unwrap_or("")]));
            }
        }
        if let Some(t) = d.timeout {
            a.extend(args(&["--timeout", &t.to_string()]));
        }
        a.push(d.snapshot.clone().unwrap_or_else(|| "latest".into()));
        add("drill".into(), StepKind::Drill, &d.every, 7 * DAY, vec![a]);
    }
    steps
}

fn with_metrics(command: Vec<String>, file: Option<&Path>, step: Option<&String>) -> Vec<String> {
    let Some(file) = file else {
        return command;
    };
    let mut a = args(&["--metrics-file", &file.display().to_string()]);
    if let Some(step) = step {
        a.extend(args(&["--metrics-step", step]));
    }
    a.extend(command);
    a
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The `--subset` that covers every pack within `days` when a slice is checked every
/// `every_secs`: `check --subset PCT%` covers all in ceil(100/PCT) runs.
pub fn slice_percent(every_secs: u64, days: u32) -> String {
    let runs = (u64::from(days) * DAY / every_secs.max(1)).max(1);
    let pct = 100u64.div_ceil(runs).max(1);
    format!("{pct}%")
}

fn due(state: &State, key: &str, every: Duration, now: OffsetDateTime) -> (bool, String) {
    let Some(last) = state.steps.get(key) else {
        return (true, "never ran".into());
    };
    let ago = (now - last.started).whole_seconds().max(0) as u64;
    if last.exit_code != 0 {
        return (
            true,
            format!(
                "last run {} ago failed (exit {}): retried",
                human(ago),
                last.exit_code
            ),
        );
    }
    let every_secs = every.as_secs();
    let threshold = every_secs - every_secs / 10;
    if ago >= threshold {
        (
            true,
            format!("last ran {} ago, every {}", human(ago), human(every_secs)),
        )
    } else {
        (
            false,
            format!(
                "ran {} ago, every {}: due in {}",
                human(ago),
                human(every_secs),
                human(threshold - ago)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StepState;

    const CONFIG: &str = r#"
[repository]
url = "/srv/repo"
backup_key = "/k/backup.key"
identity = "/k/id"

[[copy]]
to = "/mnt/drive/repo"

[[source]]
name = "node"
paths = ["/var/lib/node"]
pre = "systemctl stop node"

[retention]
keep_last = 3

[check]
packs_days = 30
read_data_days = 90

[drill]
boot = [{ command = "true" }]
"#;

    fn config() -> Config {
        Config::parse(Path::new("vtool.toml"), CONFIG).expect("config")
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    fn ran(state: &mut State, key: &str, hours_ago: i64, exit_code: i32) {
        state.steps.insert(
            key.into(),
            StepState {
                started: now() - time::Duration::hours(hours_ago),
                duration_secs: 1.0,
                exit_code,
                last_success: None,
            },
        );
    }

    #[test]
    fn steps_come_in_run_order_and_all_are_due_at_first() {
        let steps = plan(&config(), &State::default(), now(), None);
        let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "backup:node",
                "copy:/mnt/drive/repo",
                "retention",
                "check-packs",
                "check-read-data",
                "drill"
            ]
        );
        assert!(steps.iter().all(|s| s.due && s.reason == "never ran"));
        assert_eq!(steps[2].commands.len(), 2, "forget, then prune");
        assert_eq!(
            steps[0].commands[0].join(" "),
            "backup --repo /srv/repo --backup-key /k/backup.key --pre systemctl stop node -- /var/lib/node"
        );
        assert_eq!(
            steps[3].commands[0].join(" "),
            "check --repo /srv/repo --packs --subset 4%"
        );
        assert_eq!(
            steps[4].commands[0].join(" "),
            "check --repo /srv/repo --read-data --subset 2% --identity /k/id"
        );
    }

    #[test]
    fn intervals_failures_and_the_timer_slack_decide_what_is_due() {
        let mut state = State::default();
        ran(&mut state, "backup:node", 23, 0); // daily, random delay: still due
        ran(&mut state, "copy:/mnt/drive/repo", 3, 0); // not due
        ran(&mut state, "retention", 1, 2); // failed: retried
        ran(&mut state, "drill", 24 * 3, 0); // weekly: not due
        let steps = plan(&config(), &state, now(), None);
        let by = |k: &str| steps.iter().find(|s| s.key == k).expect("step");
        assert!(by("backup:node").due, "{}", by("backup:node").reason);
        assert_eq!(by("backup:node").reason, "last ran 23h ago, every 24h");
        assert!(!by("copy:/mnt/drive/repo").due);
        assert_eq!(
            by("copy:/mnt/drive/repo").reason,
            "ran 3h ago, every 24h: due in 18h"
        );
        assert!(by("retention").due);
        assert_eq!(
            by("retention").reason,
            "last run 60m ago failed (exit 2): retried"
        );
        assert!(!by("drill").due);
    }

    #[test]
    fn with_a_metrics_file_every_command_writes_there() {
        let steps = plan(
            &config(),
            &State::default(),
            now(),
            Some(Path::new("/m/vtool.prom")),
        );
        assert!(steps[0].commands[0]
            .join(" ")
            .starts_with("--metrics-file /m/vtool.prom --metrics-step backup:node backup --repo"));
        assert!(steps[2].commands[1]
            .join(" ")
            .starts_with("--metrics-file /m/vtool.prom prune --repo"));
    }

    #[test]
    fn check_slices_cover_every_pack_in_time() {
        assert_eq!(slice_percent(DAY, 30), "4%"); // 25 runs
        assert_eq!(slice_percent(DAY, 1), "100%");
        assert_eq!(slice_percent(DAY, 1000), "1%");
        assert_eq!(slice_percent(7 * DAY, 90), "9%"); // 12 weekly runs: 84 days
        assert_eq!(slice_percent(7 * DAY, 3), "100%");
    }
}
