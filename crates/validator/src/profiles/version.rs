//! Asking a client for its version.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Profile;

/// How long a version command may run.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// The client's version: the first non-empty output line of `version_cmd` (run through
/// `sh -c`, e.g. `docker exec geth geth version`), else of the profile's binary with its
/// version arguments when that binary is on `PATH`. `None` when nothing answers within
/// [`VERSION_TIMEOUT`] or the command fails.
pub fn client_version(profile: Option<&Profile>, version_cmd: Option<&str>) -> Option<String> {
    let mut cmd = if let Some(c) = version_cmd {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(c);
        cmd
    } else {
        let p = profile?;
        let bin = find_on_path(p.binary)?;
        let mut cmd = Command::new(bin);
        cmd.args(p.version_args);
        cmd
    };
    run_first_line(&mut cmd, VERSION_TIMEOUT)
}

fn find_on_path(binary: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(binary))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Run `cmd`, kill it after `timeout`; first non-empty line of stdout (or stderr, where some
/// clients print their version). `None` on a non-zero exit.
fn run_first_line(cmd: &mut Command, timeout: Duration) -> Option<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let mut stderr = child.stderr.take()?;
    // Read in threads so a chatty command cannot block on a full pipe.
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.by_ref().take(1 << 20).read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.by_ref().take(1 << 20).read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // A grandchild may keep the pipes open after a kill; do not wait for it then.
    let status = status?;
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        return None;
    }
    first_line(&out).or_else(|| first_line(&err))
}

fn first_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_command_first_line() {
        let v = client_version(None, Some("printf '\\n  Geth\\nVersion: 1.14.0\\n'"));
        assert_eq!(v.as_deref(), Some("Geth"));
        assert_eq!(client_version(None, Some("exit 3")), None);
        assert_eq!(client_version(None, Some("true")), None);
        let geth = super::super::find("geth").expect("geth");
        assert_eq!(geth.version_command(), "geth version");
    }

    #[test]
    fn version_command_times_out() {
        let started = Instant::now();
        assert_eq!(client_version(None, Some("exec sleep 30")), None);
        assert!(started.elapsed() < Duration::from_secs(15));
    }
}
