//! `vtool.toml`: one file per node saying what `vtool run` does and how often.
//!
//! Unknown keys are refused (a misspelt `keep_dialy` must not silently keep nothing), and
//! every error names the file, the line and the key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::duration::Span;

/// Where `vtool run` keeps its state and lock when the config does not say.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vtool";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// When each step last ran and how it ended, and the run lock.
    pub state_dir: Option<PathBuf>,
    /// The primary repository: backups go here; copies, retention, checks and drills start here.
    pub repository: Repository,
    /// Copies of the primary (an SFTP server, a drive), refreshed with `vtool copy`.
    #[serde(default, rename = "copy")]
    pub copies: Vec<CopyTarget>,
    /// What to back up: one `vtool backup` each.
    #[serde(default, rename = "source")]
    pub sources: Vec<Source>,
    pub retention: Option<Retention>,
    pub check: Option<CheckSchedule>,
    pub drill: Option<Drill>,
    pub metrics: Option<Metrics>,
    pub ping: Option<Ping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    /// A path or sftp://user@host[:port]/path.
    pub url: String,
    /// For backups and retention (forget, prune).
    pub backup_key: PathBuf,
    /// The restore identity, for `check --read-data` and drills; leave it out on hosts that
    /// must not be able to read their backups.
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyTarget {
    /// A path (a drive) or sftp://…
    pub to: String,
    pub every: Option<Span>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Names the step (`backup:NAME`) in the state, the output and the metrics.
    pub name: String,
    pub paths: Vec<PathBuf>,
    pub profile: Option<String>,
    /// `vtool backup --pre`: e.g. `systemctl stop lighthouse-vc`.
    pub pre: Option<String>,
    /// `vtool backup --post`, run whatever happened: e.g. `systemctl start lighthouse-vc`.
    pub post: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub skip_rebuildable: bool,
    #[serde(default)]
    pub live_precopy: bool,
    #[serde(default)]
    pub verify_keys: bool,
    pub every: Option<Span>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<Span>,
    #[serde(default)]
    pub keep_tag: Vec<String>,
    /// Run `vtool prune` after `vtool forget` (default). Turn it off where this host's storage
    /// account cannot delete: prune then runs on the storage host.
    #[serde(default = "yes")]
    pub prune: bool,
    /// `vtool prune --max-unused`, e.g. `5%`.
    pub max_unused: Option<String>,
    /// `vtool prune --grace`, e.g. `24h`.
    pub grace: Option<Span>,
    pub every: Option<Span>,
}

fn yes() -> bool {
    true
}

impl Retention {
    fn has_rule(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(Option::is_some)
            || self.keep_within.is_some()
            || !self.keep_tag.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSchedule {
    /// Every pack is re-hashed (`check --packs`, no key) within this many days, a slice per run.
    pub packs_days: Option<u32>,
    /// Every pack is decrypted and every blob checked (`check --read-data`, needs the
    /// identity) within this many days, a slice per run.
    pub read_data_days: Option<u32>,
    /// How often a slice is checked (default 1d).
    pub every: Option<Span>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    /// Snapshot to drill (default `latest`).
    pub snapshot: Option<String>,
    #[serde(default)]
    pub boot: Vec<Boot>,
    /// Seconds each boot command may run.
    pub timeout: Option<u64>,
    /// Default 7d.
    pub every: Option<Span>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// Run with `sh -c`; `{dir}` is the restored directory.
    pub command: String,
    /// A regular expression its output must match.
    pub expect: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// A `*.prom` file in node_exporter's textfile collector directory.
    pub textfile: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    /// A healthchecks.io-style check URL: `URL/start` before, `URL/<exit code>` after.
    pub url: String,
    /// Per request (default 10s).
    pub timeout: Option<Span>,
}

/// A config file that could not be used, with where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; absent when the file could not be read at all.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The dotted key the error is about (`retention.keep_daily`), when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read it: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Parse `text` (read from `file`, which errors name).
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column, key) = match e.span() {
                Some(span) => locate(text, span.start),
                None => (None, None, None),
            };
            ConfigError {
                file: file.to_path_buf(),
                line,
                column,
                key,
                message: e.message().trim().to_string(),
            }
        })?;
        config.validate(file, text)?;
        Ok(config)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }

    /// What serde cannot say: keys that need other keys, rules that must be there.
    fn validate(&self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let err = |table: &str, key: &str, message: String| {
            let line = find_key(text, table, key);
            ConfigError {
                file: file.to_path_buf(),
                line,
                column: None,
                key: Some(format!("{table}.{key}")),
                message,
            }
        };
        let no_identity = self.repository.identity.is_none();
        if let Some(check) = &self.check {
            if check.read_data_days.is_some() && no_identity {
                return Err(err(
                    "check",
                    "read_data_days",
                    "check --read-data needs the restore identity: set repository.identity".into(),
                ));
            }
            for (key, days) in [
                ("packs_days", check.packs_days),
                ("read_data_days", check.read_data_days),
            ] {
                if days == Some(0) {
                    return Err(err("check", key, "must be at least 1 day".into()));
                }
            }
        }
        if self.drill.is_some() && no_identity {
            return Err(err(
                "drill",
                "boot",
                "a drill restores, so it needs the restore identity: set repository.identity"
                    .into(),
            ));
        }
        if let Some(r) = &self.retention {
            if !r.prune && (r.max_unused.is_some() || r.grace.is_some()) {
                let key = if r.max_unused.is_some() {
                    "max_unused"
                } else {
                    "grace"
                };
                return Err(err(
                    "retention",
                    key,
                    "is a prune option, but prune = false".into(),
                ));
            }
            if !r.has_rule() {
                return Err(err(
                    "retention",
                    "keep_last",
                    "give at least one keep_* rule: without one, forget would remove every snapshot"
                        .into(),
                ));
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for s in &self.sources {
            if names.contains(&s.name.as_str()) {
                return Err(err(
                    "source",
                    "name",
                    format!("two sources are named {:?}; names must differ", s.name),
                ));
            }
            names.push(&s.name);
            if s.paths.is_empty() {
                return Err(err(
                    "source",
                    "paths",
                    format!("source {:?} has no paths", s.name),
                ));
            }
        }
        Ok(())
    }
}

/// Line and column (1-based) of byte `offset`, and the dotted key written there: the
/// innermost `[table]` header above it joined with the key of its line.
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<usize>, Option<String>) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let this_line = text[line_start..].lines().next().unwrap_or("");
    let trimmed = this_line.trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(header_name);
    let key = if trimmed.starts_with('[') {
        Some(header_name(trimmed))
    } else {
        let k = trimmed.split('=').next().unwrap_or("").trim();
        match (table, k.is_empty()) {
            (_, true) => None,
            (Some(t), false) => Some(format!("{t}.{k}")),
            (None, false) => Some(k.to_string()),
        }
    };
    (Some(line), Some(column), key)
}

