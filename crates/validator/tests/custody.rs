//! The custody registry against a real etcd over mutual TLS: contended claims, fencing
//! tokens, records that never carry a lease, a lost lock lease that moves nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use vtool_testkit::etcd::{Etcd, Pki};
use vtool_validator::custody::{
    CustodyError, CustodyKey, EtcdOptions, Evidence, Registry, TlsFiles,
};

fn options(etcd: &Etcd) -> EtcdOptions {
    let pki = etcd.pki.as_ref().expect("tls");
    EtcdOptions {
        endpoints: etcd.endpoints(),
        tls: Some(TlsFiles {
            ca: pki.ca.clone(),
            cert: pki.client_cert.clone(),
            key: pki.client_key.clone(),
        }),
        request_timeout: Duration::from_secs(3),
        ..EtcdOptions::default()
    }
}

fn key(i: u8) -> CustodyKey {
    CustodyKey::eth(&format!("0x{}", hex::encode([i; 48]))).expect("key")
}

fn refused(e: CustodyError) -> Vec<String> {
    match e {
        CustodyError::Refused(p) => p.iter().map(|p| p.to_string()).collect(),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[test]
fn claims_share_one_token_and_records_carry_no_lease() {
    let etcd = Etcd::start();
    let r = Registry::connect(&options(&etcd)).expect("connect");
    let keys = [key(1), key(2), key(3)];
    let token = r.claim("host-a", &keys, None).expect("claim");
    let status = r.status(Some(&keys)).expect("status");
    assert_eq!(status.records.len(), 3);
    assert!(status
        .records
        .iter()
        .all(|rec| rec.token == token && rec.holder.as_deref() == Some("host-a")));
    assert_eq!(
        r.check("host-a", &keys, Some(token)).expect("check").token,
        Some(token)
    );

    // etcd's own view: no lease on any record.
    let out = etcd.etcdctl_ok(&["get", "--prefix", "/vtool/custody/v1/", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kvs = v["kvs"].as_array().expect("kvs");
    assert_eq!(kvs.len(), 3);
    assert!(kvs.iter().all(|kv| kv.get("lease").is_none()), "{v}");

    // A record one key short of the set fails the check; another host is refused.
    let reasons = refused(
        r.check("host-a", &[key(1), key(4)], None)
            .expect_err("missing"),
    );
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("no custody record"), "{reasons:?}");
    let reasons = refused(r.check("host-b", &keys, None).expect_err("other"));
    assert!(reasons[0].contains("held by host-a"), "{reasons:?}");
}

#[test]
fn of_two_contending_claims_exactly_one_wins() {
    let etcd = Etcd::start();
    let o = options(&etcd);
    for round in 0..100u8 {
        let keys = vec![key(round), key(round.wrapping_add(128))];
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = ["host-a", "host-b"]
            .into_iter()
            .map(|host| {
                let (o, keys, barrier) = (o.clone(), keys.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let r = Registry::connect(&o).expect("connect");
                    barrier.wait();
                    r.claim(host, &keys, None).map(|t| (host, t))
                })
            })
            .collect();
        let outcomes: Vec<_> = racers
            .into_iter()
            .map(|t| t.join().expect("join"))
            .collect();
        let winners: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let (winner, token) = winners[0];
        let r = Registry::connect(&o).expect("connect");
        r.check(winner, &keys, Some(*token)).expect("winner holds");
    }
}

#[test]
fn evidence_moves_custody_and_fences_the_old_token() {
    let etcd = Etcd::start();
    let r = Registry::connect(&options(&etcd)).expect("connect");
    let keys = [key(7), key(8)];
    let old = r.claim("host-a", &keys, None).expect("claim");
    let evidence = |pubkeys: &[CustodyKey], offline: bool| Evidence {
        report_id: "abc".into(),
        pubkeys: pubkeys.iter().map(|k| k.id.clone()).collect(),
        passed_offline: offline,
        time: time::OffsetDateTime::now_utc(),
    };
    let e = r
        .claim("host-b", &keys, Some(&evidence(&keys[..1], true)))
        .expect_err("other keys");
    assert!(matches!(e, CustodyError::Evidence(_)), "{e}");
    let e = r
        .claim("host-b", &keys, Some(&evidence(&keys, false)))
        .expect_err("not offline");
    assert!(e.to_string().contains("offline"), "{e}");
    let new = r
        .claim("host-b", &keys, Some(&evidence(&keys, true)))
        .expect("moved");
    assert!(new > old);
    let reasons = refused(r.check("host-a", &keys, Some(old)).expect_err("fenced"));
    assert!(
        reasons.iter().all(|m| m.contains("held by host-b")),
        "{reasons:?}"
    );
    let reasons = refused(r.check("host-b", &keys, Some(old)).expect_err("stale"));
    assert!(
        reasons.iter().all(|m| m.contains("stale token")),
        "{reasons:?}"
    );
    let status = r.status(None).expect("status");
    assert!(status.records.iter().all(|rec| {
        rec.previous_holder.as_deref() == Some("host-a") && rec.report_id.as_deref() == Some("abc")
    }));

    // Release: only the holder, only with its token; then anyone may claim without evidence.
    let reasons = refused(r.release("host-a", &keys, new).expect_err("not holder"));
    assert!(reasons[0].contains("held by host-b"), "{reasons:?}");
    let reasons = refused(r.release("host-b", &keys, old).expect_err("stale"));
    assert!(reasons[0].contains("stale token"), "{reasons:?}");
    r.release("host-b", &keys, new).expect("release");
    let reasons = refused(r.check("host-b", &keys, None).expect_err("released"));
    assert!(reasons[0].contains("released by host-b"), "{reasons:?}");
    r.claim("host-c", &keys, None).expect("claim after release");
}

#[test]
fn a_lost_lock_lease_frees_the_lock_and_moves_nothing() {
    let etcd = Etcd::start();
    let mut o = options(&etcd);
    let r = Registry::connect(&o).expect("connect");
    let keys = [key(9)];
    let token = r.claim("host-a", &keys, None).expect("claim");

    // Someone takes the custody lock with a 2 s session and dies without unlocking.
    let mut holder = etcd
        .etcdctl(&["lock", "--ttl=2", "/vtool/lock/custody/v1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("etcdctl lock");
    let mut line = String::new();
    let stdout = holder.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read");
    assert!(line.starts_with("/vtool/lock/custody/v1/"), "{line}");

    o.lock_wait = Duration::from_millis(500);
    let busy = Registry::connect(&o).expect("connect");
    let e = busy.claim("host-b", &[key(10)], None).expect_err("busy");
    assert!(matches!(e, CustodyError::LockBusy(_)), "{e}");

    holder.kill().expect("kill -9");
    holder.wait().expect("wait");
    o.lock_wait = Duration::from_secs(15);
    let after = Registry::connect(&o).expect("connect");
    // The lock comes free when the lease expires; custody of key 9 has not moved.
    let reasons = refused(after.claim("host-b", &keys, None).expect_err("still held"));
    assert!(reasons[0].contains("held by host-a"), "{reasons:?}");
    after
        .check("host-a", &keys, Some(token))
        .expect("unchanged");
}

#[test]
fn a_client_certificate_from_another_ca_is_refused() {
    let etcd = Etcd::start();
    let other = Pki::new(etcd.dir.path(), "other");
    let mut o = options(&etcd);
    let tls = o.tls.as_mut().expect("tls");
    tls.cert = other.client_cert.clone();
    tls.key = other.client_key.clone();
    let r = Registry::connect(&o).expect("connect is lazy");
    let e = r.check("host-a", &[key(1)], None).expect_err("refused");
    assert!(
        matches!(e, CustodyError::Etcd { .. }),
        "a TLS failure is not an answer: {e}"
    );
}

#[test]
fn three_members_keep_custody_with_one_down_and_across_a_restart() {
    let mut etcd = Etcd::cluster(3);
    let o = options(&etcd);
    let keys = [key(20), key(21)];
    let token = Registry::connect(&o)
        .expect("connect")
        .claim("host-a", &keys, None)
        .expect("claim");
    etcd.kill(0);
    let r = Registry::connect(&o).expect("connect");
    r.check("host-a", &keys, Some(token))
        .expect("two of three answer");
    let t2 = r
        .claim("host-a", &[key(22)], None)
        .expect("claim with one down");
    etcd.restart(0);
    let r = Registry::connect(&o).expect("connect");
    r.check("host-a", &keys, Some(token)).expect("persisted");
    r.check("host-a", &[key(22)], Some(t2)).expect("persisted");
    let ids: BTreeSet<i64> = r
        .status(None)
        .expect("status")
        .records
        .iter()
        .map(|x| x.token)
        .collect();
    assert_eq!(ids, BTreeSet::from([token, t2]));
}

#[test]
fn a_record_vtool_did_not_write_is_never_trusted() {
    let etcd = Etcd::start();
    let r = Registry::connect(&options(&etcd)).expect("connect");
    let (leased, odd) = (key(30), key(31));
    let value = r#"{"version":1,"holder":"host-a","claimed_at":"2026-12-04T00:00:00Z","report_id":null,"previous_holder":null,"released_at":null}"#;
    // Valid JSON, but bound to a lease: it would vanish with it.
    let out = etcd.etcdctl_ok(&["lease", "grant", "600"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lease = text
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    etcd.etcdctl_ok(&["put", &format!("--lease={lease}"), &leased.path(), value]);
    etcd.etcdctl_ok(&[
        "put",
        &odd.path(),
        &value.replace("\"version\":1", "\"holder2\":1,\"version\":1"),
    ]);
    let reasons = refused(
        r.check("host-a", &[leased.clone(), odd.clone()], None)
            .expect_err("refused"),
    );
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("not vtool's") && reasons[0].contains("lease"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("unknown field"), "{reasons:?}");
    let reasons = refused(r.claim("host-b", &[leased], None).expect_err("refused"));
    assert!(reasons[0].contains("not vtool's"), "{reasons:?}");
    assert_eq!(r.status(None).expect("status").damaged.len(), 2);
}
