//! Recognising a client's data directory by its marker files.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{expand, Profile, PROFILES};

/// A profile found in (or directly below) a directory.
#[derive(Debug, Clone, Serialize)]
pub struct DetectedProfile {
    #[serde(serialize_with = "profile_name")]
    pub profile: &'static Profile,
    /// The directory the profile's rules are relative to.
    pub root: PathBuf,
    /// The marker paths (relative to `root`) that matched.
    pub markers: Vec<String>,
}

fn profile_name<S: serde::Serializer>(p: &&'static Profile, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name)
}

/// Profiles whose markers exist in `dir` itself, then in its direct subdirectories (a node
/// directory holding e.g. `geth/` and `lighthouse/`). A profile found in `dir` itself is not
/// reported again for a subdirectory. A file or a missing path yields nothing.
pub fn detect(dir: &Path) -> Vec<DetectedProfile> {
    let mut found = detect_here(dir);
    let Ok(read) = std::fs::read_dir(dir) else {
        return found;
    };
    let mut subdirs: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    let here: Vec<&str> = found.iter().map(|d| d.profile.name).collect();
    let mut below = Vec::new();
    for sub in subdirs {
        for d in detect_here(&sub) {
            if !here.contains(&d.profile.name) {
                below.push(d);
            }
        }
    }
    found.extend(below);
    found
}

/// Profiles whose markers exist directly in `dir`.
fn detect_here(dir: &Path) -> Vec<DetectedProfile> {
    if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in PROFILES {
        let mut matched = Vec::new();
        for set in p.markers {
            if set.iter().all(|m| !expand(dir, m, 1).is_empty()) {
                matched.extend(set.iter().map(|m| m.to_string()));
            }
        }
        if !matched.is_empty() {
            matched.dedup();
            out.push(DetectedProfile {
                profile: p,
                root: dir.to_path_buf(),
                markers: matched,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, b"x").expect("write");
    }

    fn names(dir: &Path) -> Vec<&'static str> {
        detect(dir).iter().map(|d| d.profile.name).collect()
    }

    fn layout(files: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        for f in files {
            if let Some(d) = f.strip_suffix('/') {
                fs::create_dir_all(t.path().join(d)).expect("mkdir");
            } else {
                touch(t.path(), f);
            }
        }
        t
    }

    #[test]
    fn geth_datadir_and_inner_dir() {
        let t = layout(&[
            "geth/chaindata/CURRENT",
            "geth/chaindata/LOCK",
            "geth/chaindata/ancient/chain/bodies.cidx",
            "geth/nodekey",
            "geth/jwtsecret",
            "keystore/UTC--x",
        ]);
        assert_eq!(names(t.path()), vec!["geth"]);
        let d = detect(t.path());
        assert_eq!(d[0].root, t.path());
        // The inner directory alone.
        assert_eq!(names(&t.path().join("geth")), vec!["geth"]);
    }

    #[test]
    fn fixture_node_has_geth_and_lighthouse() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sample-node");
        if fixture.is_dir() {
            let d = detect(&fixture);
            let n: Vec<_> = d.iter().map(|d| d.profile.name).collect();
            assert!(n.contains(&"geth") && n.contains(&"lighthouse"), "{n:?}");
        }
    }

    #[test]
    fn consensus_clients() {
        let lh = layout(&[
            "beacon/chain_db/CURRENT",
            "validators/validator_definitions.yml",
            "validators/slashing_protection.sqlite",
        ]);
        assert_eq!(names(lh.path()), vec!["lighthouse"]);
        let lh_vc = layout(&["validators/slashing_protection.sqlite"]);
        assert_eq!(names(lh_vc.path()), vec!["lighthouse"]);

        let prysm = layout(&["beaconchaindata/beaconchain.db", "metaData"]);
        assert_eq!(names(prysm.path()), vec!["prysm"]);

        let teku = layout(&[
            "beacon/db.version",
            "beacon/db/LOCK",
            "validator/slashprotection/",
        ]);
        assert_eq!(names(teku.path()), vec!["teku"]);

        let nimbus = layout(&[
            "db/nbc.sqlite3",
            "validators/0xab/keystore.json",
            "secrets/0xab",
        ]);
        assert_eq!(names(nimbus.path()), vec!["nimbus"]);

        let lodestar = layout(&["chain-db/LOCK", "peer-id.json"]);
        assert_eq!(names(lodestar.path()), vec!["lodestar"]);
    }

    #[test]
    fn execution_clients_and_agave() {
        let reth = layout(&["db/mdbx.dat", "db/mdbx.lck", "static_files/", "reth.toml"]);
        assert_eq!(names(reth.path()), vec!["reth"]);
        // mdbx.dat without static_files is not reth.
        let not_reth = layout(&["db/mdbx.dat"]);
        assert!(names(not_reth.path()).is_empty());

        let erigon = layout(&[
            "chaindata/mdbx.dat",
            "snapshots/v1-000000-000500-headers.seg",
        ]);
        assert_eq!(names(erigon.path()), vec!["erigon"]);

        let nm = layout(&[
            "nethermind_db/mainnet/state/LOCK",
            "keystore/node.key.plain",
        ]);
        assert_eq!(names(nm.path()), vec!["nethermind"]);

        let besu = layout(&["database/LOCK", "DATABASE_METADATA.json", "key"]);
        assert_eq!(names(besu.path()), vec!["besu"]);

        let agave = layout(&["ledger/rocksdb/LOCK", "validator-keypair.json"]);
        assert_eq!(names(agave.path()), vec!["agave"]);
        let ledger = layout(&["rocksdb/CURRENT", "genesis.bin", "tower-1_9-abc.bin"]);
        assert_eq!(names(ledger.path()), vec!["agave"]);
    }

    #[test]
    fn node_directory_with_several_clients() {
        let t = layout(&[
            "execution/geth/chaindata/CURRENT",
            "consensus/beacon/chain_db/CURRENT",
            "consensus/validators/validator_definitions.yml",
        ]);
        let d = detect(t.path());
        let got: Vec<(&str, PathBuf)> =
            d.iter().map(|d| (d.profile.name, d.root.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("lighthouse", t.path().join("consensus")),
                ("geth", t.path().join("execution")),
            ]
        );
        assert!(detect(&t.path().join("missing")).is_empty());
    }
}
