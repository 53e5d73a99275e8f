//! Running one boot command of a drill against a restored directory.
//!
//! The command runs as `sh -c CMD` in the restored directory, `{dir}` replaced by the
//! directory (shell-quoted) and `VTOOL_DRILL_DIR` set to it, in its own process group so a
//! timeout kills everything it started, not just the shell.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use vtool_snapshot::repofile::DrillCommand;

/// How much output is kept for `--expect` to match against.
const MATCH_WINDOW: usize = 1 << 20;
/// How much output a drill record keeps.
const RECORD_TAIL: usize = 4096;

/// One `--boot` command.
#[derive(Debug, Clone)]
pub struct BootCommand {
    /// Shell command; `{dir}` stands for the restored directory.
    pub command: String,
    pub timeout: Duration,
    /// Must match somewhere in the command's output (stdout and stderr) for it to pass.
    pub expect: Option<regex::Regex>,
}

/// Compile an `expect` pattern: `^` and `$` match at line boundaries, since stdout and
/// stderr lines arrive interleaved in any order.
pub fn expect_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern).multi_line(true).build()
}

/// Quote `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Keeps the last `MATCH_WINDOW` bytes of a stream.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
        if self.0.len() > 2 * MATCH_WINDOW {
            let cut = self.0.len() - MATCH_WINDOW;
            self.0.drain(..cut);
        }
    }

    fn text(&self) -> String {
        let start = self.0.len().saturating_sub(MATCH_WINDOW);
        String::from_utf8_lossy(&self.0[start..]).into_owned()
    }
}

fn pump(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Tail>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut t) = into.lock() {
                t.push(&buf[..n]);
            }
        }
    })
}

/// The last `RECORD_TAIL` bytes of `text`, cut at a character boundary.
fn record_tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(RECORD_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// Run `boot` against `dir`; never fails, the outcome is in the returned record.
pub fn run_boot(boot: &BootCommand, dir: &Path) -> DrillCommand {
    let dir_text = dir.to_string_lossy();
    let expanded = boot.command.replace("{dir}", &shell_quote(&dir_text));
    let mut record = DrillCommand {
        command: boot.command.clone(),
        expect: boot.expect.as_ref().map(|r| r.as_str().to_string()),
        ran: true,
        ..Default::default()
    };
    let start = Instant::now();
    let child = Command::new("sh")
        .arg("-c")
        .arg(&expanded)
        .current_dir(dir)
        .env("VTOOL_DRILL_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            record.output_tail = format!("cannot start sh: {e}");
            return record;
        }
    };
    let tail = Arc::new(Mutex::new(Tail::default()));
    let pumps: Vec<_> = [
        child.stdout.take().map(|s| pump(s, tail.clone())),
        child.stderr.take().map(|s| pump(s, tail.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let group = Pid::from_raw(child.id() as i32);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= boot.timeout => {
                record.timed_out = true;
                let _ = killpg(group, Signal::SIGKILL);
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    // Whatever the command left running in the background would hold the output pipes
    // open (and the restored files busy); a drill's programs do not outlive it.
    let _ = killpg(group, Signal::SIGKILL);
    for p in pumps {
        let _ = p.join();
    }
    record.duration_secs = start.elapsed().as_secs_f64();
    let output = tail.lock().map(|t| t.text()).unwrap_or_default();
    record.exit_code = if record.timed_out {
        None
    } else {
        status.and_then(|s| s.code())
    };
    record.expect_matched = boot.expect.as_ref().map(|r| r.is_match(&output));
    record.passed = record.exit_code == Some(0) && record.expect_matched != Some(false);
    record.output_tail = record_tail(&output);
    record
}

/// One line saying why a command did not pass.
pub fn why_failed(c: &DrillCommand) -> String {
    if !c.ran {
        "did not run".into()
    } else if c.timed_out {
        format!("timed out after {:.1} s", c.duration_secs)
    } else if c.exit_code != Some(0) {
        match c.exit_code {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".into(),
        }
    } else if c.expect_matched == Some(false) {
        format!(
            "output did not match {:?}",
            c.expect.as_deref().unwrap_or_default()
        )
    } else {
        "passed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(cmd: &str, timeout_ms: u64, expect: Option<&str>) -> BootCommand {
        BootCommand {
            command: cmd.into(),
            timeout: Duration::from_millis(timeout_ms),
            expect: expect.map(|e| expect_pattern(e).expect("regex")),
        }
    }

    #[test]
    fn dir_is_substituted_quoted_and_output_matched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("it's here");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("marker"), "ok").expect("write");
        let c = run_boot(
            &boot(
                "cat {dir}/marker; echo \" in $PWD\" >&2",
                10_000,
                Some("^ok"),
            ),
            &dir,
        );
        assert!(c.passed, "{c:?}");
        assert_eq!(c.exit_code, Some(0));
        assert!(c.output_tail.contains("it's here"), "{}", c.output_tail);
    }

    #[test]
    fn failures_are_told_apart() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let exit = run_boot(&boot("echo broken; exit 7", 10_000, None), tmp.path());
        assert!(!exit.passed);
        assert_eq!(exit.exit_code, Some(7));
        assert_eq!(why_failed(&exit), "exited with status 7");

        let nomatch = run_boot(&boot("echo fine", 10_000, Some("^ok$")), tmp.path());
        assert!(!nomatch.passed);
        assert_eq!(nomatch.expect_matched, Some(false));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let start = Instant::now();
        // The background sleep holds stdout open: only killing the group lets this return.
        let c = run_boot(&boot("sleep 30 & sleep 30", 300, None), tmp.path());
        assert!(c.timed_out && !c.passed, "{c:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
