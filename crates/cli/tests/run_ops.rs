//! `vtool run` with a `vtool.toml`: the due steps run for real against a local repository,
//! a drive copy and an SFTP copy on a real sshd; the state, the textfile metrics (checked by
//! `promtool`), the pings (received by a local HTTP server), the run lock, config errors and
//! `--dry-run`.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::ping_server::PingServer;
use support::{s, text, Env, VTOOL};
use vtool_testkit::sshd::Sshd;
use vtool_testkit::tree::{assert_same, Compare};

fn node(root: &Path) {
    fs::create_dir_all(root.join("validators/0xabc")).expect("mkdir");
    fs::write(
        root.join("validators/0xabc/voting-keystore.json"),
        "{\"crypto\":{}}",
    )
    .expect("write");
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    fs::write(root.join("chain.db"), data).expect("write");
}

/// `[repository]` and `state_dir` for `env`, then `rest`; written as `vtool.toml`.
fn config(env: &Env, rest: &str) -> PathBuf {
    let path = env.path("vtool.toml");
    let text = format!(
        "state_dir = \"{state}\"\n\n[repository]\nurl = \"{repo}\"\nbackup_key = \"{key}\"\nidentity = \"{id}\"\n\n{rest}",
        state = s(&env.path("state")),
        repo = env.repo(),
        key = env.backup_key(),
        id = env.identity(),
    );
    fs::write(&path, text).expect("write config");
    path
}

/// A source `node` whose hooks leave marker files.
fn source(env: &Env) -> String {
    format!(
        "[[source]]\nname = \"node\"\npaths = [\"{node}\"]\ntags = [\"nightly\"]\npre = \"touch {pre}\"\npost = \"touch {post}\"\n\n",
        node = s(&env.path("node")),
        pre = s(&env.path("pre-ran")),
        post = s(&env.path("post-ran")),
    )
}

/// The samples of a textfile, `name{labels}` → value.
fn samples(path: &Path) -> BTreeMap<String, f64> {
    let text = fs::read_to_string(path).expect("metrics file");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.parse().expect("value"))
        })
        .collect()
}

fn promtool_check_metrics(path: &Path) {
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(fs::File::open(path).expect("open metrics"))
        .output()
        .expect("promtool is needed (apt-get install prometheus)");
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}",
        text(&out),
        fs::read_to_string(path).unwrap_or_default()
    );
}

fn step<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no step {key} in {report}"))
}

