//! A gate report as Markdown, fit for a change ticket: the verdict first, then each check
//! with its evidence, then the keys that failed.

use std::fmt::Write;

use vtool_snapshot::repofile::{CheckStatus, GateReport};

use super::keys::short;

/// Keys listed one by one at most; the rest are counted.
const MAX_KEY_ROWS: usize = 200;

pub fn render_markdown(name: &str, r: &GateReport) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut md, name, r);
    md
}

fn write_report(md: &mut String, name: &str, r: &GateReport) -> std::fmt::Result {
    let verdict = match (&r.override_of, r.passed) {
        (Some(_), _) => "OVERRIDE (no gate)",
        (None, true) => "PASS",
        (None, false) => "FAIL",
    };
    writeln!(md, "# vtool gate report: {verdict}\n")?;
    writeln!(md, "| | |\n|---|---|")?;
    writeln!(md, "| report | `{name}` |")?;
    writeln!(
        md,
        "| time | {} on {} (vtool {}) |",
        vtool_snapshot::format_time(r.time),
        r.hostname,
        r.vtool_version
    )?;
    if let Some(s) = r.snapshot {
        writeln!(md, "| snapshot | `{s}` |")?;
    }
    if let Some(f) = r.fingerprint {
        writeln!(md, "| fingerprint | `{f}` |")?;
    }
    writeln!(md, "| keys | {} |", r.pubkeys.len())?;
    if let Some(f) = r.finalized_epoch {
        writeln!(md, "| finalized epoch | {f} |")?;
    }
    if let Some(i) = &r.interchange {
        writeln!(
            md,
            "| interchange | version {}, root `{}`, blake3 `{}` |",
            i.format_version, i.genesis_validators_root, i.blake3
        )?;
    }
    let inputs = &r.inputs;
    if !inputs.repo.is_empty() {
        writeln!(md, "| repository | {} |", inputs.repo)?;
        for c in &inputs.copy_repos {
            writeln!(md, "| copy | {c} |")?;
        }
        for b in &inputs.beacons {
            writeln!(md, "| beacon node | {b} |")?;
        }
        writeln!(
            md,
            "| limits | max age {} s, {} cop(ies), {} epoch(s) |",
            inputs.max_age_secs, inputs.copies, inputs.epochs
        )?;
    }
    if let Some(what) = &r.override_of {
        writeln!(md, "\n**No gate ran.** {what}")?;
    }
    if !r.checks.is_empty() {
        writeln!(md, "\n## Checks\n")?;
        writeln!(md, "| check | result | summary |\n|---|---|---|")?;
        for c in &r.checks {
            writeln!(
                md,
                "| {} | {} | {} |",
                c.name,
                status_word(c.status),
                c.summary.replace('|', "\\|")
            )?;
        }
        for c in &r.checks {
            if c.evidence.is_empty() && c.warnings.is_empty() {
                continue;
            }
            writeln!(md, "\n### {} ({})\n", c.name, status_word(c.status))?;
            for e in &c.evidence {
                writeln!(md, "- {e}")?;
            }
            for w in &c.warnings {
                writeln!(md, "- warning: {w}")?;
            }
        }
    }
    let failing: Vec<_> = r.keys.iter().filter(|k| !k.problems.is_empty()).collect();
    if !failing.is_empty() {
        writeln!(md, "\n## Keys that fail ({})\n", failing.len())?;
        writeln!(md, "| key | index | problems |\n|---|---|---|")?;
        for k in failing.iter().take(MAX_KEY_ROWS) {
            writeln!(
                md,
                "| `{}` | {} | {} |",
                short(&k.pubkey),
                k.index.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                k.problems.join("; ").replace('|', "\\|")
            )?;
        }
        if failing.len() > MAX_KEY_ROWS {
            writeln!(md, "\n… and {} more", failing.len() - MAX_KEY_ROWS)?;
        }
    }
    Ok(())
}

pub fn status_word(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "pass",
        CheckStatus::Fail => "FAIL",
        CheckStatus::Unknown => "UNKNOWN",
    }
}
