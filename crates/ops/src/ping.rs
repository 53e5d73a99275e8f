//! healthchecks.io-style pings: `URL/start` when a run begins, `URL/<exit code>` when it
//! ends (0 is success, anything else a failure), with the run's summary as the body.
//!
//! A ping that fails is a warning, never a failed run: monitoring that cannot be reached
//! must not stop backups (it will notice the missing ping itself).

use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Pinger {
    url: String,
    agent: ureq::Agent,
}

impl Pinger {
    pub fn new(url: &str, timeout: Duration) -> Pinger {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .into();
        Pinger {
            url: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// Signal the start of a run; the warning to print when it did not arrive.
    pub fn start(&self) -> Result<(), String> {
        self.send(&format!("{}/start", self.url), "")
    }

    /// Signal the end of a run with its exit status.
    pub fn finish(&self, exit_code: i32, summary: &str) -> Result<(), String> {
        self.send(&format!("{}/{exit_code}", self.url), summary)
    }

    fn send(&self, url: &str, body: &str) -> Result<(), String> {
        self.agent
            .post(url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .send(body)
            .map(drop)
            .map_err(|e| format!("ping {url} failed: {e}"))
    }
}
