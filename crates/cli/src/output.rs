//! Human output, JSON output and progress bars.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use vtool_snapshot::Progress;

/// Print one JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A byte-count progress bar on stderr, or nothing when stderr is not a terminal (cron).
pub fn bytes_bar(message: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// Progress of any library operation: one bar on stderr (none when stderr is not a
/// terminal), with stages and warnings printed above it.
pub struct Bar {
    bar: Option<ProgressBar>,
    stages: bool,
    warnings: bool,
}

impl Bar {
    /// A bar that prints warnings but not stages.
    pub fn new(message: &str) -> Bar {
        Bar {
            bar: bytes_bar(message),
            stages: false,
            warnings: true,
        }
    }

    /// No bar, for work too short for one; warnings are still printed.
    pub fn none() -> Bar {
        Bar {
            bar: None,
            stages: false,
            warnings: true,
        }
    }

    /// Also print each stage as a line.
    pub fn with_stages(mut self, on: bool) -> Bar {
        self.stages = on;
        self
    }

    /// Print warnings (the default).
    pub fn with_warnings(mut self, on: bool) -> Bar {
        self.warnings = on;
        self
    }

    /// Remove the bar, leaving the lines printed above it.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Progress for Bar {
    fn stage(&self, name: &str, items: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
            bar.set_position(0);
            bar.set_message(if items > 0 {
                format!("{name} ({items})")
            } else {
                name.to_string()
            });
        }
        if self.stages {
            self.line(name.to_string());
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finished(&self, what: &str) {
        if self.stages {
            self.line(what.to_string());
        }
    }

    fn warn(&self, what: &str, message: &str) {
        if self.warnings {
            self.line(format!("warning: {what}: {message}"));
        }
    }
}

/// `1.50 GiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// `2026-12-03 10:49:19` (UTC, to the second) for tables.
pub fn datetime(t: &time::OffsetDateTime) -> String {
    use time::macros::format_description;
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Group a fingerprint in blocks of four hex digits, for reading aloud.
pub fn spoken(hex: &str) -> String {
    hex.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A record's authenticity in a listing's AUTH column.
pub fn authenticity(a: vtool_verify::Authenticity) -> &'static str {
    match a {
        vtool_verify::Authenticity::Authentic => "ok",
        vtool_verify::Authenticity::Forged => "FORGED",
        vtool_verify::Authenticity::NotChecked => "unchecked",
    }
}
