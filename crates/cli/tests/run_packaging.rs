//! What operators install beside the binary: the systemd units (`systemd-analyze verify`),
//! the Prometheus alert rules (`promtool check rules`), shell completions and man pages.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{s, text, Env, VTOOL};

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib")
        .join(rel)
}

#[test]
fn run_systemd_units_pass_systemd_analyze_verify() {
    let env = Env::new();
    let dir = env.path("units");
    fs::create_dir_all(&dir).expect("mkdir");
    // verify insists that ExecStart's binary exists: point it at the one just built.
    let service = fs::read_to_string(contrib("systemd/vtool.service")).expect("service");
    assert!(service.contains("ExecStart=/usr/local/bin/vtool run --config"));
    for want in [
        "ProtectSystem=strict",
        "PrivateTmp=true",
        "NoNewPrivileges=true",
        "CPUSchedulingPolicy=batch",
        "IOSchedulingClass=idle",
        "StateDirectory=vtool",
    ] {
        assert!(service.contains(want), "vtool.service lacks {want}");
    }
    fs::write(
        dir.join("vtool.service"),
        service.replace("/usr/local/bin/vtool", VTOOL),
    )
    .expect("write");
    let timer = fs::read_to_string(contrib("systemd/vtool.timer")).expect("timer");
    assert!(timer.contains("Persistent=true") && timer.contains("RandomizedDelaySec="));
    fs::write(dir.join("vtool.timer"), timer).expect("write");
    // Documentation=man:vtool(1) is checked too: install the pages `vtool man` writes.
    let man = env.path("man");
    env.ok(&["man", "--dir", s(&man.join("man1"))], 0);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("vtool.service"))
        .arg(dir.join("vtool.timer"))
        .env("MANPATH", &man)
        .output()
        .expect("systemd-analyze is needed (apt-get install systemd)");
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stderr.is_empty(), "{}", text(&out));
}

#[test]
fn run_alert_rules_pass_promtool_check_rules() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(contrib("prometheus/vtool-alerts.yml"))
        .output()
        .expect("promtool is needed (apt-get install prometheus)");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "{}",
        text(&out)
    );
}

#[test]
fn run_completions_and_man_pages_cover_the_commands() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = env.ok(&["completions", shell], 0);
        for word in ["backup", "run", "metrics-file", "lock-wait"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    // bash accepts its script.
    let bash = env.path("vtool.bash");
    fs::write(&bash, env.ok(&["completions", "bash"], 0)).expect("write");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", text(&out));

    let page = env.ok(&["man"], 0);
    assert!(
        page.starts_with(".ie") || page.contains(".TH vtool"),
        "{page}"
    );
    let dir = env.path("man1");
    env.ok(&["man", "--dir", s(&dir)], 0);
    for name in [
        "vtool.1",
        "vtool-run.1",
        "vtool-backup.1",
        "vtool-completions.1",
    ] {
        let p = dir.join(name);
        let body = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(body.contains(".TH"), "{name}");
    }
    let run_page = fs::read_to_string(dir.join("vtool-run.1")).expect("run page");
    assert!(run_page.contains("lock\\-wait"), "{run_page}");
}

#[test]
fn run_the_cron_example_calls_vtool_run_at_low_priority() {
    let cron = fs::read_to_string(contrib("cron/vtool")).expect("cron example");
    let line = cron
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("vtool run"))
        .expect("a vtool run line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[5], "root", "{line}: /etc/cron.d lines name the user");
    assert!(
        line.contains("nice -n 19") && line.contains("ionice -c 3"),
        "{line}"
    );
    assert!(line.contains("--lock-wait"), "{line}");
}
