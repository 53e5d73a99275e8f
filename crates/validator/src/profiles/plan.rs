//! A backup plan: which profile applies to which part of the backup paths, what that leaves
//! out, how the snapshot is labelled, and which locks say a client still runs on the data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    client_version, detect, excludes_for, find, live_locks, live_locks_generic, names, LiveLock,
    Profile,
};

/// A backup path and the profile applied to (part of) it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub path: PathBuf,
    #[serde(serialize_with = "profile_name")]
    pub profile: Option<&'static Profile>,
    /// The directory the profile's rules are relative to.
    pub root: PathBuf,
    /// Found by detection (not forced by the caller).
    pub detected: bool,
}

fn profile_name<S: serde::Serializer>(
    p: &Option<&'static Profile>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(p.name),
        None => s.serialize_none(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("unknown profile {name:?}; known profiles: {known}")]
    UnknownProfile { name: String, known: String },
    #[error("bad path {path}: {error}")]
    BadPath {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What profiles make of a backup.
#[derive(Debug, Clone)]
pub struct BackupPlan {
    pub targets: Vec<Target>,
    /// Globs of what `skip_rebuildable` leaves out (empty without it).
    pub excludes: Vec<String>,
    /// The profiles applied, each once, in the order found.
    pub profiles: Vec<&'static Profile>,
    pub skip_rebuildable: bool,
}

/// Apply `profile` (a name) to every path, or detect the profiles of each path.
pub fn plan(
    paths: &[PathBuf],
    profile: Option<&str>,
    skip_rebuildable: bool,
) -> Result<BackupPlan, PlanError> {
    let forced = match profile {
        Some(name) => Some(find(name).ok_or_else(|| PlanError::UnknownProfile {
            name: name.to_string(),
            known: names().join(", "),
        })?),
        None => None,
    };
    let mut targets = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|error| PlanError::BadPath {
            path: p.clone(),
            error,
        })?;
        if let Some(profile) = forced {
            targets.push(Target {
                path: abs.clone(),
                profile: Some(profile),
                root: abs,
                detected: false,
            });
            continue;
        }
        let found = detect(&abs);
        if found.is_empty() {
            targets.push(Target {
                path: abs.clone(),
                profile: None,
                root: abs.clone(),
                detected: false,
            });
        }
        targets.extend(found.into_iter().map(|d| Target {
            path: abs.clone(),
            profile: Some(d.profile),
            root: d.root,
            detected: true,
        }));
    }
    let mut excludes = Vec::new();
    let mut profiles = Vec::new();
    for t in &targets {
        let Some(p) = t.profile else { continue };
        for g in excludes_for(p, &t.root, skip_rebuildable) {
            if !excludes.contains(&g) {
                excludes.push(g);
            }
        }
        if !profiles.iter().any(|q: &&Profile| q.name == p.name) {
            profiles.push(p);
        }
    }
    Ok(BackupPlan {
        targets,
        excludes,
        profiles,
        skip_rebuildable,
    })
}

impl BackupPlan {
    /// The `profile` label: the profile names, comma-separated.
    pub fn profile_label(&self) -> Option<String> {
        let names: Vec<&str> = self.profiles.iter().map(|p| p.name).collect();
        (!names.is_empty()).then(|| names.join(","))
    }

    /// Snapshot labels: the profiles, the client version and whether rebuildable data was
    /// left out.
    pub fn labels(&self, client_version: Option<&str>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        if let Some(p) = self.profile_label() {
            labels.insert("profile".to_string(), p);
        }
        if let Some(v) = client_version {
            labels.insert("client_version".to_string(), v.to_string());
        }
        labels.insert(
            "skip_rebuildable".to_string(),
            self.skip_rebuildable.to_string(),
        );
        labels
    }

