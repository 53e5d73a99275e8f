//! The Beacon API client and the liveness watch against the testkit's Beacon API double, on a
//! chain of 1 s slots and 4-slot epochs that has just entered epoch 10: the watch starts with
//! epoch 9 (asked 3 s in) and asks about one epoch every 4 s.

use std::time::Duration;

use vtool_testkit::beacon::{
    pubkey, unreachable_url, validators, BeaconDouble, Behaviour, Endpoint, Scenario,
};
use vtool_testkit::within;
use vtool_validator::beacon::{BeaconClient, BeaconError};
use vtool_validator::liveness::{
    watch, LivenessEvent, LivenessMode, LivenessOptions, LivenessReport, Reason,
};

const TIMEOUT: Duration = Duration::from_secs(2);

fn client(url: &str) -> BeaconClient {
    BeaconClient::new(url, TIMEOUT).expect("http url")
}

fn chain() -> Scenario {
    Scenario::at_epoch(10, validators(4))
}

/// Watch keys 0..keys on these nodes with `setup` applied to the options.
fn run(
    nodes: &[&BeaconDouble],
    keys: &[String],
    setup: impl FnOnce(&mut LivenessOptions),
) -> LivenessReport {
    let mut opts = LivenessOptions::new(
        nodes.iter().map(|n| client(n.url())).collect(),
        keys.to_vec(),
    );
    setup(&mut opts);
    within(60, "liveness watch", move || {
        let mut events = Vec::new();
        let report = watch(&opts, &mut |e| events.push(e.clone())).expect("watch");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, LivenessEvent::Waiting { .. }))
                || report.first_epoch.is_none(),
            "progress tells of the waits"
        );
        report
    })
}

fn keys(n: u64) -> Vec<String> {
    (0..n).map(pubkey).collect()
}

/// The reasons of key `k`, as (node, epoch, reason).
fn reasons(report: &LivenessReport, k: usize) -> Vec<(String, Option<u64>, Reason)> {
    report.keys[k]
        .reasons
        .iter()
        .map(|r| (r.node.clone(), r.epoch, r.reason.clone()))
        .collect()
}

#[test]
fn client_reads_every_endpoint_strictly() {
    let node = BeaconDouble::start(chain());
    let c = client(&format!("{}/", node.url()));
    assert_eq!(c.url(), node.url(), "trailing / dropped");
    let genesis = c.genesis().expect("genesis");
    assert_eq!(
        genesis.genesis_validators_root,
        format!("0x{}", "4b".repeat(32))
    );
    let spec = c.spec().expect("spec");
    assert_eq!((spec.seconds_per_slot, spec.slots_per_epoch), (1, 4));
    let sync = c.syncing().expect("syncing");
    assert!(!sync.is_syncing);
    assert_eq!(sync.is_optimistic, Some(false));
    assert_eq!(c.finality().expect("finality").finalized.epoch, 8);

    let unknown = format!("0x{}", "cd".repeat(48));
    let lookup = c
        .validators(&[
            pubkey(1).to_uppercase().replace("0X", "0x"),
            unknown.clone(),
        ])
        .expect("validators");
    assert_eq!(lookup.found[&pubkey(1)].index, 1);
    assert_eq!(lookup.found[&pubkey(1)].status, "active_ongoing");
    assert_eq!(lookup.missing, vec![unknown]);

    let live = c.liveness(9, &[0, 2]).expect("previous epoch");
    assert_eq!(live.len(), 2);
    match c.liveness(5, &[0]) {
        Err(BeaconError::Http { status: 400, .. }) => {}
        other => panic!("an epoch out of the window: {other:?}"),
    }
}

#[test]
fn client_names_transport_failures() {
    let dead = unreachable_url();
    assert!(matches!(
        client(&dead).genesis(),
        Err(BeaconError::Unreachable { .. })
    ));
    let slow = BeaconDouble::start(chain().with_behaviour(Behaviour::Slow(Duration::from_secs(4))));
    assert!(matches!(
        client(slow.url()).genesis(),
        Err(BeaconError::Timeout { .. })
    ));
    let broken = BeaconDouble::start(chain().with_behaviour(Behaviour::ServerError));
    assert!(matches!(
        client(broken.url()).spec(),
        Err(BeaconError::Http { status: 500, .. })
    ));
    assert!(BeaconClient::new("localhost:5052", TIMEOUT).is_err());
}

