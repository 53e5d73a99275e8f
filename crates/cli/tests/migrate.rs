//! `vtool migrate` between two Keymanager API doubles (no validator client runs here), with
//! Beacon API doubles whose liveness follows which client has each key enabled, through the
//! real gate, repository and drills.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vtool_testkit::beacon::{pubkey, validators, BeaconDouble, Scenario};
use vtool_testkit::etcd::Etcd;
use vtool_testkit::keymanager::{Clock, KeymanagerDouble, Switch};

use crate::support::migration::{Migration, ROOT};
use crate::support::{s, text};

const EPOCH_SECS: u64 = 4;

/// The old client with every key, the new one empty, two beacon nodes that see a key live
/// in an epoch when either client had it enabled then.
struct Hosts {
    m: Migration,
    /// Custody in a real etcd with mutual TLS; `None` runs with `--no-custody`.
    etcd: Option<Etcd>,
    old: Arc<KeymanagerDouble>,
    new: Arc<KeymanagerDouble>,
    beacons: Vec<BeaconDouble>,
    clock: Clock,
}

impl Hosts {
    fn new(keys: u64, custody: bool) -> Hosts {
        let m = Migration::new(keys);
        let etcd = custody.then(Etcd::start);
        let scenario = Scenario::at_epoch(100, validators(keys));
        let clock = Clock {
            genesis_time: scenario.genesis_time,
            seconds_per_epoch: EPOCH_SECS,
        };
        let old = Arc::new(KeymanagerDouble::start(clock, ROOT, &m.pubkeys));
        let new = Arc::new(KeymanagerDouble::start(clock, ROOT, &[]));
        let beacons = (0..2)
            .map(|_| {
                let (o, n) = (Arc::clone(&old), Arc::clone(&new));
                BeaconDouble::start(scenario.clone().with_live(move |epoch, index| {
                    let pk = pubkey(index);
                    o.live_in_epoch(&pk, epoch) || n.live_in_epoch(&pk, epoch)
                }))
            })
            .collect();
        for (name, km) in [("old.token", &old), ("new.token", &new)] {
            fs::write(m.env.path(name), km.token()).expect("token");
        }
        Hosts {
            m,
            etcd,
            old,
            new,
            beacons,
            clock,
        }
    }

    fn plan(&self, batch: &str, first: &str) {
        let keys = self.m.env.path("node/validators");
        let plan = self.m.env.ok(
            &[
                "migrate",
                "plan",
                "--keys",
                s(&keys),
                "--batch-size",
                batch,
                "--first-batch",
                first,
            ],
            0,
        );
        fs::write(self.m.env.path("plan.json"), plan).expect("plan");
    }

    fn run_args(&self, resume: bool) -> Vec<String> {
        let p = |r: &str| self.m.env.path(r).display().to_string();
        let mut a: Vec<String> = [
            "migrate",
            "run",
            &p("plan.json"),
            "--from",
            self.old.url(),
            "--from-token",
            &p("old.token"),
            "--to",
            self.new.url(),
            "--to-token",
            &p("new.token"),
            "--repo",
            &self.m.env.repo(),
            "--backup-key",
            &self.m.env.backup_key(),
            "--keystores",
            &p("node/validators"),
            "--passwords",
            &p("node/secrets"),
            "--backup-slashing",
            s(&self.m.slashing()),
            "--state",
            &p("migration/state.json"),
            "--epochs",
            "1",
            "--live-within",
            "3",
            "--json",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        for b in &self.beacons {
            a.extend(["--beacon".to_string(), b.url().to_string()]);
        }
        match &self.etcd {
            Some(etcd) => {
                a.extend(etcd.vtool_args());
                a.extend(["--host".to_string(), "new-host".to_string()]);
            }
            None => a.push("--no-custody".into()),
        }
        if resume {
            a.push("--resume".into());
        }
        a
    }

    fn spawn(&self, resume: bool) -> Child {
        fs::create_dir_all(self.m.env.path("migration")).expect("mkdir");
        let args = self.run_args(resume);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.m
            .env
            .command(env!("CARGO_BIN_EXE_vtool"), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    }

    fn run(&self, resume: bool) -> (i32, Value, String) {
        let out = self.spawn(resume).wait_with_output().expect("wait");
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), v, text(&out))
    }

