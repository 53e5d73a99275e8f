//! `vtool run --config vtool.toml`: what is due, in order (the work is in `vtool_ops::run`).

use std::path::PathBuf;

use anyhow::Context;
use vtool_ops::duration::Span;
use vtool_ops::run::summary;
use vtool_ops::{Config, Event, OpsError, RunOptions, RunReport};

use crate::{output, Outcome};

/// Do what is due for this node: backups, copies, retention (forget, prune), a check slice,
/// a drill, each as the `vtool` command an operator would type (see them with --dry-run).
///
/// Records each step in the config's state directory, writes metrics and sends pings when
/// configured, and exits with the worst status of its steps (0 < 1 < 3 < 2: a step that could
/// not do its job at all is worse than one that found a data problem). Another run holding
/// this host's lock makes it wait --lock-wait, then exit 4.
#[derive(clap::Args)]
pub struct Args {
    /// The node's vtool.toml.
    #[arg(long, env = "VTOOL_CONFIG")]
    config: PathBuf,
    /// Say what is due and why, and the command lines; run nothing (takes no lock).
    #[arg(long)]
    dry_run: bool,
    /// Wait this long (e.g. 30s, 10m) for another `vtool run` on this host to finish, then
    /// give up with exit 4.
    #[arg(long, default_value = "0", value_parser = Span::parse)]
    lock_wait: Span,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args, metrics_file: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let config = Config::load(&a.config)?;
    let opts = RunOptions {
        exe: std::env::current_exe().context("cannot find the vtool binary to run the steps")?,
        dry_run: a.dry_run,
        lock_wait: a.lock_wait.duration,
        metrics_file,
        quiet_stdout: a.json,
    };
    let mut on = |e: Event| match e {
        Event::Starting(step, command) => {
            eprintln!("==> {}: vtool {}", step.key, shell_words(command))
        }
        Event::Finished(key, code, secs) => eprintln!("<== {key}: exit {code} in {secs:.1}s"),
        Event::Warning(w) => eprintln!("warning: {w}"),
    };
    let report = match vtool_ops::run(&config, &opts, &mut on) {
        Ok(r) => r,
        Err(e @ OpsError::Busy { .. }) => {
            eprintln!("error: {e}");
            return Ok(Outcome::Busy);
        }
        Err(e) => return Err(e.into()),
    };
    if a.json {
        output::print_json(&report)?;
    } else if report.dry_run {
        print_plan(&report);
    } else {
        print!("{}", summary(&report));
    }
    match report.exit_code {
        0 => Ok(Outcome::Ok),
        1 => Ok(Outcome::No),
        3 => Ok(Outcome::DataProblem),
        code => {
            let failed: Vec<String> = report
                .steps
                .iter()
                .filter(|s| s.exit_code.is_some_and(|c| c != 0))
                .map(|s| s.step.key.clone())
                .collect();
            anyhow::bail!(
                "vtool run: exit {code}; failed: {} (their output is above)",
                failed.join(", ")
            )
        }
    }
}

fn print_plan(r: &RunReport) {
    for s in &r.steps {
        println!(
            "{:<7} {:<24} {}",
            if s.step.due { "DUE" } else { "not due" },
            s.step.key,
            s.step.reason
        );
        if s.step.due {
            for c in &s.step.commands {
                println!("        vtool {}", shell_words(c));
            }
        }
    }
}

/// Arguments as a shell would need them typed.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