    /// The clients' versions: `version_cmd`'s output when given, else each profile's binary
    /// asked in turn (`name: version; ...` when there are several).
    pub fn client_version(&self, version_cmd: Option<&str>) -> Option<String> {
        let profiles = &self.profiles;
        if let Some(cmd) = version_cmd {
            return client_version(profiles.first().copied(), Some(cmd));
        }
        let versions: Vec<(&str, String)> = profiles
            .iter()
            .filter_map(|p| client_version(Some(p), None).map(|v| (p.name, v)))
            .collect();
        match versions.as_slice() {
            [] => None,
            [(_, v)] => Some(v.clone()),
            many => Some(
                many.iter()
                    .map(|(n, v)| format!("{n}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }

    /// Locks held on the data now: profile markers and generic lock files, except inside
    /// what `skip_rebuildable` leaves out. A backup taken while one is held may not be
    /// consistent.
    pub fn live_locks(&self) -> Vec<LiveLock> {
        let mut locks: Vec<LiveLock> = Vec::new();
        let mut seen_paths: Vec<&Path> = Vec::new();
        for t in &self.targets {
            if let Some(p) = t.profile {
                locks.extend(live_locks(p, &t.root));
            }
            if !seen_paths.contains(&t.path.as_path()) {
                seen_paths.push(&t.path);
                locks.extend(live_locks_generic(&t.path));
            }
        }
        locks.sort_by(|a, b| a.path.cmp(&b.path));
        locks.dedup_by(|a, b| a.path == b.path);
        if self.skip_rebuildable {
            locks.retain(|l| !self.left_out(&l.path));
        }
        locks
    }

    /// [`BackupPlan::live_locks`], polled for up to `wait` until none is held (a pre hook
    /// stopping the client takes a moment to release them).
    pub fn live_locks_after(&self, wait: std::time::Duration) -> Vec<LiveLock> {
        let deadline = std::time::Instant::now() + wait;
        let mut locks = self.live_locks();
        while !locks.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
            locks = self.live_locks();
        }
        locks
    }

    /// Labels of a snapshot taken although `locks` were held: it may not be consistent.
    pub fn live_lock_labels(locks: &[LiveLock]) -> BTreeMap<String, String> {
        let paths: Vec<String> = locks.iter().map(|l| l.path.display().to_string()).collect();
        BTreeMap::from([
            ("consistency".to_string(), "live-locks-ignored".to_string()),
            ("live_locks".to_string(), paths.join(",")),
        ])
    }

    /// Is `path` inside a rebuildable rule of a profile (left out by `skip_rebuildable`)?
    fn left_out(&self, path: &Path) -> bool {
        self.targets.iter().any(|t| {
            let (Some(p), Ok(rel)) = (t.profile, path.strip_prefix(&t.root)) else {
                return false;
            };
            p.classify(&rel.to_string_lossy())
                .is_some_and(|r| r.rebuildable)
        })
    }
}

impl LiveLock {
    /// One line saying who holds it.
    pub fn describe(&self) -> String {
        match &self.holder {
            Some(h) => format!(
                "{} is locked by process {h} [{}]",
                self.path.display(),
                self.lock_type
            ),
            None => format!(
                "{} is locked by another process [{}; no pid known]",
                self.path.display(),
                self.lock_type
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_profile_gives_its_excludes_and_labels() {
        let dir = PathBuf::from("/var/lib/node");
        let plan = plan(std::slice::from_ref(&dir), Some("geth"), true).expect("plan");
        assert_eq!(plan.profile_label().as_deref(), Some("geth"));
        assert!(!plan.targets[0].detected);
        assert!(plan
            .excludes
            .contains(&"/var/lib/node/geth/chaindata/**".to_string()));
        let labels = plan.labels(Some("Geth/v1.14"));
        assert_eq!(labels["profile"], "geth");
        assert_eq!(labels["client_version"], "Geth/v1.14");
        assert_eq!(labels["skip_rebuildable"], "true");

        let keep = super::plan(&[dir], Some("geth"), false).expect("plan");
        assert!(keep.excludes.is_empty());
    }

    #[test]
    fn an_unknown_profile_names_the_known_ones() {
        let err = plan(&[PathBuf::from("/x")], Some("gethh"), false).expect_err("unknown");
        assert!(err.to_string().contains("geth"), "{err}");
    }
}
