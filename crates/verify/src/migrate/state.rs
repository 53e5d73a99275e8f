//! The migration's state file: after every step, written atomically, so `--resume` after a
//! crash or a kill -9 goes on from the step recorded and repeats nothing destructive. The
//! steps that act on a client are recorded *before* they run (`deleting`, `importing`):
//! repeating a DELETE returns `not_active` and the same slashing data, repeating a POST
//! returns `duplicate`, and both are accepted only when resuming that very step.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const STATE_KIND: &str = "vtool-migration-state";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Pending,
    /// DELETE sent (or about to be) to the old client.
    Deleting,
    /// The old client stopped; its slashing data is saved.
    Deleted,
    /// Merged with the backup's, and finality passed its highest target.
    Finalized,
    /// The gate passed for the batch.
    Gated,
    /// Custody claimed for the new host.
    Claimed,
    /// POST sent (or about to be) to the new client.
    Importing,
    /// The new client took every key.
    Imported,
    /// Every key was seen live on the new side; the batch report is stored.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchState {
    pub step: Step,
    /// Files beside the state file: what the old client returned (exact bytes), the merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_slashing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_slashing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_report: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody_token: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_report: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationState {
    pub kind: String,
    pub version: u32,
    /// BLAKE3 of the plan file's bytes: a resume must use the very plan it started with.
    pub plan_blake3: String,
    pub batches: Vec<BatchState>,
    /// Why the last run stopped, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a migration state file: {1}")]
    Malformed(PathBuf, String),
    #[error("{0} exists: a migration with it is under way; pass --resume to go on with it")]
    InProgress(PathBuf),
    #[error("--resume: {0} does not exist; nothing to resume")]
    NothingToResume(PathBuf),
    #[error("{0} belongs to another plan; resume with the plan it started with")]
    OtherPlan(PathBuf),
}

impl MigrationState {
    /// A new state for `batches` batches, or the one at `path` when resuming.
    pub fn open(
        path: &Path,
        plan_blake3: &str,
        batches: usize,
        resume: bool,
    ) -> Result<MigrationState, StateError> {
        match (path.exists(), resume) {
            (true, false) => Err(StateError::InProgress(path.into())),
            (false, true) => Err(StateError::NothingToResume(path.into())),
            (false, false) => {
                let state = MigrationState {
                    kind: STATE_KIND.into(),
                    version: 1,
                    plan_blake3: plan_blake3.into(),
                    batches: vec![
                        BatchState {
                            step: Step::Pending,
                            old_slashing: None,
                            merged_slashing: None,
                            gate_report: None,
                            custody_token: None,
                            batch_report: None,
                        };
                        batches
                    ],
                    stopped: None,
                };
                state.save(path)?;
                Ok(state)
            }
            (true, true) => {
                let text = std::fs::read_to_string(path).map_err(|source| StateError::Io {
                    path: path.into(),
                    source,
                })?;
                let state: MigrationState = serde_json::from_str(&text)
                    .map_err(|e| StateError::Malformed(path.into(), e.to_string()))?;
                if state.kind != STATE_KIND || state.batches.len() != batches {
                    return Err(StateError::Malformed(
                        path.into(),
                        "not the state of this plan's batches".into(),
                    ));
                }
                if state.plan_blake3 != plan_blake3 {
                    return Err(StateError::OtherPlan(path.into()));
                }
                Ok(state)
            }
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| StateError::Malformed(path.into(), e.to_string()))?;
        vtool_transfer::write_atomic(path, &bytes).map_err(|source| StateError::Io {
            path: path.into(),
            source,
        })
    }
}
