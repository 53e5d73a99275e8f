//! node_exporter textfile metrics: one file many commands update, each its own lines.
//!
//! An update reads the file, replaces the samples it brings (same name and labels) and keeps
//! every other line, so other repositories and steps keep theirs. A lock file beside it
//! serialises the read-modify-write; the new content is written atomically (temp file in the
//! same directory, fsync, rename), so node_exporter never scrapes half a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::OpsError;

/// The metrics vtool writes, with their help text. All are gauges.
pub const METRICS: &[(&str, &str)] = &[
    (
        "vtool_last_run_timestamp_seconds",
        "When the step last started (Unix time).",
    ),
    (
        "vtool_last_success_timestamp_seconds",
        "When the step last started a run that ended with exit status 0 (Unix time).",
    ),
    (
        "vtool_last_exit_code",
        "Exit status of the step's last run (0 ok, 1 no, 2 error, 3 data problem, 4 lock busy).",
    ),
    (
        "vtool_last_duration_seconds",
        "How long the step's last run took.",
    ),
    ("vtool_snapshots", "Snapshots in the repository."),
    (
        "vtool_newest_snapshot_timestamp_seconds",
        "Time of the repository's newest snapshot (Unix time).",
    ),
    (
        "vtool_newest_snapshot_age_seconds",
        "Age of the newest snapshot when the file was written (alert on time() - vtool_newest_snapshot_timestamp_seconds).",
    ),
    (
        "vtool_last_backup_added_bytes",
        "Bytes the newest snapshot's backup added to the repository (after dedup and compression).",
    ),
    (
        "vtool_last_drill_passed",
        "1 if the last drill passed, 0 if it failed.",
    ),
    (
        "vtool_last_drill_timestamp_seconds",
        "When the last drill started (Unix time).",
    ),
    (
        "vtool_verified_copies",
        "Copies of the repository whose last copy succeeded within twice its interval.",
    ),
];

/// One line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    pub fn new(name: &'static str, labels: &[(&'static str, &str)], value: f64) -> Sample {
        Sample {
            name,
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
        }
    }

    fn label_text(&self) -> String {
        if self.labels.is_empty() {
            return String::new();
        }
        let inner: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        format!("{{{}}}", inner.join(","))
    }
}

/// The text format's label value escaping: backslash, double quote, newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn timestamp(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// The samples of one run of one step.
pub fn step_samples(
    repository: &str,
    step: &str,
    started: OffsetDateTime,
    duration_secs: f64,
    exit_code: i32,
) -> Vec<Sample> {
    let l = [("repository", repository), ("step", step)];
    let mut v = vec![
        Sample::new("vtool_last_run_timestamp_seconds", &l, timestamp(started)),
        Sample::new("vtool_last_exit_code", &l, f64::from(exit_code)),
        Sample::new("vtool_last_duration_seconds", &l, duration_secs),
    ];
    // A failed run leaves the last success where it was.
    if exit_code == 0 {
        v.push(Sample::new(
            "vtool_last_success_timestamp_seconds",
            &l,
            timestamp(started),
        ));
    }
    v
}

/// The parsed file: per metric name its HELP, TYPE and samples (labels text → value text).
#[derive(Default)]
struct Families {
    help: BTreeMap<String, String>,
    kind: BTreeMap<String, String>,
    samples: BTreeMap<String, BTreeMap<String, String>>,
}

fn parse(text: &str) -> Families {
    let mut f = Families::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                f.help.insert(name.into(), help.into());
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                f.kind.insert(name.into(), kind.into());
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, value) = match line.find('{') {
            Some(open) => match line.rfind('}') {
                Some(close) if close > open => {
                    (&line[..open], &line[open..=close], line[close + 1..].trim())
                }
                _ => continue,
            },
            None => match line.split_once(' ') {
                Some((n, v)) => (n, "", v.trim()),
                None => continue,
            },
        };
        f.samples
            .entry(name.to_string())
            .or_default()
            .insert(labels.to_string(), value.to_string());
    }
    f
}

fn render(f: &Families) -> String {
    let mut out = String::new();
    for (name, samples) in &f.samples {
        if let Some(help) = f.help.get(name) {
            let _ = writeln!(out, "# HELP {name} {help}");
        }
        if let Some(kind) = f.kind.get(name) {
            let _ = writeln!(out, "# TYPE {name} {kind}");
        }
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
    out
}

/// Merge `samples` into the textfile at `path` (created if missing).
pub fn update(path: &Path, samples: &[Sample]) -> Result<(), OpsError> {
    let lock_path = lock_path(path);
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| OpsError::io(&lock_path, e))?;
    lock.lock().map_err(|e| OpsError::io(&lock_path, e))?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(OpsError::io(path, e)),
    };
    let mut f = parse(&old);
    for (name, help) in METRICS {
        if samples.iter().any(|s| s.name == *name) {
            f.help.insert(name.to_string(), help.to_string());
            f.kind.insert(name.to_string(), "gauge".into());
        }
    }
    for s in samples {
        f.samples
            .entry(s.name.to_string())
            .or_default()
            .insert(s.label_text(), format_value(s.value));
    }
    vtool_transfer::write_atomic(path, render(&f).as_bytes()).map_err(|e| OpsError::io(path, e))
    // `lock` is released when dropped, after the rename.
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// `vtool.prom` → `.vtool.prom.lock` (node_exporter reads only `*.prom`).
fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).expect("time")
    }

    #[test]
    fn updates_keep_other_lines_and_a_failure_keeps_the_last_success() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vtool.prom");
        std::fs::write(
            &path,
            "# HELP other_metric Someone else's.\n# TYPE other_metric gauge\nother_metric 7\n",
        )
        .expect("write");
        update(&path, &step_samples("/r1", "backup", t(1000), 2.5, 0)).expect("update");
        update(&path, &step_samples("/r2", "backup", t(1100), 1.0, 0)).expect("update");
        update(&path, &step_samples("/r1", "backup", t(2000), 3.0, 2)).expect("update");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("other_metric 7\n"), "{text}");
        assert!(text.contains(
            "vtool_last_success_timestamp_seconds{repository=\"/r1\",step=\"backup\"} 1000\n"
        ));
        assert!(text.contains(
            "vtool_last_success_timestamp_seconds{repository=\"/r2\",step=\"backup\"} 1100\n"
        ));
        assert!(text.contains(
            "vtool_last_run_timestamp_seconds{repository=\"/r1\",step=\"backup\"} 2000\n"
        ));
        assert!(text.contains("vtool_last_exit_code{repository=\"/r1\",step=\"backup\"} 2\n"));
        assert!(
            text.contains("vtool_last_duration_seconds{repository=\"/r1\",step=\"backup\"} 3\n")
        );
        assert_eq!(text.matches("# TYPE vtool_last_exit_code gauge").count(), 1);
        // No temporary file is left beside it.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn label_values_are_escaped() {
        let s = Sample::new("vtool_snapshots", &[("repository", "a\"b\\c")], 1.0);
        assert_eq!(s.label_text(), "{repository=\"a\\\"b\\\\c\"}");
    }
}
