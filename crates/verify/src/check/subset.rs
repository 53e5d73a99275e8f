//! Which slice of the packs the expensive levels check, and the `check/<blake3>` state
//! objects that rotate a percentage subset over several runs.

use std::fmt;
use std::str::FromStr;
use vtool_snapshot::FileType;

use rayon::prelude::*;
use vtool_snapshot::repofile::CheckState;
use vtool_transfer::{Backend, BackendError};

use super::{CheckError, CheckOptions, Checker, SubsetRun};

/// A slice of the packs for the expensive levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// Packs whose first id byte modulo `t` is `n - 1` (`1 <= n <= t <= 256`).
    Slice { n: u32, t: u32 },
    /// A rotating slice of `ceil(100 / pct)`, remembered in `check/` objects.
    Percent(f64),
}

impl Subset {
    /// Number of slices the packs are cut into.
    pub fn slices(&self) -> u32 {
        match *self {
            Subset::Slice { t, .. } => t,
            Subset::Percent(p) => (100.0 / p).ceil() as u32,
        }
    }
}

impl FromStr for Subset {
    type Err = CheckError;

    fn from_str(spec: &str) -> Result<Self, CheckError> {
        let bad = |reason: &str| CheckError::Subset {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if let Some(p) = spec.trim().strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| bad("expected a percentage such as 10%"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad("the percentage must be above 0 and at most 100"));
            }
            if (100.0 / p).ceil() > 256.0 {
                return Err(bad("at most 256 slices: use at least 0.4%"));
            }
            return Ok(Subset::Percent(p));
        }
        let (n, t) = spec
            .split_once('/')
            .ok_or_else(|| bad("expected PCT% (e.g. 10%) or n/t (e.g. 3/7)"))?;
        let n: u32 = n.trim().parse().map_err(|_| bad("n is not a number"))?;
        let t: u32 = t.trim().parse().map_err(|_| bad("t is not a number"))?;
        if t == 0 || t > 256 || n == 0 || n > t {
            return Err(bad("need 1 <= n <= t <= 256"));
        }
        Ok(Subset::Slice { n, t })
    }
}

impl fmt::Display for Subset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subset::Slice { n, t } => write!(f, "{n}/{t}"),
            Subset::Percent(p) => write!(f, "{p}%"),
        }
    }
}

const STATE_KIND: &str = "vtool-check-state";

fn save_state(backend: &dyn Backend, state: &CheckState) -> Result<String, String> {
    let data = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    let (_, name) = FileType::CheckState.name_of(&data);
    match backend.put(&name, &data) {
        Ok(()) | Err(BackendError::AlreadyExists(_)) => Ok(name),
        Err(e) => Err(e.to_string()),
    }
}

/// The newest state object of `mode`, if any.
fn newest_state(
    backend: &dyn Backend,
    mode: &str,
) -> Result<Option<(String, CheckState)>, CheckError> {
    let objects = backend.list(FileType::CheckState.dir())?;
    let states = objects
        .par_iter()
        .filter(|o| o.size < 64 * 1024)
        .map(|o| -> Result<Option<(String, CheckState)>, CheckError> {
            let data = match backend.get(&o.name) {
                Ok(d) => d,
                Err(BackendError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if !FileType::CheckState.named_right(&o.name, &data) {
                return Ok(None);
            }
            Ok(serde_json::from_slice::<CheckState>(&data)
                .ok()
                .filter(|s| s.kind == STATE_KIND && s.mode == mode)
                .map(|s| (o.name.clone(), s)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(states
        .into_iter()
        .flatten()
        .max_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0))))
}

impl Checker {
    /// Pick the slice of packs to re-hash or read, reading the rotation state if needed.
    pub(super) fn choose_slice(
        &mut self,
        opts: &CheckOptions,
    ) -> Result<Option<(u32, u32)>, CheckError> {
        let Some(subset) = opts.subset else {
            return Ok(None);
        };
        let t = subset.slices();
        let (n, previous) = match subset {
            Subset::Slice { n, .. } => (n, None),
            Subset::Percent(_) => match newest_state(self.backend.as_ref(), &self.report.level)? {
                Some((name, s)) if s.slices == t && s.slice >= 1 && s.slice <= t => {
                    (s.slice % t + 1, Some(name))
                }
                Some((name, _)) => (1, Some(name)),
                None => (1, None),
            },
        };
        self.report.subset = Some(SubsetRun {
            slice: n,
            slices: t,
            state_object: None,
            previous,
        });
        Ok(Some((n, t)))
    }

    /// Remember the slice a rotating percentage run checked, so the next run takes the next
    /// one. A failure to save is a note: it only means the slice is checked again.
    pub(super) fn record_slice(&mut self, opts: &CheckOptions, slice: Option<(u32, u32)>) {
        let (Some(Subset::Percent(_)), Some((n, t))) = (opts.subset, slice) else {
            return;
        };
        let previous = self.report.subset.as_ref().and_then(|s| s.previous.clone());
        let state = CheckState {
            kind: STATE_KIND.into(),
            version: 1,
            time: vtool_snapshot::time::OffsetDateTime::now_utc(),
            mode: self.report.level.clone(),
            slices: t,
            slice: n,
            packs_checked: self.report.checked_packs.len() as u64,
            problems: self.report.problems.len() as u64,
            previous,
        };
        match save_state(self.backend.as_ref(), &state) {
            Ok(name) => {
                if let Some(s) = self.report.subset.as_mut() {
                    s.state_object = Some(name);
                }
            }
            Err(e) => self.report.notes.push(format!(
                "could not record which slice was checked ({e}); the next run checks slice {n}/{t} again"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subsets() {
        assert_eq!(
            "3/7".parse::<Subset>().ok(),
            Some(Subset::Slice { n: 3, t: 7 })
        );
        assert_eq!("10%".parse::<Subset>().ok(), Some(Subset::Percent(10.0)));
        assert_eq!(Subset::Percent(30.0).slices(), 4);
        for bad in ["0/3", "4/3", "1/0", "1/257", "0%", "101%", "x", "0.1%", "%"] {
            assert!(bad.parse::<Subset>().is_err(), "{bad} accepted");
        }
    }
}