#[test]
fn answers_other_than_asked_are_errors() {
    let node = BeaconDouble::start(chain().with_behaviour(Behaviour::OtherThanAsked));
    let c = client(node.url());
    match c.validators(&[pubkey(0)]) {
        Err(BeaconError::Incomplete { detail, .. }) => assert!(detail.contains("not asked")),
        other => panic!("an answer for a pubkey not asked: {other:?}"),
    }
    match c.liveness(9, &[0, 1]) {
        Err(BeaconError::Incomplete { detail, .. }) => assert!(detail.contains("index 1")),
        other => panic!("an index left out: {other:?}"),
    }
    let report = run(&[&node], &keys(1), |o| o.epochs = 1);
    assert!(!report.proven);
    assert!(matches!(
        reasons(&report, 0)[0].2,
        Reason::Incomplete { .. }
    ));
}

#[test]
fn all_offline_on_two_nodes_is_proven_with_one_liveness_request_per_node_and_epoch() {
    let c = chain();
    let (a, b) = (BeaconDouble::start(c.clone()), BeaconDouble::start(c));
    let report = run(&[&a, &b], &keys(4), |_| {});
    assert!(report.proven, "{report:#?}");
    assert_eq!((report.first_epoch, report.last_epoch), (Some(9), Some(10)));
    assert_eq!(report.last_live_epoch, None);
    assert!(report
        .keys
        .iter()
        .all(|k| k.proven && k.consecutive_offline == 2));
    assert_eq!(report.observations.len(), 4);
    for node in [&a, &b] {
        let per_epoch = node.liveness_requests();
        assert_eq!(per_epoch.keys().copied().collect::<Vec<_>>(), vec![9, 10]);
        assert!(per_epoch.values().all(|&n| n == 1), "{per_epoch:?}");
        assert_eq!(node.requests(Endpoint::Liveness), 2);
    }
}

#[test]
fn a_key_live_in_the_last_epoch_on_one_node_is_not_proven() {
    let c = chain();
    let a = BeaconDouble::start(c.clone());
    let b = BeaconDouble::start(c.with_live(|epoch, index| epoch == 10 && index == 2));
    let report = run(&[&a, &b], &keys(3), |_| {});
    assert!(!report.proven);
    assert!(report.keys[0].proven && report.keys[1].proven);
    assert_eq!(
        reasons(&report, 2),
        vec![(b.url().to_string(), Some(10), Reason::Live)]
    );
    assert_eq!(report.keys[2].last_live_epoch, Some(10));
    assert_eq!(report.last_live_epoch, Some(10));
    let seen: Vec<_> = report
        .observations
        .iter()
        .filter(|o| !o.live_indices.is_empty())
        .map(|o| (o.epoch, o.node.as_str(), o.live_indices.clone()))
        .collect();
    assert_eq!(seen, vec![(10, b.url(), vec![2])]);
}

#[test]
fn a_key_live_again_restarts_its_count() {
    // Live in epoch 9, offline in 10, live again in 11: counting restarts each time.
    let live = |epoch, index| (epoch == 9 || epoch == 11) && index == 0;
    let node = BeaconDouble::start(chain().with_live(live));
    let report = run(&[&node], &keys(2), |o| o.epochs = 3);
    assert!(!report.proven);
    assert_eq!(report.last_epoch, Some(11));
    assert_eq!(
        reasons(&report, 0),
        vec![(node.url().to_string(), Some(11), Reason::Live)]
    );
    assert_eq!(report.keys[0].consecutive_offline, 0);
    assert!(report.keys[1].proven);

    let node = BeaconDouble::start(chain().with_live(live));
    let report = run(&[&node], &keys(2), |o| {
        o.epochs = 2;
        o.until_offline = true;
        o.timeout = Some(Duration::from_secs(40));
    });
    assert!(report.proven, "{report:#?}");
    assert_eq!((report.first_epoch, report.last_epoch), (Some(9), Some(13)));
    assert_eq!(report.keys[0].last_live_epoch, Some(11));
    assert!(node.liveness_requests().values().all(|&n| n == 1));
}

#[test]
fn until_offline_gives_up_at_the_timeout() {
    let node = BeaconDouble::start(chain().with_live(|_, index| index == 0));
    let report = run(&[&node], &keys(1), |o| {
        o.until_offline = true;
        o.timeout = Some(Duration::from_secs(9));
    });
    assert!(!report.proven && report.timed_out);
    assert_eq!(report.last_epoch, Some(10));
    assert_eq!(
        reasons(&report, 0),
        vec![(node.url().to_string(), Some(10), Reason::Live)]
    );
}

#[test]
fn unhealthy_nodes_are_no_observation() {
    for (behaviour, reason) in [
        (Behaviour::Syncing, Reason::Syncing { sync_distance: 100 }),
        (Behaviour::Optimistic, Reason::Optimistic),
        (Behaviour::ElOffline, Reason::ElOffline),
    ] {
        let c = chain();
        let good = BeaconDouble::start(c.clone());
        let bad = BeaconDouble::start(c.with_behaviour(behaviour));
        let report = run(&[&good, &bad], &keys(1), |o| o.epochs = 1);
        assert!(!report.proven, "{behaviour:?}");
        assert_eq!(
            reasons(&report, 0),
            vec![(bad.url().to_string(), Some(9), reason.clone())]
        );
        assert_eq!(
            bad.requests(Endpoint::Liveness),
            0,
            "not asked when unhealthy"
        );
        assert_eq!(report.observations[1].error, Some(reason));
    }
}

