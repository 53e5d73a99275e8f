//! What a backup holds that forget must never lose: validator keys, by pubkey, and
//! slashing-protection databases, by path. A key that left the node stays restorable from
//! the newest snapshot that still holds it.

use std::path::Path;

use crate::discover::find_keystores;
use crate::keystore::Keystore;
use crate::profiles::BackupPlan;
use crate::profiles::Role;

/// `keystore:0x<pubkey>` for every keystore under the plan's paths and `slashing:<path>`
/// for every file a profile knows as slashing protection, sorted. Unreadable keystores
/// count by the pubkey their directory names, if any.
pub fn holdings(plan: &BackupPlan) -> Vec<String> {
    let mut out = Vec::new();
    for target in &plan.targets {
        if target.path.is_dir() {
            for found in find_keystores(&target.path).unwrap_or_default() {
                let pubkeys = match Keystore::from_file(&found.path) {
                    Ok(k) => k.pubkey.into_iter().chain(k.pubkeys).collect(),
                    Err(_) => found.dir_pubkey.into_iter().collect::<Vec<_>>(),
                };
                out.extend(pubkeys.into_iter().map(|p| format!("keystore:{p}")));
            }
        }
        if let Some(profile) = target.profile {
            walk(&target.root, &target.root, &mut |rel, path| {
                if profile
                    .classify(rel)
                    .is_some_and(|r| r.role == Role::SlashingProtection)
                {
                    out.push(format!("slashing:{}", path.display()));
                }
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every regular file under `dir` with its path relative to `root` (`/`-separated),
/// without following symbolic links.
fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&str, &Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(root, &path, f);
        } else if kind.is_file() {
            if let Some(rel) = path.strip_prefix(root).ok().and_then(|r| r.to_str()) {
                f(rel, &path);
            }
        }
    }
}
