use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use vtool_verify::{BootCommand, DrillOptions, KeepDir, ProveKeys};

use super::{IdentityArg, RepoArg};
use crate::{output, Outcome};

/// Restore a snapshot into a scratch directory, prove every byte against its fingerprint,
/// run boot commands on it, and store an authenticated record of the outcome.
///
/// Exit 0 when the drill passed, 3 when the restore or its verification found damaged data,
/// 1 when a boot command failed on data that verified.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: IdentityArg,
    /// Snapshot id (any unique prefix) or `latest`.
    #[arg(default_value = "latest")]
    snapshot: String,
    /// Command run with `sh -c` in the restored directory; `{dir}` is replaced by its
    /// (quoted) path. Repeatable: they run in order and all must pass, e.g.
    /// --boot "sqlite3 {dir}/node/slashing_protection.sqlite 'PRAGMA integrity_check'"
    #[arg(long = "boot", value_name = "CMD")]
    boots: Vec<String>,
    /// Regular expression the output of the boot command in the same position must match
    /// (give one per --boot; '' accepts any output). `^` and `$` match at line boundaries.
    #[arg(long = "expect", value_name = "REGEX")]
    expects: Vec<String>,
    /// Seconds each boot command may run before it is killed and fails.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Restore into this empty or new directory instead of a temporary one.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Keep the restored directory afterwards.
    #[arg(long)]
    keep: bool,
    /// Keep the restored directory only when the drill fails, to investigate.
    #[arg(long, conflicts_with = "keep")]
    keep_on_failure: bool,
    /// Also decrypt the validator keystores under this directory of the snapshot (relative
    /// to its root, e.g. node/validator/keys) with their passwords, and record which keys
    /// opened: the proof of keys `vtool gate` asks for. --passwords and --password-file are
    /// relative to the snapshot's root too, unless absolute.
    #[arg(long, value_name = "DIR")]
    prove_keys: Option<PathBuf>,
    #[command(flatten)]
    passwords: super::PasswordArgs,
    #[arg(long)]
    no_cache: bool,
    #[arg(long)]
    json: bool,
}

fn boot_commands(a: &Args) -> anyhow::Result<Vec<BootCommand>> {
    if !a.expects.is_empty() && a.expects.len() != a.boots.len() {
        bail!(
            "{} --expect for {} --boot: give one --expect per --boot, in the same order \
             ('' accepts any output)",
            a.expects.len(),
            a.boots.len()
        );
    }
    a.boots
        .iter()
        .enumerate()
        .map(|(i, command)| {
            let expect = match a.expects.get(i).filter(|e| !e.is_empty()) {
                Some(e) => Some(
                    vtool_verify::expect_pattern(e)
                        .with_context(|| format!("--expect {e:?} is not a valid regex"))?,
                ),
                None => None,
            };
            Ok(BootCommand {
                command: command.clone(),
                timeout: Duration::from_secs(a.timeout),
                expect,
            })
        })
        .collect()
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let boots = boot_commands(&a)?;
    if boots.is_empty() && !a.json {
        eprintln!("note: no --boot command: the drill proves the bytes but starts nothing on them");
    }
    let opened = super::open_snapshot(&a.repo, &a.identity, &a.snapshot, a.no_cache)?;
    let (id, snap) = (opened.id, &opened.snapshot);
    let opts = DrillOptions {
        target: a.target.clone(),
        boots,
        keep: if a.keep {
            KeepDir::Always
        } else if a.keep_on_failure {
            KeepDir::OnFailure
        } else {
            KeepDir::Never
        },
        prove_keys: a.prove_keys.as_ref().map(|dir| ProveKeys {
            dir: dir.clone(),
            passwords: a.passwords.explicit(),
            memory_budget: a.passwords.memory_budget(),
        }),
    };
    let progress = output::Bar::new("restoring").with_stages(!a.json);
    let run = vtool_verify::drill(&opened, &opts, &progress);
    progress.finish();
    let run = run?;
    let r = &run.record;
    if a.json {
        output::print_json(&serde_json::json!({
            "record": run.record_name,
            "kept": run.kept,
            "drill": r,
        }))?;
    } else {
        println!(
            "snapshot {} fingerprint {}",
            id.short(),
            output::spoken(&snap.fingerprint.to_hex())
        );
        println!(
            "restored {} files, {} in {:.1} s into {}; {}",
            r.restore.files,
            output::human_bytes(r.restore.bytes),
            r.restore.duration_secs,
            r.target,
            if r.verified {
                "every byte re-read and the fingerprint matches"
            } else {
                "NOT verified"
            }
        );
        for d in &r.restore.damaged {
            println!("DAMAGED (not restored): {d}");
        }
        if a.prove_keys.is_some() {
            println!("keystores proven (decrypted): {}", r.proven_keys.len());
        }
        for (i, c) in r.commands.iter().enumerate() {
            println!(
                "boot {}: {} — {}",
                i + 1,
                c.command,
                vtool_verify::why_failed(c)
            );
            if c.ran && !c.passed && !c.output_tail.is_empty() {
                for line in c
                    .output_tail
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .iter()
                    .rev()
                {
                    println!("    | {line}");
                }
            }
        }
        match &r.failure {
            None => println!(
                "DRILL PASSED in {:.1} s; recorded as {}",
                r.duration_secs, run.record_name
            ),
            Some(why) => println!("DRILL FAILED: {why}; recorded as {}", run.record_name),
        }
        if let Some(dir) = &run.kept {
            println!("restored directory kept at {}", dir.display());
        }
    }
    Ok(if r.passed {
        Outcome::Ok
    } else if !r.verified {
        Outcome::DataProblem
    } else {
        Outcome::No
    })
}
