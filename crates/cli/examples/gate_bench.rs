//! The issue-12 benchmark: `vtool liveness` and `vtool gate` over many keys and two Beacon
//! API doubles (no beacon node runs here). Counts the requests each node received and times
//! the gate's checks apart from its epoch wait.
//!
//! `cargo run --release -p vtool --example gate_bench -- target/release/vtool 1000`

use std::fs;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};
use vtool_testkit::beacon::{pubkey, validators, BeaconDouble, Endpoint, Scenario};
use vtool_validator::{create_keystore, KdfChoice, NewKeystore};

fn main() {
    let mut args = std::env::args().skip(1);
    let vtool = args.next().unwrap_or_else(|| "target/release/vtool".into());
    let keys: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |rel: &str| dir.path().join(rel).display().to_string();
    let run = |args: &[&str]| -> (i32, Value, f64) {
        let started = Instant::now();
        let out = Command::new(&vtool)
            .args(args)
            .env("VTOOL_CACHE_DIR", p("cache"))
            .output()
            .expect("run vtool");
        let secs = started.elapsed().as_secs_f64();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if v.is_null() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        (out.status.code().unwrap_or(-1), v, secs)
    };

    eprintln!("writing {keys} keystores");
    for i in 0..keys {
        let pk = pubkey(i);
        let ks = create_keystore(
            &[7u8; 32],
            "bench password",
            &NewKeystore {
                pubkey: &pk,
                path: "",
                description: None,
                kdf: KdfChoice::Scrypt { log_n: 12 },
            },
        )
        .expect("keystore");
        let kdir = dir.path().join(format!("node/validators/{pk}"));
        fs::create_dir_all(&kdir).expect("mkdir");
        fs::write(
            kdir.join("voting-keystore.json"),
            serde_json::to_vec(&ks).expect("json"),
        )
        .expect("write");
    }
    fs::write(dir.path().join("password.txt"), "bench password").expect("write");
    let data: Vec<Value> = (0..keys)
        .map(|i| {
            json!({"pubkey": pubkey(i), "signed_blocks": [{"slot": "81"}],
                         "signed_attestations": [{"source_epoch": "19", "target_epoch": "20"}]})
        })
        .collect();
    let root = format!("0x{}", "4b".repeat(32));
    fs::write(
        dir.path().join("slashing.json"),
        json!({"metadata": {"interchange_format_version": "5", "genesis_validators_root": root},
               "data": data})
        .to_string(),
    )
    .expect("write");

    let (repo, id, bk) = (p("repo"), p("identity"), p("backup.key"));
    let setup: [Vec<String>; 4] = [
        vec![
            "init".into(),
            "--repo".into(),
            repo.clone(),
            "--identity-out".into(),
            id.clone(),
            "--backup-key-out".into(),
            bk.clone(),
        ],
        vec![
            "backup".into(),
            "--repo".into(),
            repo.clone(),
            "--backup-key".into(),
            bk.clone(),
            p("node"),
            "--json".into(),
        ],
        vec![
            "drill".into(),
            "--repo".into(),
            repo.clone(),
            "--identity".into(),
            id.clone(),
            "latest".into(),
            "--prove-keys".into(),
            "node/validators".into(),
            "--password-file".into(),
            p("password.txt"),
            "--json".into(),
        ],
        vec![
            "check".into(),
            "--repo".into(),
            repo.clone(),
            "--packs".into(),
            "--backup-key".into(),
            bk.clone(),
            "--json".into(),
        ],
    ];
    for a in &setup {
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, _, secs) = run(&args);
        eprintln!("{} exit {code} in {secs:.1} s", a[0]);
        assert_eq!(code, 0, "{} failed", a[0]);
    }

    let nodes = [
        BeaconDouble::start(Scenario::at_epoch(100, validators(keys))),
        BeaconDouble::start(Scenario::at_epoch(100, validators(keys))),
    ];
    let keys_dir = p("node/validators");
    let mut liveness = vec!["liveness", "--keys", &keys_dir, "--epochs", "2", "--json"];
    for n in &nodes {
        liveness.extend(["--beacon", n.url()]);
    }
    let (code, report, secs) = run(&liveness);
    let epochs = report["observations"].as_array().map(Vec::len).unwrap_or(0) / nodes.len();
    println!("## vtool liveness, {keys} keys, 2 nodes, --epochs 2\n");
    println!("exit {code}, {secs:.1} s (mostly waiting for epochs of 4 s), {epochs} epoch(s) observed per node\n");
    println!(
        "| node | liveness requests | per epoch (max) | validators requests | syncing requests |"
    );
    println!("|---|---|---|---|---|");
    for (i, n) in nodes.iter().enumerate() {
        let per_epoch = n.liveness_requests().values().copied().max().unwrap_or(0);
        println!(
            "| {} | {} | {per_epoch} | {} | {} |",
            i + 1,
            n.requests(Endpoint::Liveness),
            n.requests(Endpoint::Validators),
            n.requests(Endpoint::Syncing)
        );
    }

    let slashing = p("slashing.json");
    let mut gate = vec![
        "gate",
        "--repo",
        &repo,
        "--backup-key",
        &bk,
        "latest",
        "--keys",
        &keys_dir,
        "--slashing",
        &slashing,
        "--epochs",
        "1",
        "--json",
    ];
    for n in &nodes {
        gate.extend(["--beacon", n.url()]);
    }
    let (code, v, secs) = run(&gate);
    println!("\n## vtool gate, {keys} keys, 2 nodes, --epochs 1\n");
    println!("exit {code}, {secs:.1} s in all\n");
    println!("| check | status | seconds |\n|---|---|---|");
    let mut outside_waits = 0.0;
    for c in v["gate"]["checks"].as_array().cloned().unwrap_or_default() {
        let d = c["duration_secs"].as_f64().unwrap_or(0.0);
        if c["name"] != "offline" {
            outside_waits += d;
        }
        println!(
            "| {} | {} | {d:.3} |",
            c["name"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?")
        );
    }
    println!("\nevery check but the epoch wait: {outside_waits:.2} s");
}
