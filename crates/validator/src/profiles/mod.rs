//! Client profiles: what lives where in the data directory of each Ethereum execution client,
//! consensus/validator client and the Solana (Agave) validator; which of it is rebuildable
//! (resync, checkpoint sync, snapshot download) and which must never be lost (keys, secrets,
//! slashing protection, JWT secret, node key, config); which lock files a running client
//! holds; and how to ask the client for its version.
//!
//! ```
//! use vtool_validator::profiles::{self, Role};
//!
//! let geth = profiles::find("geth").expect("in the catalog");
//! assert_eq!(geth.classify("geth/chaindata/000005.ldb").map(|r| r.role), Some(Role::ChainDb));
//! assert!(geth.classify("keystore/UTC--2024").is_some_and(|r| !r.rebuildable));
//! let excludes = profiles::excludes_for(geth, std::path::Path::new("/var/lib/geth"), true);
//! assert!(excludes.contains(&"/var/lib/geth/geth/chaindata/**".to_string()));
//! ```
//!
//! Rules are globs relative to the profile's root (the data directory): `*` and `?` match
//! within one path component, `**` as a whole component matches any number of components.
//! The first matching rule classifies a path. Rebuildable rules never cover a must-keep path.

mod catalog;
mod detect;
mod live;
mod plan;
mod version;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use serde::Serialize;

pub use catalog::PROFILES;
pub use detect::{detect, DetectedProfile};
pub use live::{
    dev_major_minor, live_locks, live_locks_generic, lock_holder, parse_proc_locks, proc_locks,
    LiveLock, ProcLock,
};
pub use plan::{plan, BackupPlan, PlanError, Target};
pub use version::{client_version, VERSION_TIMEOUT};

/// What a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Ethereum execution-layer client.
    Execution,
    /// Ethereum consensus-layer (beacon) client.
    Consensus,
    /// Ethereum validator client (signs with the validator keys).
    Validator,
    /// Solana validator.
    Solana,
}

impl Kind {
    /// The name shown to users, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Execution => "execution",
            Kind::Consensus => "consensus",
            Kind::Validator => "validator",
            Kind::Solana => "solana",
        }
    }
}

/// What a group of paths is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The client's live database (LevelDB, RocksDB, Pebble, MDBX, LMDB, BoltDB, SQLite).
    ChainDb,
    /// Append-only data: geth's ancient freezer, reth static files, Erigon/Agave snapshots.
    Ancient,
    /// Encrypted signing keys (EIP-2335 keystores, geth accounts, Solana keypairs).
    Keystores,
    /// Passwords of the keystores.
    Secrets,
    /// Slashing-protection database (EIP-3076 data) or Solana tower.
    SlashingProtection,
    /// Engine API JWT secret shared by the execution and consensus clients.
    JwtSecret,
    /// P2P node identity.
    NodeKey,
    /// Configuration written or read by the client.
    Config,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ChainDb => "chain_db",
            Role::Ancient => "ancient",
            Role::Keystores => "keystores",
            Role::Secrets => "secrets",
            Role::SlashingProtection => "slashing_protection",
            Role::JwtSecret => "jwt_secret",
            Role::NodeKey => "node_key",
            Role::Config => "config",
        }
    }
}

/// A group of paths with one role.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PathRule {
    pub role: Role,
    /// Globs relative to the profile root.
    pub globs: &'static [&'static str],
    /// May be left out of a backup (`--skip-rebuildable`): the client rebuilds it by syncing.
    pub rebuildable: bool,
    /// Why, or what to know.
    pub note: &'static str,
}

/// One client's knowledge.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Profile {
    pub name: &'static str,
    /// The roles this client's data directory serves (a beacon node and its validator client
    /// often share one directory).
    pub kinds: &'static [Kind],
    pub description: &'static str,
    /// Detection: the directory is this client's root when every path of any one set exists.
    pub markers: &'static [&'static [&'static str]],
    pub rules: &'static [PathRule],
    /// Globs of files a running client holds locked (flock or POSIX/OFD fcntl locks).
    pub live_markers: &'static [&'static str],
    /// Binary asked for its version, and its arguments.
    pub binary: &'static str,
    pub version_args: &'static [&'static str],
}

