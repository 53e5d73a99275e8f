//! `vtool gate`, `vtool reports`, `vtool report show`, check records, `drill --prove-keys`
//! and the restore guard, against Beacon API doubles (no beacon node runs here) and real
//! EIP-2335 keystores, repositories and drills.

use crate::support;

use std::fs;

use serde_json::{json, Value};
use support::migration::{chain, Migration, ROOT};
use support::{s, text};
use vtool_testkit::beacon::{pubkey, validators, BeaconDouble, Scenario};

/// The check called `name` in a gate's JSON.
fn check<'a>(gate: &'a Value, name: &str) -> &'a Value {
    gate["gate"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {gate}"))
}

/// The check `name` failed, saying `why`.
fn assert_fails(gate: &Value, name: &str, why: &str) {
    let c = check(gate, name);
    assert_eq!(c["status"], "fail", "{c}");
    assert!(c["summary"].as_str().expect("summary").contains(why), "{c}");
}

fn statuses(gate: &Value) -> Vec<(String, String)> {
    gate["gate"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn all_good_passes_and_the_report_is_stored_authenticated() {
    let m = Migration::new(3);
    let (a, b) = (chain(3), chain(3));
    let evidence = m.env.path("gate.report");
    let (code, gate) = m.gate(&[&a, &b], &["--report", s(&evidence)]);
    assert_eq!(code, 0, "{gate:#}");
    // --report is the sealed object byte for byte, named by its hash.
    let written = fs::read(&evidence).expect("report file");
    let name = gate["report"].as_str().expect("name");
    assert_eq!(
        written,
        fs::read(m.env.path(&format!("repo/{name}"))).expect("stored")
    );
    assert_eq!(name, format!("reports/{}", blake3::hash(&written).to_hex()));
    assert_eq!(gate["passed"], true);
    for (name, status) in statuses(&gate) {
        assert_eq!(status, "pass", "{name}: {gate:#}");
    }
    let keys = gate["gate"]["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 3);
    for k in keys {
        assert_eq!(k["in_snapshot"], true);
        assert!(k["proven_by_drill"].is_string(), "{k}");
        assert_eq!(k["slashing"]["max_target_epoch"], 20);
        // One completed epoch on each of two nodes, offline.
        let seen = k["liveness"].as_array().expect("liveness");
        assert!(
            seen.len() >= 2 && seen.iter().all(|e| e["live"] == false),
            "{k}"
        );
    }
    assert!(gate["gate"]["finalized_epoch"].as_u64().expect("finalized") > 20);
    assert_eq!(
        gate["gate"]["interchange"]["blake3"],
        blake3::hash(&fs::read(m.slashing()).expect("read"))
            .to_hex()
            .as_str()
    );

    let (repo, bk) = (m.env.repo(), m.env.backup_key());
    let listed = m
        .env
        .json(&["reports", "--repo", &repo, "--backup-key", &bk, "--json"]);
    let rows = listed["records"].as_array().expect("records");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["authenticity"], "authentic");
    assert_eq!(rows[0]["name"], gate["report"]);
    let id = gate["report"]
        .as_str()
        .expect("name")
        .trim_start_matches("reports/");
    let md = m.env.ok(
        &[
            "report",
            "show",
            "--repo",
            &repo,
            "--backup-key",
            &bk,
            &id[..10],
        ],
        0,
    );
    assert!(md.starts_with("# vtool gate report: PASS"), "{md}");
    assert!(md.contains("| offline | pass |"), "{md}");
    let shown = m.env.json(&[
        "report",
        "show",
        "--repo",
        &repo,
        "--backup-key",
        &bk,
        id,
        "--format",
        "json",
    ]);
    assert_eq!(shown["passed"], true);
    assert_eq!(shown["authenticity"], "authentic");
}

#[test]
fn a_live_key_fails_the_gate_with_its_reason() {
    let m = Migration::new(2);
    let a = chain(2);
    // Validator 1 attests on the second node only.
    let b = BeaconDouble::start(Scenario::at_epoch(100, validators(2)).with_live(|_, i| i == 1));
    let (code, gate) = m.gate(&[&a, &b], &[]);
    assert_eq!(code, 1, "{gate:#}");
    assert_eq!(check(&gate, "offline")["status"], "fail");
    let live = gate["gate"]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["pubkey"] == pubkey(1))
        .expect("key 1");
    let problems = live["problems"].to_string();
    assert!(problems.contains(b.url()), "{problems}");
    assert!(problems.to_lowercase().contains("live"), "{problems}");
}

#[test]
fn a_key_missing_from_the_interchange_fails_before_any_epoch_wait() {
    let m = Migration::new(3);
    // The interchange of the first two keys only.
    let doc = json!({"metadata": {"interchange_format_version": "5", "genesis_validators_root": ROOT},
                     "data": [{"pubkey": pubkey(0), "signed_blocks": [], "signed_attestations": []},
                              {"pubkey": pubkey(1), "signed_blocks": [], "signed_attestations": []}]});
    fs::write(m.slashing(), doc.to_string()).expect("write");
    let a = chain(3);
    let (code, gate) = m.gate(&[&a], &[]);
    assert_eq!(code, 1, "{gate:#}");
    assert_fails(&gate, "slashing", "missing from the interchange");
    assert_eq!(check(&gate, "offline")["status"], "unknown");
    // Nothing was watched: no liveness request reached the node.
    assert!(a.liveness_requests().is_empty());
}

#[test]
fn a_validators_root_mismatch_fails() {
    let m = Migration::new(1);
    m.interchange(&format!("0x{}", "11".repeat(32)), &[]);
    let a = chain(1);
    let (code, gate) = m.gate(&[&a], &[]);
    assert_eq!(code, 1);
    assert_fails(&gate, "slashing", "validators root mismatch");
}

#[test]
fn a_slashable_interchange_fails() {
    let m = Migration::new(1);
    // A second vote for target 20 with another signing root: a double vote.
    m.interchange(
        ROOT,
        &[json!({"pubkey": pubkey(0), "signed_blocks": [],
                 "signed_attestations": [{"source_epoch": "18", "target_epoch": "20",
                                          "signing_root": format!("0x{}", "ab".repeat(32))}]})],
    );
    let a = chain(1);
    let (code, gate) = m.gate(&[&a], &[]);
    assert_eq!(code, 1);
    assert_fails(&gate, "slashing", "slashable");
}

#[test]
fn no_drill_and_no_check_fail_the_backup_proof() {
    let m = Migration::prepared(1, &[], false);
    let a = chain(1);
    let (code, gate) = m.gate(&[&a], &[]);
    assert_eq!(code, 1);
    assert_eq!(check(&gate, "backup")["status"], "pass");
    assert_eq!(check(&gate, "drill")["status"], "fail");
    assert_eq!(check(&gate, "keys")["status"], "fail");
    let copies = check(&gate, "copies");
    assert_eq!(copies["status"], "fail");
    assert!(
        copies["evidence"].to_string().contains("check --packs"),
        "{copies}"
    );
}

#[test]
fn a_stale_backup_fails() {
    let old = vtool_snapshot::format_time(
        vtool_snapshot::time::OffsetDateTime::now_utc() - vtool_snapshot::time::Duration::days(3),
    );
    let m = Migration::prepared(1, &["--time", &old], true);
    let a = chain(1);
    let (code, gate) = m.gate(&[&a], &["--max-age", "24h"]);
    assert_eq!(code, 1);
    assert_fails(&gate, "backup", "older than --max-age");
}

#[test]
fn finality_short_of_the_highest_target_fails() {
    let m = Migration::new(1);
    // The interchange signed up to target 5000; the chain finalized about 98.
    m.interchange(
        ROOT,
        &[json!({"pubkey": pubkey(0), "signed_blocks": [],
                 "signed_attestations": [{"source_epoch": "4999", "target_epoch": "5000"}]})],
    );
    let a = chain(1);
    let (code, gate) = m.gate(&[&a], &[]);
    assert_eq!(code, 1, "{gate:#}");
    assert_eq!(check(&gate, "offline")["status"], "pass", "{gate:#}");
    assert_fails(&gate, "finality", "not past epoch 5000");
}

#[test]
fn copies_need_their_own_check_record() {
    let m = Migration::new(1);
    let (repo, copy) = (m.env.repo(), m.env.path("copy").display().to_string());
    m.env.ok(&["copy", "--from", &repo, "--to", &copy], 0);
    let a = chain(1);
    // The copy carried the snapshot and the drill but not the repository's check record.
    let (code, gate) = m.gate(&[&a], &["--copy-repo", &copy]);
    assert_eq!(code, 1);
    let c = check(&gate, "copies");
    assert!(
        c["summary"].as_str().expect("s").starts_with("1 of 2"),
        "{c}"
    );
    // Checked where it is, it counts.
    m.check_packs(&copy);
    let (code, gate) = m.gate(&[&a], &["--copy-repo", &copy]);
    assert_eq!(code, 0, "{gate:#}");
    assert!(check(&gate, "copies")["summary"]
        .as_str()
        .expect("s")
        .starts_with("2 of 2"));
}

#[test]
fn restore_of_keystores_needs_a_gate_or_a_recorded_override() {
    let m = Migration::new(2);
    let target = m.env.path("new-host");
    let out = m
        .env
        .with_identity("restore", &["latest", "--target", s(&target)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no passing"), "{}", text(&out));
    assert!(
        !target.join("node/validators").exists(),
        "nothing was written"
    );

    // Without the keystores it goes ahead.
    let partial = m.env.path("partial");
    let out = m.env.with_identity(
        "restore",
        &[
            "latest",
            "--target",
            s(&partial),
            "--include",
            "node/secrets",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let a = chain(2);
    let (code, _) = m.gate(&[&a], &[]);
    assert_eq!(code, 0);
    let out = m
        .env
        .with_identity("restore", &["latest", "--target", s(&target)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for pk in &m.pubkeys {
        assert_eq!(
            fs::read(target.join(format!("node/validators/{pk}/voting-keystore.json")))
                .expect("restored"),
            fs::read(
                m.env
                    .path(&format!("node/validators/{pk}/voting-keystore.json"))
            )
            .expect("source")
        );
    }
}

#[test]
fn a_restore_without_a_gate_is_recorded_as_an_override() {
    let m = Migration::prepared(1, &[], false);
    let target = m.env.path("elsewhere");
    let out = m
        .env
        .with_identity("restore", &["latest", "--target", s(&target), "--no-gate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("without a gate"), "{}", text(&out));
    let (repo, id) = (m.env.repo(), m.env.identity());
    let listed = m
        .env
        .json(&["reports", "--repo", &repo, "--identity", &id, "--json"]);
    let r = &listed["records"][0];
    assert_eq!(r["kind"], "vtool-gate-override");
    assert_eq!(r["authenticity"], "authentic");
    assert_eq!(r["pubkeys"][0], m.pubkeys[0]);
    assert!(r["override_of"]
        .as_str()
        .expect("what")
        .contains("--no-gate"));
}

#[test]
fn check_records_are_sealed_per_location_and_drills_record_proven_keys() {
    let m = Migration::new(2);
    let (repo, id) = (m.env.repo(), m.env.identity());
    let drills = m
        .env
        .json(&["drills", "--repo", &repo, "--identity", &id, "--json"]);
    let mut proven: Vec<String> = drills["drills"][0]["proven_keys"]
        .as_array()
        .expect("proven")
        .iter()
        .map(|p| p.as_str().expect("pk").to_string())
        .collect();
    proven.sort();
    assert_eq!(proven, m.pubkeys);
    let checks: Vec<_> = fs::read_dir(m.env.path("repo/checks"))
        .expect("checks")
        .collect();
    assert_eq!(
        checks.len(),
        1,
        "one check record, from the one keyed check"
    );
    // A check without a key records nothing.
    m.env.ok(&["check", "--repo", &repo, "--packs"], 0);
    assert_eq!(
        fs::read_dir(m.env.path("repo/checks"))
            .expect("checks")
            .count(),
        1
    );

    // A wrong password fails the drill and proves nothing.
    fs::write(
        m.env.path(&format!("node/secrets/{}", m.pubkeys[0])),
        "wrong",
    )
    .expect("write");
    m.env.backup(&[s(&m.env.path("node"))]);
    let out = m.env.with_identity(
        "drill",
        &[
            "latest",
            "--prove-keys",
            "node/validators",
            "--passwords",
            "node/secrets",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["drill"]["passed"], false);
    assert!(v["drill"]["failure"]
        .as_str()
        .expect("why")
        .contains("did not open"));
}

#[test]
fn a_failed_report_turned_into_a_pass_is_forged_everywhere() {
    let m = Migration::new(1);
    m.interchange(&format!("0x{}", "11".repeat(32)), &[]);
    let a = chain(1);
    let (code, gate) = m.gate(&[&a], &[]);
    assert_eq!(code, 1);
    // The storage host flips the verdict and stores the object under its new hash.
    let name = gate["report"].as_str().expect("name");
    let stored = fs::read(m.env.path(&format!("repo/{name}"))).expect("read");
    let text_of = String::from_utf8(stored).expect("utf-8");
    let flipped = text_of.replacen("\"passed\": false", "\"passed\": true", 1);
    assert_ne!(flipped, text_of);
    fs::remove_file(m.env.path(&format!("repo/{name}"))).expect("rm");
    let hash = blake3::hash(flipped.as_bytes()).to_hex();
    fs::write(m.env.path(&format!("repo/reports/{hash}")), &flipped).expect("plant");

    let (repo, id) = (m.env.repo(), m.env.identity());
    let listed = m.env.json_with(
        &["reports", "--repo", &repo, "--identity", &id, "--json"],
        3,
    );
    assert_eq!(listed["records"][0]["authenticity"], "forged");
    let check = m
        .env
        .json_with(&["check", "--repo", &repo, "--identity", &id, "--json"], 3);
    assert!(
        check["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["kind"] == "record-auth"),
        "{check:#}"
    );
    let out = m
        .env
        .with_identity("restore", &["latest", "--target", s(&m.env.path("t"))]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a forged pass opens nothing: {}",
        text(&out)
    );
}
