//! `vtool liveness` against the testkit's Beacon API double: a chain of 1 s slots and 4-slot
//! epochs that has just entered epoch 10, so the watch asks about epoch 9 after 3 s and about
//! one more epoch every 4 s.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use vtool_testkit::beacon::{
    pubkey, unreachable_url, validators, BeaconDouble, Behaviour, Endpoint, Scenario,
};

use crate::support::{engines, s, text, VTOOL};

fn chain() -> Scenario {
    Scenario::at_epoch(10, validators(3))
}

/// The same chain with every validator offline, for a second node.
fn chain_of(c: &Scenario) -> Scenario {
    c.clone().with_live(|_, _| false)
}

fn vtool(args: &[&str]) -> Output {
    Command::new(VTOOL)
        .arg("liveness")
        .args(["--beacon-timeout", "2s"])
        .args(args)
        .output()
        .expect("run vtool")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// `(node, epoch, kind)` of every reason of key `k` in a JSON report.
fn reasons(report: &Value, k: usize) -> Vec<(String, Value, String)> {
    report["keys"][k]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap_or_default().to_string(),
                r["epoch"].clone(),
                r["reason"]["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Lighthouse-layout keystores for validators 0..n under `dir`.
fn keystores(dir: &Path, n: u64) {
    for i in 0..n {
        let key_dir = dir.join(pubkey(i));
        std::fs::create_dir_all(&key_dir).expect("mkdir");
        std::fs::write(
            key_dir.join("voting-keystore.json"),
            engines::keystore(&pubkey(i), "password"),
        )
        .expect("write keystore");
    }
}

fn assert_one_liveness_request_per_epoch(node: &BeaconDouble) {
    let per_epoch = node.liveness_requests();
    assert!(!per_epoch.is_empty());
    assert!(per_epoch.values().all(|&n| n == 1), "{per_epoch:?}");
    assert_eq!(node.requests(Endpoint::Liveness), per_epoch.len());
}

#[test]
fn all_keys_offline_on_two_nodes_is_proven() {
    let c = chain();
    let (a, b) = (BeaconDouble::start(c.clone()), BeaconDouble::start(c));
    let dir = tempfile::tempdir().expect("tempdir");
    keystores(dir.path(), 3);
    let out = vtool(&[
        "--beacon",
        a.url(),
        "--beacon",
        b.url(),
        "--keys",
        s(dir.path()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains(
            "proven: all 3 key(s) offline on every node for 2 consecutive epochs (epochs 9..=10"
        ),
        "{}",
        text(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("epoch 9: waiting until"), "{err}");
    assert!(
        err.contains(&format!("epoch 10 {}: 0 of 3 live", b.url())),
        "{err}"
    );
    assert!(!err.contains("one beacon node only"), "{err}");
    assert_one_liveness_request_per_epoch(&a);
    assert_one_liveness_request_per_epoch(&b);
}

#[test]
fn a_key_live_in_the_last_epoch_on_one_of_two_nodes_is_not_proven() {
    let c = chain().with_live(|epoch, index| epoch == 10 && index == 1);
    let a = BeaconDouble::start(chain_of(&c));
    let b = BeaconDouble::start(c);
    let (k0, k1) = (pubkey(0), pubkey(1));
    let out = vtool(&["--beacon", a.url(), b.url(), "--pubkey", &k0, &k1, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["proven"], false);
    assert_eq!(report["keys"][0]["proven"], true);
    assert_eq!(
        reasons(&report, 1),
        vec![(b.url().to_string(), Value::from(10), "live".to_string())]
    );
    assert_eq!(report["last_live_epoch"], 10);
    assert_one_liveness_request_per_epoch(&a);
    assert_one_liveness_request_per_epoch(&b);

    let c = chain().with_live(|epoch, index| epoch == 10 && index == 1);
    let (a, b) = (BeaconDouble::start(chain_of(&c)), BeaconDouble::start(c));
    let out = vtool(&["--beacon", a.url(), b.url(), "--pubkey", &k1]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = stdout(&out);
    assert!(shown.contains("NOT proven: 1 of 1 key(s)"), "{shown}");
    assert!(
        shown.contains(&format!("{}, epoch 10: seen live", b.url())),
        "{shown}"
    );
}

/// Validator 0 is live in epoch 9, offline in 10, live again in 11.
fn live_again() -> Scenario {
    chain().with_live(|epoch, index| index == 0 && (epoch == 9 || epoch == 11))
}

#[test]
fn a_key_live_again_is_not_proven_in_three_epochs() {
    let node = BeaconDouble::start(live_again());
    let out = vtool(&[
        "--beacon",
        node.url(),
        "--pubkey",
        &pubkey(0),
        "--epochs",
        "3",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        reasons(&report, 0),
        vec![(node.url().to_string(), Value::from(11), "live".to_string())]
    );
    assert_eq!(report["keys"][0]["consecutive_offline"], 0);
    assert!(
        stderr(&out).contains("one beacon node only"),
        "{}",
        text(&out)
    );
}

#[test]
fn until_offline_succeeds_after_two_more_offline_epochs() {
    let node = BeaconDouble::start(live_again());
    let out = vtool(&[
        "--beacon",
        node.url(),
        "--pubkey",
        &pubkey(0),
        "--until-offline",
        "--timeout",
        "40s",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        (report["first_epoch"].clone(), report["last_epoch"].clone()),
        (Value::from(9), Value::from(13))
    );
    assert_eq!(report["keys"][0]["last_live_epoch"], 11);
    assert_eq!(report["keys"][0]["consecutive_offline"], 2);
    assert_one_liveness_request_per_epoch(&node);
}

#[test]
fn syncing_and_optimistic_nodes_prove_nothing() {
    let c = chain();
    let syncing = BeaconDouble::start(c.clone().with_behaviour(Behaviour::Syncing));
    let optimistic = BeaconDouble::start(c.with_behaviour(Behaviour::Optimistic));
    let out = vtool(&[
        "--beacon",
        syncing.url(),
        optimistic.url(),
        "--pubkey",
        &pubkey(0),
        "--epochs",
        "1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let kinds: Vec<String> = reasons(&json(&out), 0).into_iter().map(|r| r.2).collect();
    assert_eq!(kinds, vec!["syncing", "optimistic"]);
    assert_eq!(syncing.requests(Endpoint::Liveness), 0);

    let el = BeaconDouble::start(chain().with_behaviour(Behaviour::ElOffline));
    let out = vtool(&[
        "--beacon",
        el.url(),
        "--pubkey",
        &pubkey(0),
        "--epochs",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("execution client is offline"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_node_not_tracking_liveness_or_unreachable_proves_nothing() {
    let c = chain();
    let good = BeaconDouble::start(c.clone());
    let teku = BeaconDouble::start(c.with_behaviour(Behaviour::NotTracking));
    let out = vtool(&[
        "--beacon",
        good.url(),
        teku.url(),
        "--pubkey",
        &pubkey(0),
        "--epochs",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("--beacon-liveness-tracking-enabled"),
        "{}",
        text(&out)
    );

    let dead = unreachable_url();
    let out = vtool(&[
        "--beacon",
        good.url(),
        &dead,
        "--pubkey",
        &pubkey(0),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        reasons(&report, 0),
        vec![(dead, Value::Null, "unreachable".to_string())]
    );
    assert_eq!(report["first_epoch"], Value::Null);
}

#[test]
fn an_unknown_pubkey_is_not_proven() {
    let node = BeaconDouble::start(chain());
    let unknown = format!("0x{}", "cd".repeat(48));
    let out = vtool(&["--beacon", node.url(), "--pubkey", &unknown]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("knows no validator with this pubkey"),
        "{}",
        text(&out)
    );
    assert_eq!(node.requests(Endpoint::Liveness), 0, "nothing to watch");
}

#[test]
fn expect_live_passes_when_live_and_fails_when_not() {
    let c = chain();
    let live = BeaconDouble::start(c.clone().with_live(|_, _| true));
    let out = vtool(&[
        "--beacon",
        live.url(),
        "--pubkey",
        &pubkey(0),
        "--expect-live",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains("seen live on every node"),
        "{}",
        text(&out)
    );

    let offline = BeaconDouble::start(c);
    let out = vtool(&[
        "--beacon",
        live.url(),
        offline.url(),
        "--pubkey",
        &pubkey(0),
        "--expect-live",
        "--epochs",
        "1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        reasons(&json(&out), 0),
        vec![(
            offline.url().to_string(),
            Value::Null,
            "not-seen-live".to_string()
        )]
    );
}

#[test]
fn usage_errors_exit_2() {
    let url = unreachable_url();
    for args in [
        vec!["--pubkey", "0x00"],
        vec!["--beacon", &url],
        vec!["--beacon", &url, "--pubkey", "0x1234"],
        vec!["--beacon", &url, "--pubkey", "0x1234", "--timeout", "1m"],
        vec!["--beacon", &url, "--pubkey", "0x1234", "--epochs", "0"],
        vec!["--beacon", "localhost:5052", "--pubkey", "0x1234"],
    ] {
        let out = vtool(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let out = vtool(&["--beacon", &url, "--keys", s(empty.path())]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("no keystore found"), "{}", text(&out));
}
