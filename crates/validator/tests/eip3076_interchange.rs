//! The official EIP-3076 interchange test suite (fixtures/eip3076, v5.3.0): all 38 cases, under
//! the minimal strategy (`should_succeed`) and under complete history (`should_succeed_complete`
//! where present, else `should_succeed`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vtool_validator::slashing::{self, Interchange, PublicKey, Root, SlashingDb, Strategy};

#[derive(Deserialize)]
struct Case {
    name: String,
    genesis_validators_root: Root,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    should_succeed: bool,
    contains_slashable_data: bool,
    interchange: serde_json::Value,
    blocks: Vec<BlockCheck>,
    attestations: Vec<AttestationCheck>,
}

#[derive(Deserialize)]
struct BlockCheck {
    pubkey: PublicKey,
    #[serde(with = "slashing::interchange::decimal")]
    slot: u64,
    signing_root: Option<Root>,
    should_succeed: bool,
    should_succeed_complete: Option<bool>,
}

#[derive(Deserialize)]
struct AttestationCheck {
    pubkey: PublicKey,
    #[serde(with = "slashing::interchange::decimal")]
    source_epoch: u64,
    #[serde(with = "slashing::interchange::decimal")]
    target_epoch: u64,
    signing_root: Option<Root>,
    should_succeed: bool,
    should_succeed_complete: Option<bool>,
}

fn cases() -> Vec<(PathBuf, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/eip3076/generated");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/eip3076/generated")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read case");
            let case: Case =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, case)
        })
        .collect()
}

/// Runs one case; `Err` describes the first mismatch.
fn run(case: &Case, strategy: Strategy) -> Result<(), String> {
    let mut db = SlashingDb::new(case.genesis_validators_root, strategy);
    for (i, step) in case.steps.iter().enumerate() {
        let text = step.interchange.to_string();
        let imported = Interchange::from_json_str(&text)
            .map_err(|e| e.to_string())
            .and_then(|ic| db.import(&ic).map_err(|e| e.to_string()));
        if imported.is_ok() != step.should_succeed {
            return Err(format!(
                "step {i}: import gave {imported:?}, should_succeed = {}",
                step.should_succeed
            ));
        }
        if i == 0 && step.should_succeed {
            // Against an empty store, "slashable" means slashable within the file itself.
            let found = slashing::check(&text)
                .map_err(|e| e.to_string())?
                .has_slashable_data();
            if found != step.contains_slashable_data {
                return Err(format!(
                    "step {i}: check found slashable data = {found}, contains_slashable_data = {}",
                    step.contains_slashable_data
                ));
            }
        }
        for (j, b) in step.blocks.iter().enumerate() {
            let want = match strategy {
                Strategy::Minimal => b.should_succeed,
                Strategy::Complete => b.should_succeed_complete.unwrap_or(b.should_succeed),
            };
            let got = db.check_block(&b.pubkey, b.slot, b.signing_root);
            if got.is_ok() != want {
                return Err(format!(
                    "step {i} block {j} (slot {}, root {:?}): got {got:?}, expected success = {want}",
                    b.slot, b.signing_root
                ));
            }
        }
        for (j, a) in step.attestations.iter().enumerate() {
            let want = match strategy {
                Strategy::Minimal => a.should_succeed,
                Strategy::Complete => a.should_succeed_complete.unwrap_or(a.should_succeed),
            };
            let got =
                db.check_attestation(&a.pubkey, a.source_epoch, a.target_epoch, a.signing_root);
            if got.is_ok() != want {
                return Err(format!(
                    "step {i} attestation {j} ({}, {}, root {:?}): got {got:?}, expected success = {want}",
                    a.source_epoch, a.target_epoch, a.signing_root
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn all_interchange_cases_pass() {
    let cases = cases();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (path, case) in &cases {
        for strategy in [Strategy::Minimal, Strategy::Complete] {
            if let Err(e) = run(case, strategy) {
                failures.push(format!(
                    "{} ({strategy:?}, {}): {e}",
                    case.name,
                    path.display()
                ));
            }
        }
        ran += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(ran, 38, "the v5.3.0 suite has 38 cases");
}

/// Merging every successful import of a case and importing the result once refuses at least
/// everything the step-by-step minimal store refuses for the last step's messages.
#[test]
fn merge_is_at_least_as_safe_as_sequential_imports() {
    for (_, case) in cases() {
        let inputs: Vec<Interchange> = case
            .steps
            .iter()
            .filter(|s| s.should_succeed)
            .map(|s| Interchange::from_json_str(&s.interchange.to_string()).expect("valid"))
            .collect();
        if inputs.is_empty() {
            continue;
        }
        let merged = slashing::merge(&inputs).expect("merge");
        let mut one = SlashingDb::new(case.genesis_validators_root, Strategy::Minimal);
        one.import(&merged).expect("import merged");
        let mut seq = SlashingDb::new(case.genesis_validators_root, Strategy::Minimal);
        for ic in &inputs {
            seq.import(ic).expect("import");
        }
        if let Some(last) = case.steps.last() {
            for b in &last.blocks {
                let merged_ok = one
                    .clone()
                    .check_block(&b.pubkey, b.slot, b.signing_root)
                    .is_ok();
                let seq_ok = seq
                    .clone()
                    .check_block(&b.pubkey, b.slot, b.signing_root)
                    .is_ok();
                assert!(!merged_ok || seq_ok, "{}: block {}", case.name, b.slot);
            }
            for a in &last.attestations {
                let merged_ok = one
                    .clone()
                    .check_attestation(&a.pubkey, a.source_epoch, a.target_epoch, None)
                    .is_ok();
                let seq_ok = seq
                    .clone()
                    .check_attestation(&a.pubkey, a.source_epoch, a.target_epoch, None)
                    .is_ok();
                assert_eq!(
                    merged_ok,
                    seq_ok,
                    "{}: attestation {:?}",
                    case.name,
                    (a.source_epoch, a.target_epoch)
                );
            }
        }
    }
}
