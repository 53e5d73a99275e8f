//! The local state directory: when each step last ran and how it ended (`state.json`).
//!
//! Written after every step (atomically), so a run killed half-way keeps what it finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::OpsError;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// By step key (`backup:NAME`, `copy:TO`, `retention`, `check-packs`, …).
    #[serde(default)]
    pub steps: BTreeMap<String, StepState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepState {
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    pub duration_secs: f64,
    pub exit_code: i32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
}

pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: &Path) -> StateDir {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("run.lock")
    }

    /// The recorded state; empty when none was recorded yet.
    pub fn load(&self) -> Result<State, OpsError> {
        let path = self.file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| OpsError::State {
                path,
                reason: format!("{e} (delete it to start afresh: every step becomes due)"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(OpsError::io(&path, e)),
        }
    }

    /// Record that `key` ran.
    pub fn record(
        &self,
        key: &str,
        started: OffsetDateTime,
        duration_secs: f64,
        exit_code: i32,
    ) -> Result<(), OpsError> {
        let mut state = self.load()?;
        let last_success = if exit_code == 0 {
            Some(started)
        } else {
            state.steps.get(key).and_then(|s| s.last_success)
        };
        state.steps.insert(
            key.to_string(),
            StepState {
                started,
                duration_secs,
                exit_code,
                last_success,
            },
        );
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| OpsError::State {
            path: self.file(),
            reason: e.to_string(),
        })?;
        std::fs::create_dir_all(&self.dir).map_err(|e| OpsError::io(&self.dir, e))?;
        vtool_transfer::write_atomic(&self.file(), &bytes)
            .map_err(|e| OpsError::io(&self.file(), e))
    }
}
