//! A validator migration about to be gated: a node with real EIP-2335 keystores, backed up,
//! drilled with its keys proven and checked, and the interchange the new host imports; the
//! gate runs against Beacon API doubles (`gate.rs`, `custody.rs`).

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use serde_json::{json, Value};
use vtool_testkit::beacon::{pubkey, validators, BeaconDouble, Scenario};

use super::{engines, s, text, Env};

pub const ROOT: &str = "0x4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b";

/// A node with `keys` validators (indices 0..keys of the doubles), backed up, drilled with
/// its keys proven and checked with `--packs`, and the interchange the new host imports.
pub struct Migration {
    pub env: Env,
    pub pubkeys: Vec<String>,
}

impl Migration {
    pub fn new(keys: u64) -> Migration {
        Migration::prepared(keys, &[], true)
    }

    /// `backup_extra` goes to `vtool backup`; `drill` says whether to drill and check.
    pub fn prepared(keys: u64, backup_extra: &[&str], drill: bool) -> Migration {
        let env = Env::with_repo();
        let pubkeys: Vec<String> = (0..keys).map(pubkey).collect();
        for (i, pk) in pubkeys.iter().enumerate() {
            let dir = env.path(&format!("node/validators/{pk}"));
            fs::create_dir_all(&dir).expect("mkdir");
            let password = format!("password {i}");
            fs::write(
                dir.join("voting-keystore.json"),
                engines::keystore(pk, &password),
            )
            .expect("write");
            let secrets = env.path("node/secrets");
            fs::create_dir_all(&secrets).expect("mkdir");
            fs::write(secrets.join(pk), &password).expect("write");
        }
        let m = Migration { env, pubkeys };
        let node = m.env.path("node");
        let mut args = vec![s(&node)];
        args.extend_from_slice(backup_extra);
        m.env.backup(&args);
        if drill {
            m.drill(&[]);
            m.check_packs(&m.env.repo());
        }
        m.interchange(ROOT, &[]);
        m
    }

    pub fn drill(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "latest",
            "--prove-keys",
            "node/validators",
            "--passwords",
            "node/secrets",
        ];
        args.extend_from_slice(extra);
        let out = self.env.with_identity("drill", &args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        out
    }

    pub fn check_packs(&self, repo: &str) {
        let bk = self.env.backup_key();
        self.env.ok(
            &["check", "--repo", repo, "--packs", "--backup-key", &bk],
            0,
        );
    }

    /// Write `slashing.json`: one block and one attestation per key, plus `extra` entries.
    pub fn interchange(&self, root: &str, extra: &[Value]) {
        let mut data: Vec<Value> = self
            .pubkeys
            .iter()
            .map(|pk| {
                json!({"pubkey": pk,
                       "signed_blocks": [{"slot": "81"}],
                       "signed_attestations": [{"source_epoch": "19", "target_epoch": "20"}]})
            })
            .collect();
        data.extend_from_slice(extra);
        let doc = json!({"metadata": {"interchange_format_version": "5",
                                      "genesis_validators_root": root},
                         "data": data});
        fs::write(self.slashing(), doc.to_string()).expect("write");
    }

    pub fn slashing(&self) -> PathBuf {
        self.env.path("slashing.json")
    }

    /// `vtool gate … --json` with these beacon nodes; its exit code and output.
    pub fn gate(&self, beacons: &[&BeaconDouble], extra: &[&str]) -> (i32, Value) {
        let (repo, bk) = (self.env.repo(), self.env.backup_key());
        let keys = self.env.path("node/validators");
        let slashing = self.slashing();
        let mut args = vec![
            "gate",
            "--repo",
            &repo,
            "--backup-key",
            &bk,
            "latest",
            "--keys",
            s(&keys),
            "--slashing",
            s(&slashing),
            "--epochs",
            "1",
            "--json",
        ];
        for b in beacons {
            args.extend(["--beacon", b.url()]);
        }
        args.extend_from_slice(extra);
        let out = self.env.run(&args);
        let code = out.status.code().expect("exit code");
        let v =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (code, v)
    }
}

/// A chain at epoch 100 on which validators 0..keys exist (all offline).
pub fn chain(keys: u64) -> BeaconDouble {
    BeaconDouble::start(Scenario::at_epoch(100, validators(keys)))
}
