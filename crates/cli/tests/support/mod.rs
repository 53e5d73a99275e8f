//! What the binary's integration tests share: a scratch area with a repository and its keys,
//! and running `vtool` in it with a clean environment.
#![allow(dead_code)] // each test file uses its own part

pub mod engines;
pub mod migration;
pub mod ping_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const VTOOL: &str = env!("CARGO_BIN_EXE_vtool");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Exit status and both streams, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `program args` without the caller's `VTOOL_*` settings and with vtool's cache in `cache`,
/// never the user's.
pub fn clean_command(program: &str, args: &[&str], cache: &Path) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env("VTOOL_CACHE_DIR", cache)
        .env_remove("VTOOL_REPO")
        .env_remove("VTOOL_BACKUP_KEY")
        .env_remove("VTOOL_IDENTITY");
    c
}

/// A scratch area: repository (`repo`), keys (`identity.txt`, `backup.key`), cache, sources
/// and restore targets.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Extra environment for every run (e.g. `VTOOL_SSH_*`).
    pub vars: Vec<(String, String)>,
    /// A repository elsewhere (an `sftp://` URL) instead of `repo` in the scratch area.
    pub repo_url: Option<String>,
}

impl Env {
    /// An empty scratch area.
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            vars: Vec::new(),
            repo_url: None,
        }
    }

    /// A scratch area with an initialised repository.
    pub fn with_repo() -> Self {
        let env = Env::new();
        env.init();
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The repository: `repo_url` if set, else `repo` in the scratch area.
    pub fn repo(&self) -> String {
        self.repo_url
            .clone()
            .unwrap_or_else(|| self.path("repo").display().to_string())
    }

    pub fn identity(&self) -> String {
        self.path("identity.txt").display().to_string()
    }

    pub fn backup_key(&self) -> String {
        self.path("backup.key").display().to_string()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(VTOOL, args).output().expect("run vtool")
    }

    /// `program args` (vtool, or a wrapper that runs it) in the scratch area, with vtool's
    /// environment cleaned up.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = clean_command(program, args, &self.path("cache"));
        c.current_dir(self.dir.path())
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Run and require an exit status, returning stdout.
    pub fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "vtool {}\n{}",
            args.join(" "),
            text(&out)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Run with `--json` already in `args`, require `code`, parse stdout.
    pub fn json_with(&self, args: &[&str], code: i32) -> Value {
        let stdout = self.ok(args, code);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    pub fn json(&self, args: &[&str]) -> Value {
        self.json_with(args, 0)
    }

    pub fn init(&self) {
        let (repo, id, bk) = (self.repo(), self.identity(), self.backup_key());
        self.ok(
            &[
                "init",
                "--repo",
                &repo,
                "--identity-out",
                &id,
                "--backup-key-out",
                &bk,
            ],
            0,
        );
    }

    /// `vtool backup --repo … --backup-key … <extra>`, whatever its outcome.
    pub fn backup_run(&self, extra: &[&str]) -> Output {
        let (repo, bk) = (self.repo(), self.backup_key());
        let mut args = vec!["backup", "--repo", &repo, "--backup-key", &bk];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `vtool backup … --json <extra>`, which must succeed; its summary.
    pub fn backup(&self, extra: &[&str]) -> Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = self.backup_run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "backup {extra:?}\n{}",
            text(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }

    /// Restore the latest snapshot into `target`, which must succeed. Keystores go past the
    /// gate (`--no-gate`): these tests prove restores, `gate.rs` the guard.
    pub fn restore_latest(&self, target: &Path) {
        let out = self.with_identity("restore", &["latest", "--target", s(target), "--no-gate"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    /// `vtool snapshots --json`.
    pub fn snapshots(&self) -> Vec<Value> {
        let repo = self.repo();
        let v = self.json(&["snapshots", "--repo", &repo, "--json"]);
        v.as_array().cloned().expect("array")
    }

    /// `vtool <command> --repo … --identity … <extra>`.
    pub fn with_identity(&self, command: &str, extra: &[&str]) -> Output {
        let (repo, id) = (self.repo(), self.identity());
        let mut args = vec![command, "--repo", &repo, "--identity", &id];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}
