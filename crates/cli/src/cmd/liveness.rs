use std::time::Duration;

use anyhow::Context;
use vtool_validator::beacon::BeaconClient;
use vtool_validator::liveness::{
    self, LivenessEvent, LivenessMode, LivenessOptions, LivenessReport, DEFAULT_EPOCHS,
};

use crate::{output, Outcome};

/// Prove that validator keys are offline before they are started anywhere else: every beacon
/// node must see none of them attesting or proposing for N consecutive completed epochs.
///
/// Each epoch is asked about in the last slot of the next one, after checking that the node
/// is in sync. Exit 0 when proven, 1 when not (with a reason per key and node), 2 on usage
/// errors. `--expect-live` is the positive control: every key must be seen live instead.
#[derive(clap::Args)]
pub struct Args {
    /// Beacon node API URL, e.g. http://localhost:5052. Repeat for more nodes: all must agree.
    #[arg(long = "beacon", value_name = "URL", required = true, num_args = 1..)]
    beacons: Vec<String>,
    #[command(flatten)]
    keys: super::PubkeyArgs,
    /// Consecutive completed epochs every key must be offline on every node.
    #[arg(long, default_value_t = DEFAULT_EPOCHS, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Keep watching until proven (a key seen live restarts its count), or --timeout.
    #[arg(long)]
    until_offline: bool,
    /// Give up after this long (e.g. 30m), with --until-offline.
    #[arg(long, value_name = "DUR", requires = "until_offline", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Positive control: every key must be seen live on every node within the epochs.
    #[arg(long)]
    expect_live: bool,
    /// How long each request to a beacon node may take.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = humantime::parse_duration)]
    beacon_timeout: Duration,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let nodes = a
        .beacons
        .iter()
        .map(|url| BeaconClient::new(url, a.beacon_timeout))
        .collect::<Result<Vec<_>, _>>()?;
    if nodes.len() == 1 {
        eprintln!(
            "warning: one beacon node only: a node that misses attestations would prove a live key offline; \
             give a second, independent one with another --beacon"
        );
    }
    let pubkeys = a.keys.pubkeys()?;
    let mode = if a.expect_live {
        LivenessMode::ExpectLive
    } else {
        LivenessMode::Offline
    };
    let opts = LivenessOptions {
        nodes,
        pubkeys,
        epochs: a.epochs,
        mode,
        until_offline: a.until_offline,
        timeout: a.timeout,
    };
    eprintln!(
        "watching {} key(s) on {} node(s) for {} epoch(s){}",
        opts.pubkeys.len(),
        opts.nodes.len(),
        opts.epochs,
        if a.until_offline {
            ", until proven"
        } else {
            ""
        }
    );
    let report = liveness::watch(&opts, &mut progress)
        .context("cannot start the watch (check --pubkey, --keys and --epochs)")?;
    if a.json {
        output::print_json(&report)?;
    } else {
        print_text(&report);
    }
    Ok(if report.proven {
        Outcome::Ok
    } else {
        Outcome::No
    })
}

pub fn progress(event: &LivenessEvent) {
    match event {
        LivenessEvent::Waiting { epoch, at } => {
            let when = i64::try_from(*at)
                .ok()
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                .map(|t| output::datetime(&t))
                .unwrap_or_else(|| at.to_string());
            eprintln!(
                "epoch {epoch}: waiting until {when} UTC (the last slot of epoch {})",
                epoch + 1
            );
        }
        LivenessEvent::Observed(o) => match &o.error {
            Some(reason) => eprintln!("epoch {} {}: not observed: {reason}", o.epoch, o.node),
            None => eprintln!(
                "epoch {} {}: {} of {} live",
                o.epoch,
                o.node,
                o.live_indices.len(),
                o.asked
            ),
        },
    }
}

fn print_text(report: &LivenessReport) {
    let epochs = match (report.first_epoch, report.last_epoch) {
        (Some(first), Some(last)) => format!("epochs {first}..={last}"),
        _ => "no epoch".into(),
    };
    let claim = match report.mode {
        LivenessMode::Offline => format!(
            "offline on every node for {} consecutive epochs",
            report.epochs_required
        ),
        LivenessMode::ExpectLive => "seen live on every node".into(),
    };
    let failing: Vec<_> = report.keys.iter().filter(|k| !k.proven).collect();
    if failing.is_empty() {
        println!(
            "proven: all {} key(s) {claim} ({epochs} watched)",
            report.keys.len()
        );
        return;
    }
    println!(
        "NOT proven: {} of {} key(s) not {claim} ({epochs} watched{})",
        failing.len(),
        report.keys.len(),
        if report.timed_out { ", timed out" } else { "" }
    );
    for key in failing {
        let index = key
            .index
            .map(|i| format!("index {i}"))
            .unwrap_or_else(|| "no index".into());
        println!("{} ({index}):", key.pubkey);
        for reason in &key.reasons {
            println!("    {reason}");
        }
    }
    if let Some(epoch) = report.last_live_epoch {
        println!("last seen live: epoch {epoch}");
    }
}
