use serde::Serialize;
use vtool_validator::profiles::{Kind, PathRule, PROFILES};

use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    kinds: &'static [Kind],
    description: &'static str,
    version_command: String,
    /// Detection: the directory matches when every path of one set exists.
    markers: &'static [&'static [&'static str]],
    rules: &'static [PathRule],
    live_markers: &'static [&'static str],
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let rows: Vec<Row> = PROFILES
        .iter()
        .map(|p| Row {
            name: p.name,
            kinds: p.kinds,
            description: p.description,
            version_command: p.version_command(),
            markers: p.markers,
            rules: p.rules,
            live_markers: p.live_markers,
        })
        .collect();
    if a.json {
        output::print_json(&rows)?;
        return Ok(Outcome::Ok);
    }
    for r in &rows {
        let kinds: Vec<String> = r.kinds.iter().map(|k| k.name().to_string()).collect();
        println!("{} ({})", r.name, kinds.join(", "));
        println!("  {}", r.description);
        let markers: Vec<String> = r.markers.iter().map(|set| set.join(" + ")).collect();
        println!("  detected by   {}", markers.join(" | "));
        for rule in r.rules {
            println!(
                "  {:<12}  {:<20}  {}{}",
                if rule.rebuildable {
                    "rebuildable"
                } else {
                    "MUST KEEP"
                },
                rule.role.as_str(),
                rule.globs.join(" "),
                if rule.note.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", rule.note)
                }
            );
        }
        println!("  live locks    {}", r.live_markers.join(" "));
        println!("  version       {}", r.version_command);
        println!();
    }
    println!(
        "{} profiles; `vtool backup --profile NAME` or automatic detection; \
         --skip-rebuildable leaves out the rebuildable paths",
        rows.len()
    );
    Ok(Outcome::Ok)
}
