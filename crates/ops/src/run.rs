//! `vtool run`: the due steps, in order, each as a child `vtool` process, with the run lock,
//! the state, the metrics and the pings around them.
//!
//! Order: backups, copies, retention (forget, then prune), the check slices, the drill.
//! Retention is skipped when a backup of this run failed: forgetting while backups fail
//! could leave fewer good snapshots than the policy means to keep.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::Config;
use crate::schedule::{plan, PlannedStep, StepKind};
use crate::state::StateDir;
use crate::{lock, metrics, ping, OpsError};

pub struct RunOptions {
    /// The `vtool` binary the steps run.
    pub exe: PathBuf,
    pub dry_run: bool,
    pub lock_wait: Duration,
    /// `--metrics-file`, which wins over the config's `[metrics] textfile`.
    pub metrics_file: Option<PathBuf>,
    /// Send the steps' standard output to standard error (so `--json` stays one document).
    pub quiet_stdout: bool,
}

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    #[serde(flatten)]
    pub step: PlannedStep,
    /// Why a due step did not run.
    pub skipped: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started: Option<OffsetDateTime>,
    pub exit_code: Option<i32>,
    pub duration_secs: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub dry_run: bool,
    pub steps: Vec<StepResult>,
    /// The worst status of the steps that ran (see [`worst`]).
    pub exit_code: i32,
    pub warnings: Vec<String>,
}