impl Profile {
    /// The first rule matching `rel` (a path relative to the profile root, `/`-separated).
    pub fn classify(&self, rel: &str) -> Option<&'static PathRule> {
        let rules: &'static [PathRule] = self.rules;
        rules
            .iter()
            .find(|r| r.globs.iter().any(|g| glob_match(g, rel)))
    }

    /// Rules that may be skipped.
    pub fn rebuildable_rules(&self) -> impl Iterator<Item = &'static PathRule> {
        let rules: &'static [PathRule] = self.rules;
        rules.iter().filter(|r| r.rebuildable)
    }

    /// The command line that prints the version, e.g. `geth version`.
    pub fn version_command(&self) -> String {
        std::iter::once(self.binary)
            .chain(self.version_args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The profile called `name` (case-insensitive; `solana` is accepted for `agave`).
pub fn find(name: &str) -> Option<&'static Profile> {
    let name = name.trim().to_ascii_lowercase();
    let name = match name.as_str() {
        "solana" | "agave-validator" | "solana-validator" => "agave",
        "nimbus-eth2" | "nimbus_beacon_node" => "nimbus",
        other => other,
    };
    PROFILES.iter().find(|p| p.name == name)
}

/// Names of all profiles, in catalog order.
pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}

/// Absolute globs (for the backup engine's `excludes`) of what `profile` under `root` may
/// leave out. Empty unless `skip_rebuildable`. Each rebuildable rule `dir/**` excludes the
/// directory's contents (the empty directory itself is kept, with its owner and mode).
pub fn excludes_for(profile: &Profile, root: &Path, skip_rebuildable: bool) -> Vec<String> {
    if !skip_rebuildable {
        return Vec::new();
    }
    let base = escape_glob(&root.to_string_lossy());
    let base = base.trim_end_matches('/');
    let mut out = Vec::new();
    for rule in profile.rebuildable_rules() {
        for g in rule.globs {
            let abs = format!("{base}/{g}");
            if !out.contains(&abs) {
                out.push(abs);
            }
        }
    }
    out
}

/// Escape glob metacharacters of a literal path.
pub fn escape_glob(literal: &str) -> String {
    globset::escape(literal)
}

/// A profile glob compiled in the one dialect vtool uses everywhere (the backup engine's
/// excludes and restore's includes too): globset with `*` and `?` inside one component and
/// `**` as a whole component across any number of them.
pub fn glob(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()?
        .compile_matcher())
}

/// Match a relative `/`-separated path against a profile glob ([`glob`]'s dialect; `dir/**`
/// matches what is inside `dir`, not `dir` itself). An invalid pattern matches nothing.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    // Compiled once per pattern: live-lock scans match every file name of a node against
    // a handful of patterns, and compiling is far dearer than matching.
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<globset::GlobMatcher>>>> =
        LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    compiled
        .entry(pattern.to_string())
        .or_insert_with(|| glob(pattern).ok())
        .as_ref()
        .is_some_and(|m| m.is_match(path))
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Files and directories under `root` matching `pattern` (relative glob). Walks only where the
/// pattern can match; symlinks are not followed. Stops after `limit` results.
pub(crate) fn expand(root: &Path, pattern: &str, limit: usize) -> Vec<PathBuf> {
    let pat: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let mut out = Vec::new();
    expand_into(root, &pat, limit, &mut out);
    out.sort();
    out.dedup();
    out
}