    fn state(&self) -> Value {
        fs::read(self.m.env.path("migration/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// Every key on the new side only, each enabled there at least `epochs` epochs after the
    /// old side stopped it and after finality passed that last vote; never on both at once.
    fn assert_moved_safely(&self, epochs: u64) {
        let (old_log, new_log) = (self.old.log(), self.new.log());
        for pk in &self.m.pubkeys {
            assert!(
                self.new.enabled(pk) && !self.old.enabled(pk),
                "{pk} did not move"
            );
            let last = |log: &[Switch], enabled: bool| {
                log.iter()
                    .filter(|s| &s.pubkey == pk && s.enabled == enabled)
                    .map(|s| s.time)
                    .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))
            };
            let disabled = last(&old_log, false).expect("disabled on the old side");
            let enabled = new_log
                .iter()
                .filter(|s| &s.pubkey == pk && s.enabled)
                .map(|s| s.time)
                .fold(f64::INFINITY, f64::min);
            assert!(enabled > disabled, "{pk} enabled on both sides at once");
            assert!(
                last(&old_log, true).is_none_or(|t| t < disabled),
                "{pk} re-enabled on the old side"
            );
            assert!(
                enabled - disabled >= (epochs * EPOCH_SECS) as f64,
                "{pk}: {:.1} s between disable and enable",
                enabled - disabled
            );
            // The double finalizes two epochs behind; the last vote was in the disable epoch.
            let finalized_then = self.clock.epoch_at(enabled).saturating_sub(2);
            assert!(
                finalized_then > self.clock.epoch_at(disabled),
                "{pk} enabled before finality"
            );
        }
    }
}

#[test]
fn three_batches_killed_in_the_second_and_resumed_move_every_key_safely() {
    let h = Hosts::new(10, true);
    h.plan("4", "2");
    let mut child = h.spawn(false);
    // Kill -9 once batch 2 is past its DELETE and before its import.
    let started = Instant::now();
    loop {
        let st = h.state();
        let step = st["batches"][1]["step"].as_str().unwrap_or("").to_string();
        if ["deleted", "finalized", "gated"].contains(&step.as_str()) {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "exited early: {st}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "never reached batch 2: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert!(
        h.new
            .log()
            .iter()
            .all(|s| h.m.pubkeys[..2].contains(&s.pubkey)),
        "batch 2 imported before the kill"
    );

    // Without --resume it refuses to start over.
    let (code, _, out) = h.run(false);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--resume"), "{out}");

    let (code, state, out) = h.run(true);
    assert_eq!(code, 0, "{out}");
    let batches = state["batches"].as_array().expect("batches");
    assert_eq!(batches.len(), 3);
    assert!(
        batches
            .iter()
            .all(|b| b["step"] == "done" && b["batch_report"].is_string()),
        "{state:#}"
    );
    h.assert_moved_safely(1);

    let (repo, bk) = (h.m.env.repo(), h.m.env.backup_key());
    let reports =
        h.m.env
            .json(&["reports", "--repo", &repo, "--backup-key", &bk, "--json"]);
    let batch_reports: Vec<&Value> = reports["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["kind"] == "vtool-migration-batch")
        .collect();
    assert_eq!(batch_reports.len(), 3);
    assert!(batch_reports
        .iter()
        .all(|r| r["passed"] == true && r["authenticity"] == "authentic"));
}

#[test]
fn a_key_live_again_on_the_old_side_stops_before_the_import() {
    let h = Hosts::new(2, false);
    h.plan("2", "2");
    let mut child = h.spawn(false);
    let started = Instant::now();
    while h.state()["batches"][0]["step"] != "deleted"
        && h.state()["batches"][0]["step"] != "finalized"
    {
        assert!(child.try_wait().expect("wait").is_none(), "exited early");
        assert!(started.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Someone starts the old client again with one key.
    h.old.re_enable(&h.m.pubkeys[1]);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let reason = v["stopped"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("gate failed") && reason.contains("offline"),
        "{reason}"
    );
    assert!(h.new.log().is_empty(), "nothing may reach the new client");
    assert!(h.state()["stopped"].is_string());
}

#[test]
fn a_batch_over_max_offline_is_refused_before_anything_stops() {
    let h = Hosts::new(3, false);
    h.plan("3", "3");
    let mut args = h.run_args(false);
    args.extend(["--max-offline".into(), "2".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_vtool"))
        .args(&args)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--max-offline"), "{}", text(&out));
    assert!(h.old.log().iter().all(|s| s.enabled), "nothing was stopped");
}

#[test]
fn keystores_can_come_from_the_snapshot_through_the_restore_guard() {
    let h = Hosts::new(2, false);
    h.plan("2", "2");
    // The keystores and passwords of the gate's snapshot, not a directory on this host.
    let args = h.run_args(false);
    let id = h.m.env.identity();
    let (keys, secrets) = (
        h.m.env.path("node/validators"),
        h.m.env.path("node/secrets"),
    );
    let mut out_args = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--keystores" => {
                it.next();
                out_args.extend([
                    "--keystores-from-snapshot".to_string(),
                    "node/validators".into(),
                ]);
            }
            "--passwords" => {
                it.next();
                out_args.extend(["--passwords".to_string(), "node/secrets".into()]);
            }
            "--backup-key" => {
                it.next();
                out_args.extend(["--identity".to_string(), id.clone()]);
            }
            _ => out_args.push(a),
        }
    }
    // Nothing on this host to import from.
    fs::remove_dir_all(&keys).expect("rm keys");
    fs::remove_dir_all(&secrets).expect("rm secrets");
    fs::create_dir_all(h.m.env.path("migration")).expect("mkdir");
    let refs: Vec<&str> = out_args.iter().map(String::as_str).collect();
    let out = h.m.env.run(&refs);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for pk in &h.m.pubkeys {
        assert!(h.new.enabled(pk) && !h.old.enabled(pk), "{pk} did not move");
    }
}

const LOCK: &str = "/vtool/lock/custody/v1";

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn a_migrate_killed_while_holding_the_custody_lock_moves_nothing_and_a_resume_goes_on() {
    let h = Hosts::new(2, true);
    h.plan("2", "2");
    let etcd = h.etcd.as_ref().expect("etcd");
    // Someone else holds the lock, so the migration queues for it at its claim.
    let mut holder = etcd.hold_lock(LOCK, 60);
    fs::create_dir_all(h.m.env.path("migration")).expect("mkdir");
    let mut args = h.run_args(false);
    args.extend(["--lock-wait".into(), "120s".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut migrate =
        h.m.env
            .command(env!("CARGO_BIN_EXE_vtool"), &refs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    while etcd.lock_keys(LOCK) < 2 {
        assert!(
            migrate.try_wait().expect("wait").is_none(),
            "migrate exited: {}",
            h.state()
        );
        assert!(
            Instant::now() < deadline,
            "migrate never queued for the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Frozen, it cannot renew its lease; the holder dies, and the lock passes to it.
    signal(&migrate, "-STOP");
    holder.kill().expect("kill -9 etcdctl");
    holder.wait().expect("wait");
    while etcd.lock_keys(LOCK) != 1 {
        assert!(
            Instant::now() < deadline,
            "the holder's lease never expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Killed while it holds the lock: its lease expires and frees the lock, nothing else.
    migrate.kill().expect("kill -9 migrate");
    migrate.wait().expect("wait");
    while etcd.lock_keys(LOCK) != 0 {
        assert!(
            Instant::now() < deadline,
            "the migrate's lease never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut status_args: Vec<String> = vec!["custody".into(), "status".into(), "--json".into()];
    status_args.extend(etcd.vtool_args());
    let refs: Vec<&str> = status_args.iter().map(String::as_str).collect();
    let status = h.m.env.json(&refs);
    assert!(
        status["records"].as_array().is_none_or(Vec::is_empty),
        "custody moved: {status}"
    );
    assert!(h.new.log().is_empty(), "nothing imported");

    let (code, state, out) = h.run(true);
    assert_eq!(code, 0, "{out}");
    assert!(state["batches"][0]["custody_token"].is_i64(), "{state}");
    h.assert_moved_safely(1);
    let status = h.m.env.json(&refs);
    assert_eq!(
        status["records"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
}