/// `[[source]]` → `source`, `[retention]` → `retention`.
fn header_name(line: &str) -> String {
    line.trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The line of `key =` inside `[table]` (or `[[table]]`), else of the table's header.
fn find_key(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    let mut header_line = None;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            current = header_name(l);
            if current == table && header_line.is_none() {
                header_line = Some(i + 1);
            }
        } else if current == table
            && l.split('=').next().map(str::trim) == Some(key)
            && l.contains('=')
        {
            return Some(i + 1);
        }
    }
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
state_dir = "/var/lib/vtool"

[repository]
url = "/srv/backups/node1"
backup_key = "/etc/vtool/backup.key"
identity = "/etc/vtool/restore.identity"

[[copy]]
to = "sftp://vtool@backup2/srv/node1"

[[source]]
name = "lighthouse"
paths = ["/var/lib/lighthouse"]
profile = "lighthouse"
pre = "systemctl stop lighthouse-vc"
post = "systemctl start lighthouse-vc"

[retention]
keep_daily = 7
keep_within = "2d"
grace = "24h"

[check]
packs_days = 30
read_data_days = 90

[drill]
every = "7d"
boot = [{ command = "true", expect = "" }]
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/vtool/vtool.toml"), text)
    }

    #[test]
    fn a_full_config_parses() {
        let c = parse(GOOD).expect("parses");
        assert_eq!(c.sources[0].name, "lighthouse");
        assert_eq!(c.copies[0].to, "sftp://vtool@backup2/srv/node1");
        assert_eq!(c.retention.as_ref().and_then(|r| r.keep_daily), Some(7));
        assert_eq!(c.drill.as_ref().map(|d| d.boot.len()), Some(1));
    }

    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\n")
            .expect("a toml block in the README")
            + 8;
        let len = readme[start..].find("```").expect("its end");
        let c = parse(&readme[start..start + len]).expect("the README's vtool.toml parses");
        assert_eq!(c.copies.len(), 2);
        assert!(c.retention.is_some() && c.drill.is_some() && c.ping.is_some());
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("keep_daily = 7", "keep_dialy = 7");
        let e = parse(&text).expect_err("refused");
        assert_eq!(e.file, Path::new("/etc/vtool/vtool.toml"));
        assert_eq!(e.line, Some(20));
        assert_eq!(e.key.as_deref(), Some("retention.keep_dialy"));
        assert!(e.message.contains("unknown field `keep_dialy`"), "{e}");
        assert!(
            e.to_string()
                .starts_with("/etc/vtool/vtool.toml:20:1: key `retention.keep_dialy`"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_type_names_the_key_too() {
        let text = GOOD.replace("packs_days = 30", "packs_days = \"monthly\"");
        let e = parse(&text).expect_err("refused");
        assert_eq!(e.line, Some(25));
        assert_eq!(e.key.as_deref(), Some("check.packs_days"));
    }

    #[test]
    fn a_bad_duration_is_refused_where_it_is() {
        let text = GOOD.replace("grace = \"24h\"", "grace = \"a day\"");
        let e = parse(&text).expect_err("refused");
        assert_eq!(e.line, Some(22));
        assert_eq!(e.key.as_deref(), Some("retention.grace"));
        assert!(e.message.contains("not a duration"), "{e}");
    }

    #[test]
    fn read_data_and_drills_need_the_identity() {
        let text = GOOD.replace("identity = \"/etc/vtool/restore.identity\"\n", "");
        let e = parse(&text).expect_err("refused");
        assert_eq!(e.key.as_deref(), Some("check.read_data_days"));
        assert_eq!(e.line, Some(25));
    }

    #[test]
    fn prune_options_without_prune_are_refused() {
        let text = GOOD.replace("grace = \"24h\"", "grace = \"24h\"\nprune = false");
        let e = parse(&text).expect_err("refused");
        assert_eq!(e.key.as_deref(), Some("retention.grace"));
        assert_eq!(e.line, Some(22));
    }

    #[test]
    fn retention_without_a_rule_is_refused() {
        let text = GOOD
            .replace("keep_daily = 7\n", "")
            .replace("keep_within = \"2d\"\n", "");
        let e = parse(&text).expect_err("refused");
        assert_eq!(e.key.as_deref(), Some("retention.keep_last"));
        assert_eq!(e.line, Some(19));
    }
}
