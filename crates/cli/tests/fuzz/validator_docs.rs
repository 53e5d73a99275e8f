//! Validator documents vtool reads from disk and from restored snapshots: EIP-3076
//! slashing-protection interchange and EIP-2335 keystores.

use std::fs;
use std::path::{Path, PathBuf};

use vtool_validator::slashing::{self, Interchange, SlashingDb, Strategy};
use vtool_validator::Keystore;

use super::{fuzz, inputs};

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(dir)
}

/// Every interchange document of the official EIP-3076 test suite.
fn interchange_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for e in fs::read_dir(fixtures("eip3076/generated")).expect("fixtures/eip3076") {
        let text = fs::read(e.expect("entry").path()).expect("read");
        let case: serde_json::Value = serde_json::from_slice(&text).expect("test case");
        for step in case["steps"].as_array().into_iter().flatten() {
            seeds.push(serde_json::to_vec(&step["interchange"]).expect("json"));
        }
    }
    assert!(!seeds.is_empty());
    seeds
}

pub fn interchange() {
    fuzz("interchange", inputs(interchange_seeds()), |data| {
        let text = String::from_utf8_lossy(&data.0);
        let _ = slashing::check(&text);
        let Ok(parsed) = Interchange::from_json_str(&text) else {
            return Ok(false);
        };
        {
            let _ = slashing::merge(&[parsed.clone(), parsed.clone()]);
            let _ = slashing::subset(&parsed, &parsed.pubkeys());
            for strategy in [Strategy::Minimal, Strategy::Complete] {
                let mut db = SlashingDb::new(parsed.metadata.genesis_validators_root, strategy);
                let _ = db.import(&parsed);
                let _ = db.export().to_json_string();
            }
        }
        Ok(true)
    });
}

pub fn keystore() {
    let seeds: Vec<Vec<u8>> = ["pbkdf2-keystore.json", "scrypt-keystore.json"]
        .iter()
        .map(|f| fs::read(fixtures("eip2335").join(f)).expect("keystore fixture"))
        .collect();
    fuzz("keystore", inputs(seeds), |data| {
        // Parsing and sizing only: running a hostile KDF is bounded by the memory budget
        // elsewhere, and a real one takes a second per case.
        let parsed = Keystore::from_json_str(&String::from_utf8_lossy(&data.0));
        if let Ok(k) = &parsed {
            let _ = k.memory_cost();
        }
        Ok(parsed.is_ok())
    });
}