#[test]
fn a_node_not_tracking_liveness_and_an_unreachable_one_fail_closed() {
    let c = chain();
    let good = BeaconDouble::start(c.clone());
    let teku = BeaconDouble::start(c.with_behaviour(Behaviour::NotTracking));
    let report = run(&[&good, &teku], &keys(1), |o| o.epochs = 1);
    assert!(!report.proven);
    let r = reasons(&report, 0);
    assert_eq!(r.len(), 1);
    assert!(matches!(r[0].2, Reason::NotTracking { .. }), "{r:?}");
    assert!(r[0]
        .2
        .to_string()
        .contains("--beacon-liveness-tracking-enabled"));

    let dead = unreachable_url();
    let mut opts = LivenessOptions::new(vec![client(good.url()), client(&dead)], keys(1));
    opts.epochs = 1;
    let report = watch(&opts, &mut |_| {}).expect("watch");
    assert!(!report.proven);
    assert_eq!(report.first_epoch, None, "no watch without every node");
    let r = reasons(&report, 0);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, dead);
    assert!(matches!(r[0].2, Reason::Unreachable { .. }), "{r:?}");
    assert!(report.nodes[1].error.is_some());
}

#[test]
fn unknown_slashed_exited_and_pending_keys_are_not_proven() {
    let mut vs = validators(4);
    vs[1].status = "active_slashed".into();
    vs[2].status = "withdrawal_done".into();
    vs[3].status = "pending_queued".into();
    let node = BeaconDouble::start(Scenario::at_epoch(10, vs));
    let unknown = format!("0x{}", "cd".repeat(48));
    let mut asked = keys(4);
    asked.push(unknown);
    let report = run(&[&node], &asked, |o| o.epochs = 1);
    assert!(!report.proven);
    assert!(report.keys[0].proven);
    let only = |k| {
        let r = reasons(&report, k);
        assert_eq!(r.len(), 1, "{r:?}");
        r[0].2.clone()
    };
    assert!(matches!(only(1), Reason::Slashed { .. }));
    assert!(matches!(only(2), Reason::Exited { .. }));
    assert!(matches!(only(3), Reason::Pending { .. }));
    assert_eq!(only(4), Reason::UnknownPubkey);
    assert_eq!(report.keys[4].index, None);
    assert_eq!(
        report.observations[0].asked, 1,
        "only watchable keys are asked about"
    );
}

#[test]
fn nodes_on_other_chains_are_not_trusted() {
    let c = chain();
    let a = BeaconDouble::start(c.clone());
    let mut other = c;
    other.genesis_validators_root = format!("0x{}", "99".repeat(32));
    let b = BeaconDouble::start(other);
    let report = run(&[&a, &b], &keys(1), |o| o.epochs = 1);
    assert!(!report.proven);
    assert!(matches!(
        reasons(&report, 0)[0].2,
        Reason::GenesisMismatch { .. }
    ));
    assert_eq!(a.requests(Endpoint::Liveness), 0);
}

#[test]
fn expect_live_is_the_positive_control() {
    let live = BeaconDouble::start(chain().with_live(|epoch, _| epoch == 10));
    let report = run(&[&live], &keys(2), |o| o.mode = LivenessMode::ExpectLive);
    assert!(report.proven, "{report:#?}");
    assert_eq!(report.last_live_epoch, Some(10));

    let c = chain();
    let a = BeaconDouble::start(c.clone().with_live(|_, _| true));
    let b = BeaconDouble::start(c.with_live(|_, index| index == 0));
    let report = run(&[&a, &b], &keys(2), |o| o.mode = LivenessMode::ExpectLive);
    assert!(!report.proven);
    assert!(report.keys[0].proven);
    assert_eq!(
        reasons(&report, 1),
        vec![(b.url().to_string(), None, Reason::NotSeenLive)]
    );
}

#[test]
fn report_json_is_kebab_case_and_compact() {
    let node = BeaconDouble::start(chain().with_live(|_, index| index == 1));
    let report = run(&[&node], &keys(3), |o| o.epochs = 1);
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["mode"], "offline");
    assert_eq!(json["keys"][1]["reasons"][0]["reason"]["kind"], "live");
    assert_eq!(
        json["observations"][0]["live_indices"],
        serde_json::json!([1])
    );
    assert_eq!(json["observations"][0]["asked"], 3);
    assert_eq!(json["nodes"][0]["spec"]["slots_per_epoch"], 4);
}
