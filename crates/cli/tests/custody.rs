//! `vtool custody` against a real etcd (Debian's etcd-server) over mutual TLS, with a
//! passing `vtool gate --report` as the evidence that moves custody.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::migration::{chain, Migration};
use support::{s, text, Env, VTOOL};
use vtool_testkit::etcd::{Etcd, Pki};

/// `vtool custody <sub> <etcd args> <args>` in `env`.
fn custody(env: &Env, etcd: &Etcd, sub: &str, args: &[&str]) -> Output {
    let mut all = vec!["custody".to_string(), sub.to_string()];
    all.extend(etcd.vtool_args());
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    env.run(&refs)
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Claim with `--json`, which must succeed; the token.
fn claimed(env: &Env, etcd: &Etcd, args: &[&str]) -> i64 {
    let mut args = args.to_vec();
    args.push("--json");
    let out = custody(env, etcd, "claim", &args);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["claimed"], true, "{v}");
    v["token"].as_i64().expect("token")
}

/// A migration whose gate passed, and the report file it wrote.
fn gated(keys: u64) -> (Migration, PathBuf) {
    let m = Migration::new(keys);
    let (a, b) = (chain(keys), chain(keys));
    let report = m.env.path("gate-report.json");
    let (code, gate) = m.gate(&[&a, &b], &["--report", s(&report)]);
    assert_eq!(code, 0, "{gate:#}");
    (m, report)
}

/// `--evidence REPORT --repo R --backup-key K`.
fn evidence_args(m: &Migration, report: &Path) -> Vec<String> {
    vec![
        "--evidence".into(),
        s(report).into(),
        "--repo".into(),
        m.env.repo(),
        "--backup-key".into(),
        m.env.backup_key(),
    ]
}