/// Events for the caller to show as they happen.
pub enum Event<'a> {
    Starting(&'a PlannedStep, &'a [String]),
    Finished(&'a str, i32, f64),
    Warning(&'a str),
}

/// How bad an exit status is: 0 < 1 ("no") < 3 (a data problem, but the step did its job)
/// < 2 (the step could not do its job: no backup, no copy). Anything else counts as 2.
fn rank(code: i32) -> u8 {
    match code {
        0 => 0,
        1 => 1,
        3 => 2,
        _ => 3,
    }
}

/// The worse of two exit statuses.
pub fn worst(a: i32, b: i32) -> i32 {
    let norm = |c: i32| if matches!(c, 0..=3) { c } else { 2 };
    if rank(a) >= rank(b) {
        norm(a)
    } else {
        norm(b)
    }
}

pub fn run(
    config: &Config,
    opts: &RunOptions,
    on: &mut dyn FnMut(Event),
) -> Result<RunReport, OpsError> {
    let state_dir = StateDir::new(&config.state_dir());
    let metrics_file = opts
        .metrics_file
        .clone()
        .or_else(|| config.metrics.as_ref().map(|m| m.textfile.clone()));
    // A dry run changes nothing, so it needs no lock and may look while a run goes on.
    let _lock = if opts.dry_run {
        None
    } else {
        Some(lock::acquire(&state_dir.lock_file(), opts.lock_wait)?)
    };
    let run_started = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let state = state_dir.load()?;
    let planned = plan(config, &state, run_started, metrics_file.as_deref());
    let mut warnings = Vec::new();
    let mut warn = |on: &mut dyn FnMut(Event), w: String| {
        on(Event::Warning(&w));
        warnings.push(w);
    };

    if opts.dry_run {
        let steps = planned
            .into_iter()
            .map(|step| StepResult {
                step,
                skipped: None,
                started: None,
                exit_code: None,
                duration_secs: None,
            })
            .collect();
        return Ok(RunReport {
            dry_run: true,
            steps,
            exit_code: 0,
            warnings,
        });
    }

    let pinger = config.ping.as_ref().map(|p| {
        ping::Pinger::new(
            &p.url,
            p.timeout
                .as_ref()
                .map_or(ping::DEFAULT_TIMEOUT, |t| t.duration),
        )
    });
    if let Some(p) = &pinger {
        if let Err(w) = p.start() {
            warn(on, w);
        }
    }

    let mut exit = 0;
    let mut backup_failed = false;
    let mut results = Vec::new();
    for step in planned {
        let mut result = StepResult {
            skipped: None,
            started: None,
            exit_code: None,
            duration_secs: None,
            step,
        };
        if !result.step.due {
            results.push(result);
            continue;
        }
        if result.step.kind == StepKind::Retention && backup_failed {
            result.skipped =
                Some("a backup of this run failed: retention waits for one that succeeds".into());
            results.push(result);
            continue;
        }
        let started = OffsetDateTime::now_utc();
        let t = Instant::now();
        let mut code = 0;
        for command in &result.step.commands {
            on(Event::Starting(&result.step, command));
            code = run_command(&opts.exe, command, opts.quiet_stdout, &mut |w| warn(on, w));
            if code != 0 {
                break; // prune only after a forget that succeeded
            }
        }
        let secs = t.elapsed().as_secs_f64();
        on(Event::Finished(&result.step.key, code, secs));
        if let Err(e) = state_dir.record(&result.step.key, started, secs, code) {
            warn(on, format!("cannot record the step: {e}"));
            exit = worst(exit, 2);
        }
        if result.step.kind == StepKind::Backup && code != 0 {
            backup_failed = true;
        }
        exit = worst(exit, code);
        result.started = Some(started);
        result.exit_code = Some(code);
        result.duration_secs = Some(secs);
        results.push(result);
    }

    if let Some(file) = &metrics_file {
        if let Err(e) = write_run_metrics(config, &state_dir, file, run_started, clock, exit) {
            warn(on, format!("cannot write the metrics: {e}"));
        }
    }
    let report = RunReport {
        dry_run: false,
        steps: results,
        exit_code: exit,
        warnings: Vec::new(),
    };
    if let Some(p) = &pinger {
        if let Err(w) = p.finish(exit, &summary(&report)) {
            warn(on, w);
        }
    }
    Ok(RunReport { warnings, ..report })
}

/// Run `exe command…`; its exit status (2 when it could not start or was killed).
fn run_command(
    exe: &Path,
    command: &[String],
    quiet_stdout: bool,
    warn: &mut dyn FnMut(String),
) -> i32 {
    let mut c = Command::new(exe);
    c.args(command).stdin(Stdio::null());
    if quiet_stdout {
        c.stdout(std::io::stderr());
    }
    match c.status() {
        Ok(status) => status.code().unwrap_or_else(|| {
            warn(format!(
                "{} ended without an exit status ({status})",
                command.join(" ")
            ));
            2
        }),
        Err(e) => {
            warn(format!("cannot run {}: {e}", exe.display()));
            2
        }
    }
}

/// The run's own metrics (step `run`) and how many copies are verified.
fn write_run_metrics(
    config: &Config,
    state_dir: &StateDir,
    file: &Path,
    started: OffsetDateTime,
    clock: Instant,
    exit: i32,
) -> Result<(), OpsError> {
    let repo = &config.repository.url;
    let state = state_dir.load()?;
    let now = OffsetDateTime::now_utc();
    let steps = plan(config, &state, now, None);
    // A copy counts when its last copy succeeded within twice its interval (copy checks
    // every object against its hash before it sends it).
    let verified = steps
        .iter()
        .filter(|s| s.kind == StepKind::Copy)
        .filter(|s| {
            state.steps.get(&s.key).is_some_and(|st| {
                st.exit_code == 0
                    && (now - st.started).whole_seconds() <= 2 * s.every.as_secs() as i64
            })
        })
        .count();
    let mut samples =
        metrics::step_samples(repo, "run", started, clock.elapsed().as_secs_f64(), exit);
    samples.push(metrics::Sample::new(
        "vtool_verified_copies",
        &[("repository", repo)],
        verified as f64,
    ));
    metrics::update(file, &samples)
}

/// The ping body: one line per step.
pub fn summary(r: &RunReport) -> String {
    let mut out = format!("vtool run: exit {}\n", r.exit_code);
    for s in &r.steps {
        let what = match (&s.skipped, s.exit_code) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, Some(0)) => format!("ok in {:.1}s", s.duration_secs.unwrap_or(0.0)),
            (None, Some(c)) => format!(
                "FAILED (exit {c}) in {:.1}s",
                s.duration_secs.unwrap_or(0.0)
            ),
            (None, None) => format!("not due: {}", s.step.reason),
        };
        out.push_str(&format!("{:<20} {what}\n", s.step.key));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::worst;

    #[test]
    fn the_worst_status_wins() {
        assert_eq!(worst(0, 1), 1);
        assert_eq!(worst(1, 3), 3);
        assert_eq!(worst(3, 2), 2);
        assert_eq!(worst(2, 3), 2);
        assert_eq!(worst(0, 0), 0);
        assert_eq!(worst(0, 137), 2);
    }
}