#[test]
fn run_does_everything_due_with_a_local_repository_a_drive_and_an_sftp_copy() {
    let server = Sshd::start();
    let mut env = Env::with_repo();
    env.vars = vec![
        ("VTOOL_SSH_KEY".into(), s(&server.user_key).into()),
        (
            "VTOOL_SSH_KNOWN_HOSTS".into(),
            s(&server.known_hosts).into(),
        ),
    ];
    node(&env.path("node"));
    let sftp = server.url(&server.dir.path().join("offsite"));
    let drive = env.path("drive").display().to_string();
    let pings = PingServer::start();
    let metrics = env.path("textfile/vtool.prom");
    fs::create_dir_all(metrics.parent().expect("dir")).expect("mkdir");
    let cfg = config(
        &env,
        &format!(
            "{source}[[copy]]\nto = \"{drive}\"\n\n[[copy]]\nto = \"{sftp}\"\n\n\
             [check]\npacks_days = 1\n\n\
             [drill]\nboot = [{{ command = \"cat {{dir}}/node/validators/0xabc/voting-keystore.json\", expect = \"crypto\" }}]\n\n\
             [metrics]\ntextfile = \"{metrics}\"\n\n[ping]\nurl = \"{ping}\"\ntimeout = \"5s\"\n",
            source = source(&env),
            metrics = s(&metrics),
            ping = pings.url("node1"),
        ),
    );
    let before = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let report = env.json(&["run", "--config", s(&cfg), "--json"]);
    assert_eq!(report["exit_code"], 0, "{report}");
    for key in [
        "backup:node".to_string(),
        format!("copy:{drive}"),
        format!("copy:{sftp}"),
        "check-packs".into(),
        "drill".into(),
    ] {
        let st = step(&report, &key);
        assert_eq!(st["due"], true, "{st}");
        assert_eq!(st["reason"], "never ran", "{st}");
        assert_eq!(st["exit_code"], 0, "{st}");
    }
    assert!(env.path("pre-ran").exists() && env.path("post-ran").exists());

    // Every copy holds the snapshot, and the SFTP one restores byte-identical.
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["tags"][0], "nightly");
    for copy in [&drive, &sftp] {
        let v = env.json(&["snapshots", "--repo", copy, "--json"]);
        assert_eq!(v[0]["fingerprint"], snaps[0]["fingerprint"], "{copy}");
        env.ok(&["check", "--repo", copy, "--packs"], 0);
    }
    let target = env.path("restored");
    let id = env.identity();
    env.ok(
        &[
            "restore",
            "--repo",
            &sftp,
            "--identity",
            &id,
            "latest",
            "--target",
            s(&target),
            "--verify",
        ],
        0,
    );
    assert_same(
        &env.path("node"),
        &target.join("node"),
        Compare::CONTENTS_AND_MODES,
    );

    // The drill was recorded in the repository.
    let drills = env.json(&["drills", "--repo", &env.repo(), "--identity", &id, "--json"]);
    assert_eq!(
        drills["drills"].as_array().map(Vec::len),
        Some(1),
        "{drills}"
    );
    assert_eq!(drills["drills"][0]["passed"], true, "{drills}");

    // Metrics: per repository and step, and per repository; promtool accepts the file.
    promtool_check_metrics(&metrics);
    let m = samples(&metrics);
    let repo = env.repo();
    let at = |name: &str, labels: &str| -> f64 {
        *m.get(&format!("{name}{{{labels}}}"))
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {m:#?}"))
    };
    for (r, st) in [
        (repo.as_str(), "backup:node"),
        (drive.as_str(), "copy"),
        (sftp.as_str(), "copy"),
        (repo.as_str(), "check-packs"),
        (repo.as_str(), "drill"),
        (repo.as_str(), "run"),
    ] {
        let l = format!("repository=\"{r}\",step=\"{st}\"");
        assert_eq!(at("vtool_last_exit_code", &l), 0.0, "{st}");
        assert!(
            at("vtool_last_success_timestamp_seconds", &l) >= before - 1.0,
            "{st}"
        );
        assert!(
            at("vtool_last_run_timestamp_seconds", &l) >= before - 1.0,
            "{st}"
        );
        assert!(at("vtool_last_duration_seconds", &l) >= 0.0, "{st}");
    }
    let r = format!("repository=\"{repo}\"");
    assert_eq!(at("vtool_snapshots", &r), 1.0);
    assert_eq!(
        at("vtool_snapshots", &format!("repository=\"{sftp}\"")),
        1.0
    );
    assert_eq!(at("vtool_verified_copies", &r), 2.0);
    assert_eq!(at("vtool_last_drill_passed", &r), 1.0);
    assert!(at("vtool_last_backup_added_bytes", &r) > 0.0);
    assert!(at("vtool_newest_snapshot_timestamp_seconds", &r) >= before - 1.0);
    assert!(at("vtool_newest_snapshot_age_seconds", &r) >= 0.0);

    // Pings: start before, the exit status after, with the summary as the body.
    let got = pings.requests();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/ping/node1/start")
    );
    assert_eq!(
        (got[1].method.as_str(), got[1].path.as_str()),
        ("POST", "/ping/node1/0")
    );
    assert!(got[1].body.contains("backup:node"), "{}", got[1].body);
    assert!(got[1].body.contains("ok in"), "{}", got[1].body);

    // Right after, nothing is due, and the state says why.
    let again = env.json(&["run", "--config", s(&cfg), "--dry-run", "--json"]);
    for st in again["steps"].as_array().expect("steps") {
        assert_eq!(st["due"], false, "{st}");
        assert!(
            st["reason"].as_str().is_some_and(|r| r.starts_with("ran ")),
            "{st}"
        );
    }
}

