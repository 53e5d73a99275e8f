//! Proving that every keystore in a directory opens with its password, in parallel within a
//! memory budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::budget::{BudgetStats, MemoryBudget, DEFAULT_MEMORY_BUDGET};
use crate::discover::{find_keystores, DiscoverError, FoundKeystore, Layout};
use crate::keystore::Keystore;
use crate::password::{PasswordLookup, PasswordSource};
use crate::pubkeys::stated_pubkeys;

/// Outcome for one validator key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// The password opens the keystore (checksum matches).
    Ok,
    /// A password was found but does not match the checksum.
    WrongPassword,
    /// No password was found for this keystore.
    MissingPassword,
    /// A password file exists but cannot be used (unreadable, not UTF-8).
    PasswordUnreadable(String),
    /// The file is not a usable EIP-2335 keystore.
    Malformed(String),
    /// Another keystore (the given path, earlier in path order) holds the same pubkey; this one
    /// was not checked.
    DuplicatePubkey(PathBuf),
}

/// Result for one validator key (a prysm all-accounts file gives one per listed pubkey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// `0x`-prefixed lowercase pubkey, when known.
    pub pubkey: Option<String>,
    /// Keystore file.
    pub path: PathBuf,
    /// Layout the file was found in.
    pub layout: Layout,
    /// Outcome.
    pub status: KeyStatus,
}

/// Result of [`check_keystores`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// One entry per key, in keystore path order.
    pub keys: Vec<KeyReport>,
    /// The memory budget used, in bytes.
    pub memory_budget: u64,
    /// Peak concurrency and memory of the derivations.
    pub stats: BudgetStats,
}

impl CheckReport {
    /// True when there is at least one key and every key is [`KeyStatus::Ok`].
    pub fn all_ok(&self) -> bool {
        !self.keys.is_empty() && self.keys.iter().all(|k| k.status == KeyStatus::Ok)
    }

    /// Number of keys with [`KeyStatus::Ok`].
    pub fn ok_count(&self) -> usize {
        self.keys
            .iter()
            .filter(|k| k.status == KeyStatus::Ok)
            .count()
    }
}

/// Options of [`check_keystores`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// Where the passwords are.
    pub passwords: PasswordSource,
    /// Bytes of memory the concurrent key derivations may use together
    /// (default [`DEFAULT_MEMORY_BUDGET`], 1 GiB).
    pub memory_budget: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            passwords: PasswordSource::None,
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }
}

/// Finds the keystores under `dir` ([`find_keystores`]) and checks each password
/// ([`check_found_keystores`]).
pub fn check_keystores(dir: &Path, options: &CheckOptions) -> Result<CheckReport, DiscoverError> {
    let found = find_keystores(dir)?;
    Ok(check_found_keystores(&found, options))
}

/// One keystore file after parsing and duplicate detection.
struct Job<'a> {
    found: &'a FoundKeystore,
    keystore: Result<Keystore, String>,
    /// Pubkeys the file stands for, each with its duplicate-of path if any.
    keys: Vec<(Option<String>, Option<PathBuf>)>,
}

/// Checks the password of each keystore, at most `max(1, budget / cost)` derivations at once.
///
/// Keystores are parsed, then pubkeys are deduplicated in path order (a later copy of a pubkey is
/// reported [`KeyStatus::DuplicatePubkey`] and not derived), then the remaining checksums are
/// verified in parallel on the rayon pool.
pub fn check_found_keystores(found: &[FoundKeystore], options: &CheckOptions) -> CheckReport {
    let parsed: Vec<Result<Keystore, String>> = found
        .par_iter()
        .map(|f| Keystore::from_file(&f.path).map_err(|e| e.to_string()))
        .collect();

    let mut first_seen: HashMap<String, PathBuf> = HashMap::new();
    let mut jobs = Vec::with_capacity(found.len());
    for (f, keystore) in found.iter().zip(parsed) {
        let pubkeys = stated_pubkeys(f, keystore.as_ref().ok());
        let keys = pubkeys
            .into_iter()
            .map(|pk| {
                let dup = match (&pk, &keystore) {
                    (Some(pk), Ok(_)) => match first_seen.get(pk) {
                        Some(first) => Some(first.clone()),
                        None => {
                            first_seen.insert(pk.clone(), f.path.clone());
                            None
                        }
                    },
                    _ => None,
                };
                (pk, dup)
            })
            .collect();
        jobs.push(Job {
            found: f,
            keystore,
            keys,
        });
    }

    let budget = MemoryBudget::new(options.memory_budget);
    let statuses: Vec<KeyStatus> = jobs
        .par_iter()
        .map(|job| {
            if job.keys.iter().all(|(_, dup)| dup.is_some()) {
                // Every key is a duplicate: nothing to prove here.
                return KeyStatus::Ok;
            }
            prove(job, &options.passwords, &budget)
        })
        .collect();

    let mut keys = Vec::new();
    for (job, status) in jobs.into_iter().zip(statuses) {
        for (pubkey, dup) in job.keys {
            keys.push(KeyReport {
                pubkey,
                path: job.found.path.clone(),
                layout: job.found.layout,
                status: match dup {
                    Some(first) => KeyStatus::DuplicatePubkey(first),
                    None => status.clone(),
                },
            });
        }
    }
    CheckReport {
        keys,
        memory_budget: options.memory_budget,
        stats: budget.stats(),
    }
}

fn prove(job: &Job<'_>, passwords: &PasswordSource, budget: &MemoryBudget) -> KeyStatus {
    let keystore = match &job.keystore {
        Ok(ks) => ks,
        Err(reason) => return KeyStatus::Malformed(reason.clone()),
    };
    let pubkey = job.keys.first().and_then(|(pk, _)| pk.as_deref());
    let password = match passwords.lookup(pubkey, &job.found.path) {
        PasswordLookup::Found(pw) => pw,
        PasswordLookup::Missing => return KeyStatus::MissingPassword,
        PasswordLookup::Unreadable(reason) => return KeyStatus::PasswordUnreadable(reason),
    };
    let _permit = budget.acquire(keystore.memory_cost());
    match keystore.verify_password(&password) {
        Ok(true) => KeyStatus::Ok,
        Ok(false) => KeyStatus::WrongPassword,
        Err(e) => KeyStatus::Malformed(e.to_string()),
    }
}