#[test]
fn custody_moves_only_with_a_passing_gate_report_for_exactly_these_keys() {
    let (m, report) = gated(2);
    let env = &m.env;
    let etcd = Etcd::start();
    let keys = env.path("node/validators");
    let keys = ["--keys", s(&keys)];
    let host = |h: &'static str| ["--host", h];

    let old = claimed(env, &etcd, &[&host("old-host")[..], &keys].concat());
    let out = custody(
        env,
        &etcd,
        "check",
        &[&host("old-host")[..], &keys, &["--token", &old.to_string()]].concat(),
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("old-host holds all 2 key(s) under token {old}")),
        "{}",
        text(&out)
    );

    // Without evidence another host is told who holds them, in text and JSON.
    let out = custody(
        env,
        &etcd,
        "claim",
        &[&host("new-host")[..], &keys].concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stdout(&out).contains("held by old-host"), "{}", text(&out));
    let out = custody(
        env,
        &etcd,
        "claim",
        &[&host("new-host")[..], &keys, &["--json"]].concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["refused"], true);
    let refused = v["keys"].as_array().expect("keys");
    assert_eq!(refused.len(), 2);
    assert!(
        refused.iter().all(|k| k["reason"]
            .as_str()
            .expect("reason")
            .contains("held by old-host")),
        "{v}"
    );

    // Evidence for another key set is refused.
    let ev = evidence_args(&m, &report);
    let ev: Vec<&str> = ev.iter().map(String::as_str).collect();
    let one = ["--pubkey", m.pubkeys[0].as_str()];
    let out = custody(
        env,
        &etcd,
        "claim",
        &[&host("new-host")[..], &one, &ev, &["--json"]].concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let reason = json(&out)["reason"].as_str().expect("reason").to_string();
    assert!(
        reason.contains("for other keys: 0 claimed key(s) not in it, 1 of its key(s) not claimed"),
        "{reason}"
    );

    // An altered report does not authenticate.
    let forged = env.path("forged-report.json");
    let bytes = fs::read_to_string(&report).expect("read");
    let at = bytes.find("\"hostname\"").expect("hostname") + "\"hostname\"".len();
    let quote = at + bytes[at..].find('"').expect("value");
    fs::write(
        &forged,
        format!("{}x{}", &bytes[..=quote], &bytes[quote + 1..]),
    )
    .expect("write");
    let fev = evidence_args(&m, &forged);
    let fev: Vec<&str> = fev.iter().map(String::as_str).collect();
    let out = custody(
        env,
        &etcd,
        "claim",
        &[&host("new-host")[..], &keys, &fev].concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stdout(&out).contains("does not authenticate"),
        "{}",
        text(&out)
    );

    // The passing report moves custody; the old holder's check now fails.
    let new = claimed(env, &etcd, &[&host("new-host")[..], &keys, &ev].concat());
    assert!(new > old);
    let out = custody(
        env,
        &etcd,
        "check",
        &[&host("old-host")[..], &keys, &["--token", &old.to_string()]].concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stdout(&out).contains("custody not confirmed") && stdout(&out).contains("held by new-host"),
        "{}",
        text(&out)
    );
    let out = custody(
        env,
        &etcd,
        "check",
        &[
            &host("new-host")[..],
            &keys,
            &["--token", &old.to_string(), "--json"],
        ]
        .concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["confirmed"], false);
    assert!(
        v["reason"]
            .as_str()
            .expect("reason")
            .contains(&format!("stale token {old}")),
        "{v}"
    );
    let per_key = v["keys"].as_array().expect("keys");
    assert_eq!(per_key.len(), 2, "{v}");
    assert!(
        per_key.iter().all(|k| k["reason"].as_str().is_some_and(
            |r| r.starts_with(&format!("stale token {old}: the record's token is {new}"))
        )),
        "{v}"
    );
    let out = custody(
        env,
        &etcd,
        "check",
        &[&host("new-host")[..], &keys, &["--json"]].concat(),
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json(&out)["token"], new);

    let status = json(&custody(env, &etcd, "status", &["--json"]));
    let records = status["records"].as_array().expect("records");
    assert_eq!(records.len(), 2);
    for r in records {
        assert_eq!(r["holder"], "new-host", "{r}");
        assert_eq!(r["previous_holder"], "old-host", "{r}");
        assert_eq!(r["token"], new, "{r}");
        assert!(
            r["report_id"].as_str().is_some_and(|id| id.len() == 64),
            "{r}"
        );
    }

    // Release: not by another host, not with a stale token; then by the holder.
    let out = custody(
        env,
        &etcd,
        "release",
        &[&host("old-host")[..], &keys, &["--token", &new.to_string()]].concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stdout(&out).contains("held by new-host"), "{}", text(&out));
    let out = custody(
        env,
        &etcd,
        "release",
        &[
            &host("new-host")[..],
            &keys,
            &["--token", &old.to_string(), "--json"],
        ]
        .concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        json(&out)["keys"][0]["reason"]
            .as_str()
            .expect("reason")
            .contains("stale token"),
        "{}",
        text(&out)
    );
    let out = custody(
        env,
        &etcd,
        "release",
        &[&host("new-host")[..], &keys, &["--token", &new.to_string()]].concat(),
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = custody(env, &etcd, "status", &[]);
    assert!(
        stdout(&out).contains("(released by new-host)"),
        "{}",
        text(&out)
    );
    let out = custody(
        env,
        &etcd,
        "check",
        &[&host("new-host")[..], &keys].concat(),
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
}

#[test]
fn custody_refuses_plaintext_unless_told_and_fails_closed_when_etcd_is_down() {
    let env = Env::new();
    let pk = vtool_testkit::beacon::pubkey(1);
    let other = vtool_testkit::beacon::pubkey(2);
    let plain = Etcd::plaintext();
    let url = &plain.endpoints()[0];
    let bare = [
        "custody", "claim", "--etcd", url, "--host", "a", "--pubkey", &pk,
    ];
    let out = env.run(&bare);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing plaintext"),
        "{}",
        text(&out)
    );
    let out = env.run(&[
        "custody", "check", "--etcd", url, "--host", "a", "--pubkey", &pk,
    ]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stdout(&out).contains("refusing plaintext"),
        "{}",
        text(&out)
    );
    claimed(&env, &plain, &["--host", "a", "--pubkey", &pk]);

    let mut etcd = Etcd::start();
    claimed(&env, &etcd, &["--host", "a", "--pubkey", &pk]);
    // One key short: exit 1, naming the key.
    let out = custody(
        &env,
        &etcd,
        "check",
        &["--host", "a", "--pubkey", &pk, "--pubkey", &other, "--json"],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let reason = json(&out)["reason"].as_str().expect("reason").to_string();
    assert!(
        reason.contains(&format!("eth/{other}: no custody record")),
        "{reason}"
    );

    etcd.kill(0);
    let started = Instant::now();
    let out = custody(
        &env,
        &etcd,
        "check",
        &["--host", "a", "--pubkey", &pk, "--etcd-timeout", "2s"],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stdout(&out).contains("custody not confirmed"),
        "{}",
        text(&out)
    );
    let out = custody(
        &env,
        &etcd,
        "claim",
        &["--host", "b", "--pubkey", &other, "--etcd-timeout", "2s"],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    // Restarted, it still knows.
    etcd.restart(0);
    let out = custody(&env, &etcd, "check", &["--host", "a", "--pubkey", &pk]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn custody_a_killed_claimer_frees_the_lock_with_its_lease_and_moves_nothing() {
    let env = Env::new();
    let etcd = Etcd::start();
    let pk = vtool_testkit::beacon::pubkey(1);
    let token = claimed(&env, &etcd, &["--host", "a", "--pubkey", &pk]);
    let before = json(&custody(&env, &etcd, "status", &["--json"]))["records"].clone();

    // etcdctl holds the lock; a vtool claim queues behind it with its own lease, and is
    // killed there; then the lock holder dies too.
    let mut holder = etcd.hold_lock("/vtool/lock/custody/v1", 60);
    let mut args = vec!["custody".to_string(), "claim".into()];
    args.extend(etcd.vtool_args());
    args.extend(["--host", "b", "--pubkey", &pk].map(String::from));
    let mut queued = env
        .command(VTOOL, &args.iter().map(String::as_str).collect::<Vec<_>>())
        .spawn()
        .expect("vtool");
    // Until it waits in the lock's queue: its key under the lock, bound to its lease.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock_keys(&etcd) < 2 {
        assert!(Instant::now() < deadline, "vtool never queued for the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    queued.kill().expect("kill -9 vtool");
    queued.wait().expect("wait");
    holder.kill().expect("kill -9 etcdctl");
    holder.wait().expect("wait");
    // Its lease ends (revoked here rather than waited for), the killed waiter's expires with
    // its TTL; the lock comes free and a claim gets through it, refused: nothing moved.
    etcd.revoke_lock_holder("/vtool/lock/custody/v1");
    let out = custody(
        &env,
        &etcd,
        "claim",
        &["--host", "b", "--pubkey", &pk, "--lock-wait", "30s"],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(stdout(&out).contains("held by a"), "{}", text(&out));
    let after = json(&custody(&env, &etcd, "status", &["--json"]))["records"].clone();
    assert_eq!(before, after);
    let out = custody(
        &env,
        &etcd,
        "check",
        &[
            "--host",
            "a",
            "--pubkey",
            &pk,
            "--token",
            &token.to_string(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
}

fn lock_keys(etcd: &Etcd) -> usize {
    etcd.lock_keys("/vtool/lock/custody/v1")
}

#[test]
fn custody_three_members_with_one_killed_still_confirm_and_claim() {
    let env = Env::new();
    let mut etcd = Etcd::cluster(3);
    let (a, b) = (
        vtool_testkit::beacon::pubkey(1),
        vtool_testkit::beacon::pubkey(2),
    );
    let token = claimed(&env, &etcd, &["--host", "a", "--pubkey", &a]);
    etcd.kill(1);
    let out = custody(
        &env,
        &etcd,
        "check",
        &["--host", "a", "--pubkey", &a, "--token", &token.to_string()],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    claimed(&env, &etcd, &["--host", "a", "--pubkey", &b]);
}

#[test]
fn custody_the_systemd_drop_in_passes_systemd_analyze_verify() {
    let env = Env::new();
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd");
    let dropin = fs::read_to_string(contrib.join("vtool-custody.conf")).expect("drop-in");
    assert!(dropin.contains("ExecStartPre=/usr/local/bin/vtool custody check --host %H"));
    let dir = env.path("units");
    fs::create_dir_all(dir.join("validator.service.d")).expect("mkdir");
    fs::write(
        dir.join("validator.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .expect("write");
    let verify = |binary: &str| {
        fs::write(
            dir.join("validator.service.d/vtool-custody.conf"),
            dropin.replace("/usr/local/bin/vtool", binary),
        )
        .expect("write");
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.join("validator.service"))
            .output()
            .expect("systemd-analyze is needed (apt-get install systemd)")
    };
    let out = verify(VTOOL);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out)
    );
    // The drop-in is what systemd read: a missing binary there fails verification.
    let out = verify("/nonexistent/vtool");
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn custody_works_with_the_certificates_contrib_makes() {
    let env = Env::new();
    let pki = env.path("pki");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/etcd/make-certs.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&pki)
        .args(["--member", "m0=127.0.0.1", "--client", "host-a"])
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", text(&out));
    // It never overwrites: a second run refuses.
    let again = Command::new("bash")
        .arg(&script)
        .arg(&pki)
        .args(["--member", "m0=127.0.0.1", "--client", "host-a"])
        .output()
        .expect("bash");
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    let etcd = Etcd::with_pki(Pki {
        ca: pki.join("ca.crt"),
        server_cert: pki.join("member-m0.crt"),
        server_key: pki.join("member-m0.key"),
        client_cert: pki.join("client-host-a.crt"),
        client_key: pki.join("client-host-a.key"),
    });
    let pk = vtool_testkit::beacon::pubkey(3);
    let token = claimed(&env, &etcd, &["--host", "host-a", "--pubkey", &pk]);
    let out = custody(
        &env,
        &etcd,
        "check",
        &[
            "--host",
            "host-a",
            "--pubkey",
            &pk,
            "--token",
            &token.to_string(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));

    // A client certificate from another CA gets no answer: exit 1.
    let other = Pki::new(env.dir.path(), "other");
    let mut args = vec!["custody".to_string(), "check".into()];
    for e in etcd.endpoints() {
        args.extend(["--etcd".to_string(), e]);
    }
    for (flag, path) in [
        ("--etcd-cacert", pki.join("ca.crt")),
        ("--etcd-cert", other.client_cert.clone()),
        ("--etcd-key", other.client_key.clone()),
    ] {
        args.extend([flag.to_string(), path.display().to_string()]);
    }
    args.extend(["--host", "host-a", "--pubkey", &pk].map(String::from));
    let out = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        stdout(&out).contains("custody not confirmed: etcd"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_solana_identity_moves_by_release_then_claim() {
    let env = Env::new();
    let etcd = Etcd::start();
    let id = "7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2";
    let token = claimed(&env, &etcd, &["--host", "active", "--sol-identity", id]);
    let ok = custody(
        &env,
        &etcd,
        "check",
        &["--host", "active", "--sol-identity", id],
    );
    assert_eq!(code(&ok), 0, "{}", text(&ok));
    // The standby cannot take a held identity without evidence.
    let out = custody(
        &env,
        &etcd,
        "claim",
        &["--host", "standby", "--sol-identity", id],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("active"),
        "names the holder: {}",
        text(&out)
    );
    // The active node releases it (after `set-identity` to its unstaked identity) ...
    let t = token.to_string();
    let out = custody(
        &env,
        &etcd,
        "release",
        &["--host", "active", "--sol-identity", id, "--token", &t],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    // ... and the standby claims it; the active node's check now fails.
    let moved = claimed(&env, &etcd, &["--host", "standby", "--sol-identity", id]);
    assert!(moved > token);
    let out = custody(
        &env,
        &etcd,
        "check",
        &["--host", "active", "--sol-identity", id],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let status = json(&custody(
        &env,
        &etcd,
        "status",
        &["--sol-identity", id, "--json"],
    ));
    let key = status["records"][0]["key"].to_string();
    assert!(key.contains(id) && key.contains("sol"), "{status}");
    assert_eq!(status["records"][0]["holder"], "standby");
}
