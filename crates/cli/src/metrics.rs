//! `--metrics-file`: every command that works on a repository records its run there (the
//! step metrics), and what the repository looks like afterwards (snapshot count, newest
//! snapshot, bytes added, drill result). `vtool run` writes its own.

use std::path::Path;
use std::time::Duration;

use clap::ArgMatches;
use time::OffsetDateTime;
use vtool_ops::{facts, metrics};

/// The repository and step label a command's metrics go under.
pub struct Target {
    pub repository: String,
    pub step: String,
    drill: bool,
}

/// From the parsed command line: `None` for commands without a repository (and `run`).
pub fn target(matches: &ArgMatches, step_override: Option<&str>) -> Option<Target> {
    let mut names = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        names.push(name.to_string());
        m = sub;
    }
    if names.first().is_some_and(|n| n == "run") {
        return None;
    }
    let arg = |id: &str| m.try_get_one::<String>(id).ok().flatten().cloned();
    let flag = |id: &str| m.try_get_one::<bool>(id).ok().flatten() == Some(&true);
    // A copy's metrics belong to where it copied to.
    let repository = arg("repo").or_else(|| arg("to"))?;
    let mut step = names.join("-");
    if step == "check" {
        if flag("read_data") {
            step = "check-read-data".into();
        } else if flag("packs") {
            step = "check-packs".into();
        }
    }
    Some(Target {
        repository,
        drill: step == "drill",
        step: step_override.map_or(step, str::to_string),
    })
}

/// Merge this command's metrics into `file`; a failure is a warning (the command's own
/// result stands).
pub fn record(file: &Path, t: &Target, started: OffsetDateTime, took: Duration, exit_code: u8) {
    let code = i32::from(exit_code);
    let mut samples =
        metrics::step_samples(&t.repository, &t.step, started, took.as_secs_f64(), code);
    if t.drill {
        samples.extend(facts::drill_samples(&t.repository, started, code));
    }
    match facts::repository_samples(&t.repository, OffsetDateTime::now_utc()) {
        Ok(s) => samples.extend(s),
        Err(e) => eprintln!("warning: metrics: {e}"),
    }
    if let Err(e) = metrics::update(file, &samples) {
        eprintln!("warning: cannot write the metrics file: {e}");
    }
}