fn expand_into(dir: &Path, pat: &[&str], limit: usize, out: &mut Vec<PathBuf>) {
    if out.len() >= limit {
        return;
    }
    let Some((first, rest)) = pat.split_first() else {
        return;
    };
    if *first == "**" {
        if rest.is_empty() {
            // Everything below.
            for child in list_dir(dir) {
                if out.len() >= limit {
                    return;
                }
                let is_dir = is_real_dir(&child);
                out.push(child.clone());
                if is_dir {
                    expand_into(&child, pat, limit, out);
                }
            }
            return;
        }
        expand_into(dir, rest, limit, out);
        for child in list_dir(dir) {
            if is_real_dir(&child) {
                expand_into(&child, pat, limit, out);
            }
        }
        return;
    }
    let candidates: Vec<PathBuf> = if has_wildcard(first) {
        list_dir(dir)
            .into_iter()
            .filter(|c| {
                c.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| glob_match(first, n))
            })
            .collect()
    } else {
        let p = dir.join(first);
        if std::fs::symlink_metadata(&p).is_ok() {
            vec![p]
        } else {
            Vec::new()
        }
    };
    for c in candidates {
        if rest.is_empty() {
            if out.len() < limit {
                out.push(c);
            }
        } else if is_real_dir(&c) {
            expand_into(&c, rest, limit, out);
        }
    }
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("geth/chaindata/**", "geth/chaindata/000001.ldb"));
        assert!(glob_match(
            "geth/chaindata/**",
            "geth/chaindata/ancient/chain/x"
        ));
        assert!(!glob_match("geth/chaindata/**", "geth/chaindata"));
        assert!(glob_match("validators/**/*.lock", "validators/a.lock"));
        assert!(glob_match(
            "validators/**/*.lock",
            "validators/0xab/k.json.lock"
        ));
        assert!(!glob_match(
            "validators/*.lock",
            "validators/0xab/k.json.lock"
        ));
        assert!(glob_match("tower-*.bin", "tower-1_9-abc.bin"));
        assert!(glob_match("jwt?hex", "jwt.hex"));
        assert!(!glob_match("jwt.hex", "jwt.hexx"));
    }

    #[test]
    fn eleven_profiles_with_unique_names() {
        let names = names();
        assert_eq!(names.len(), 11, "{names:?}");
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 11);
        for n in [
            "geth",
            "nethermind",
            "besu",
            "erigon",
            "reth",
            "lighthouse",
            "prysm",
            "teku",
            "nimbus",
            "lodestar",
            "agave",
        ] {
            assert!(find(n).is_some(), "{n}");
        }
        assert_eq!(find("Solana").map(|p| p.name), Some("agave"));
    }

    /// No literal must-keep path is covered by a rebuildable glob of the same profile, and
    /// keys, secrets, slashing protection, JWT secrets, node keys and config are never
    /// rebuildable.
    #[test]
    fn rebuildable_never_covers_must_keep() {
        for p in PROFILES {
            for keep in p.rules.iter().filter(|r| !r.rebuildable) {
                for g in keep.globs.iter().filter(|g| !has_wildcard(g)) {
                    for r in p.rebuildable_rules() {
                        for rg in r.globs {
                            assert!(
                                !glob_match(rg, g),
                                "{}: must-keep {g} is covered by rebuildable {rg}",
                                p.name
                            );
                        }
                    }
                    // The first matching rule of a literal keep path is a keep rule.
                    let first = p.classify(g).map(|r| r.rebuildable);
                    assert_eq!(first, Some(false), "{}: {g}", p.name);
                }
            }
            for r in p.rules {
                if !matches!(r.role, Role::ChainDb | Role::Ancient) {
                    assert!(!r.rebuildable, "{}: {:?} rebuildable", p.name, r.role);
                }
            }
        }
    }

    #[test]
    fn excludes_are_absolute_and_escaped() {
        let geth = find("geth").expect("geth");
        assert!(excludes_for(geth, Path::new("/d"), false).is_empty());
        let ex = excludes_for(geth, Path::new("/data/[node]"), true);
        assert!(
            ex.contains(&"/data/[[]node[]]/geth/chaindata/**".to_string()),
            "{ex:?}"
        );
        assert!(ex
            .iter()
            .all(|g| !g.contains("keystore") && !g.contains("jwt")));
    }
}