#[test]
fn run_dry_run_reports_due_steps_with_their_command_lines_and_runs_none() {
    let env = Env::with_repo();
    node(&env.path("node"));
    let pings = PingServer::start();
    let metrics = env.path("vtool.prom");
    let cfg = config(
        &env,
        &format!(
            "{source}[retention]\nkeep_last = 3\nkeep_daily = 7\nkeep_within = \"2d\"\nmax_unused = \"5%\"\ngrace = \"24h\"\n\n\
             [check]\npacks_days = 30\nread_data_days = 90\n\n[drill]\nevery = \"7d\"\n\n\
             [metrics]\ntextfile = \"{metrics}\"\n\n[ping]\nurl = \"{ping}\"\n",
            source = source(&env),
            metrics = s(&metrics),
            ping = pings.url("dry"),
        ),
    );
    let report = env.json(&["run", "--config", s(&cfg), "--dry-run", "--json"]);
    assert_eq!(report["dry_run"], true);
    let (repo, key, id) = (env.repo(), env.backup_key(), env.identity());
    let m = format!("--metrics-file {}", s(&metrics));
    let expect = [
        (
            "backup:node",
            vec![format!(
                "{m} --metrics-step backup:node backup --repo {repo} --backup-key {key} --tag nightly --pre touch {} --post touch {} -- {}",
                s(&env.path("pre-ran")),
                s(&env.path("post-ran")),
                s(&env.path("node"))
            )],
        ),
        (
            "retention",
            vec![
                format!("{m} forget --repo {repo} --backup-key {key} --keep-last 3 --keep-daily 7 --keep-within 2d"),
                format!("{m} prune --repo {repo} --backup-key {key} --max-unused 5% --grace 24h"),
            ],
        ),
        ("check-packs", vec![format!("{m} check --repo {repo} --packs --subset 4%")]),
        (
            "check-read-data",
            vec![format!("{m} check --repo {repo} --read-data --subset 2% --identity {id}")],
        ),
        ("drill", vec![format!("{m} drill --repo {repo} --identity {id} latest")]),
    ];
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), expect.len(), "{report}");
    for (st, (key, commands)) in steps.iter().zip(expect) {
        assert_eq!(st["key"], key);
        assert_eq!(st["due"], true, "{st}");
        assert_eq!(st["reason"], "never ran", "{st}");
        assert_eq!(st["exit_code"], Value::Null, "{st}");
        let got: Vec<String> = st["commands"]
            .as_array()
            .expect("commands")
            .iter()
            .map(|c| {
                c.as_array()
                    .expect("args")
                    .iter()
                    .map(|a| a.as_str().expect("arg").to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(got, commands, "{key}");
    }
    // Nothing ran: no snapshot, no hook, no state, no metrics, no ping.
    assert!(env.snapshots().is_empty());
    assert!(!env.path("pre-ran").exists());
    assert!(!env.path("state/state.json").exists());
    assert!(!metrics.exists());
    assert!(pings.requests().is_empty());

    // The human form names each step, whether it is due and why, and its command line.
    let out = env.ok(&["run", "--config", s(&cfg), "--dry-run"], 0);
    assert!(
        out.contains("DUE     backup:node              never ran"),
        "{out}"
    );
    assert!(
        out.contains(&format!("vtool {m} forget --repo {repo}")),
        "{out}"
    );
}

#[test]
fn run_an_overlapping_run_waits_for_the_lock_then_exits_4() {
    let env = Env::with_repo();
    node(&env.path("node"));
    let started = env.path("first-started");
    let cfg = config(
        &env,
        &format!(
            "[[source]]\nname = \"slow\"\npaths = [\"{}\"]\npre = \"touch {}; sleep 4\"\n",
            s(&env.path("node")),
            s(&started)
        ),
    );
    let mut first = env
        .command(VTOOL, &["run", "--config", s(&cfg)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the first run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(
            Instant::now() < deadline,
            "the first run never started its backup"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The second waits --lock-wait, then gives up with its own exit status, naming the holder.
    let t = Instant::now();
    let out = env.run(&["run", "--config", s(&cfg), "--lock-wait", "1s"]);
    let waited = t.elapsed();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(waited >= Duration::from_secs(1), "gave up after {waited:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another vtool run holds"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");

    // A third, willing to wait long enough, runs once the first is done: by then the backup
    // is recorded, so nothing is due.
    let out = env.run(&["run", "--config", s(&cfg), "--lock-wait", "2m", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(step(&report, "backup:slow")["due"], false, "{report}");
    assert_eq!(first.wait().expect("wait").code(), Some(0));
    assert_eq!(env.snapshots().len(), 1);
}

#[test]
fn run_a_config_with_an_unknown_key_fails_naming_file_line_and_key() {
    let env = Env::with_repo();
    let cfg = config(&env, "[retention]\nkeep_last = 3\nkeep_dialy = 7\n");
    let out = env.run(&["run", "--config", s(&cfg), "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    // Lines 1-6 are state_dir and [repository]; [retention] starts at line 8.
    let want = format!(
        "{}:10:1: key `retention.keep_dialy`: unknown field `keep_dialy`",
        s(&cfg)
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn run_a_failing_step_sets_the_exit_status_and_a_dead_ping_server_only_warns() {
    let env = Env::with_repo();
    node(&env.path("node"));
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let cfg = config(
        &env,
        &format!(
            "{source}[[source]]\nname = \"gone\"\npaths = [\"{missing}\"]\n\n[retention]\nkeep_last = 1\n\n\
             [ping]\nurl = \"http://127.0.0.1:{dead}/x\"\ntimeout = \"2s\"\n",
            source = source(&env),
            missing = s(&env.path("no-such-dir")),
        ),
    );
    let out = env.run(&["run", "--config", s(&cfg), "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(step(&report, "backup:node")["exit_code"], 0, "{report}");
    assert_eq!(step(&report, "backup:gone")["exit_code"], 2, "{report}");
    // Retention waits for a run whose backups all succeed.
    let retention = step(&report, "retention");
    assert_eq!(retention["exit_code"], Value::Null, "{retention}");
    assert!(
        retention["skipped"]
            .as_str()
            .is_some_and(|r| r.contains("a backup of this run failed")),
        "{retention}"
    );
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("/x/start") && warnings.contains("/x/2"),
        "{warnings}"
    );
    // The good backup was made and recorded; the failed one is due again next time.
    assert_eq!(env.snapshots().len(), 1);
    let again = env.json(&["run", "--config", s(&cfg), "--dry-run", "--json"]);
    assert_eq!(step(&again, "backup:node")["due"], false);
    let gone = step(&again, "backup:gone");
    assert_eq!(gone["due"], true);
    assert!(
        gone["reason"]
            .as_str()
            .is_some_and(|r| r.contains("failed (exit 2): retried")),
        "{gone}"
    );
}

#[test]
fn run_metrics_file_on_any_command_keeps_other_lines_and_passes_promtool() {
    let env = Env::with_repo();
    node(&env.path("node"));
    let metrics = env.path("vtool.prom");
    let mf = s(&metrics).to_string();
    let (repo, key) = (env.repo(), env.backup_key());
    let node = env.path("node");
    env.ok(
        &[
            "--metrics-file",
            &mf,
            "backup",
            "--repo",
            &repo,
            "--backup-key",
            &key,
            s(&node),
        ],
        0,
    );
    env.ok(
        &["check", "--repo", &repo, "--packs", "--metrics-file", &mf],
        0,
    );
    let m = samples(&metrics);
    let l = |st: &str| format!("{{repository=\"{repo}\",step=\"{st}\"}}");
    let success = m[&format!("vtool_last_success_timestamp_seconds{}", l("backup"))];
    assert_eq!(m[&format!("vtool_last_exit_code{}", l("check-packs"))], 0.0);
    assert_eq!(m[&format!("vtool_snapshots{{repository=\"{repo}\"}}")], 1.0);

    // A failed backup: its exit status, and the last success stays where it was.
    let out = env.run(&[
        "--metrics-file",
        &mf,
        "backup",
        "--repo",
        &repo,
        "--backup-key",
        "/nonexistent.key",
        s(&node),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let m = samples(&metrics);
    assert_eq!(m[&format!("vtool_last_exit_code{}", l("backup"))], 2.0);
    assert_eq!(
        m[&format!("vtool_last_success_timestamp_seconds{}", l("backup"))],
        success
    );
    assert!(m.contains_key(&format!("vtool_last_exit_code{}", l("check-packs"))));
    promtool_check_metrics(&metrics);
}

#[test]
fn run_retention_forgets_for_real_with_the_backup_key_only() {
    let env = Env::with_repo();
    let node_dir = env.path("node");
    node(&node_dir);
    for day in 1..=3 {
        fs::write(node_dir.join("day"), day.to_string()).expect("write");
        env.backup(&["--time", &format!("2026-11-0{day}T03:00:00Z"), s(&node_dir)]);
    }
    let metrics = env.path("vtool.prom");
    // prune = false: forget alone, as on a host whose storage account cannot delete.
    let cfg = config(
        &env,
        &format!(
            "[retention]\nkeep_last = 1\nprune = false\n\n[metrics]\ntextfile = \"{}\"\n",
            s(&metrics)
        ),
    );
    let plan = env.json(&["run", "--config", s(&cfg), "--dry-run", "--json"]);
    assert_eq!(
        step(&plan, "retention")["commands"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let report = env.json(&["run", "--config", s(&cfg), "--json"]);
    assert_eq!(step(&report, "retention")["exit_code"], 0, "{report}");
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(
        snaps[0]["time"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-11-03")),
        "{snaps:?}"
    );
    // The repository stays whole, and the newest snapshot restores byte-identical.
    let id = env.identity();
    env.ok(&["check", "--repo", &env.repo(), "--identity", &id], 0);
    let target = env.path("restored");
    env.restore_latest(&target);
    assert_same(&node_dir, &target.join("node"), Compare::CONTENTS_AND_MODES);
    // forget recorded its own step metrics.
    let m = samples(&metrics);
    let l = format!("{{repository=\"{}\",step=\"forget\"}}", env.repo());
    assert_eq!(m[&format!("vtool_last_exit_code{l}")], 0.0, "{m:#?}");
    assert_eq!(
        m[&format!("vtool_snapshots{{repository=\"{}\"}}", env.repo())],
        1.0
    );
    promtool_check_metrics(&metrics);
}

/// Bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("ls")
        .map(|e| {
            let e = e.expect("entry");
            let meta = e.metadata().expect("stat");
            if meta.is_dir() {
                du(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
fn run_retention_forgets_and_prunes_for_real_and_reclaims_the_space() {
    let env = Env::with_repo();
    let node_dir = env.path("node");
    node(&node_dir);
    for day in 1..=3u8 {
        // A day's own megabyte, which only that day's snapshot needs.
        let data = vtool_testkit::rng::Rng::new(u64::from(day)).bytes(1 << 20);
        fs::write(node_dir.join("day.bin"), data).expect("write");
        env.backup(&["--time", &format!("2026-11-0{day}T03:00:00Z"), s(&node_dir)]);
    }
    let before = du(&env.path("repo"));
    // every = "0": due at every run, so the second run's prune can purge what the first
    // condemned (grace 0).
    let cfg = config(
        &env,
        "[retention]\nkeep_last = 1\nmax_unused = \"0%\"\ngrace = \"0\"\nevery = \"0\"\n",
    );
    for _ in 0..2 {
        let report = env.json(&["run", "--config", s(&cfg), "--json"]);
        let r = step(&report, "retention");
        assert_eq!(r["exit_code"], 0, "{report}");
        assert_eq!(r["commands"].as_array().map(Vec::len), Some(2), "{r}");
    }
    assert_eq!(env.snapshots().len(), 1);
    let after = du(&env.path("repo"));
    assert!(
        after + (3 << 20) / 2 < before,
        "prune reclaimed too little: {before} -> {after} bytes"
    );
    let id = env.identity();
    env.ok(
        &[
            "check",
            "--repo",
            &env.repo(),
            "--read-data",
            "--identity",
            &id,
        ],
        0,
    );
    let target = env.path("restored");
    env.restore_latest(&target);
    assert_same(&node_dir, &target.join("node"), Compare::CONTENTS_AND_MODES);
}
