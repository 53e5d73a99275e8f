//! A throwaway Garage cluster (Garage 2.5, `cargo install garage --locked --version 2.5.0`):
//! three nodes on loopback with replication factor 3, so writes need two of them. Nodes can
//! be killed (SIGKILL) and started again on the same directories; all are killed on drop.
//!
//! The binary is `$VTOOL_GARAGE`, else the one `.ci/run` and `scripts/test.sh` cache in the
//! workspace's `.cache/garage/bin/`, else `garage` on the PATH.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use vtool_transfer::S3Config;

use crate::sshd::free_port;

/// The S3 region Garage is configured to answer for.
const REGION: &str = "garage";

struct Node {
    config: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    admin_port: u16,
    child: Option<Child>,
}

pub struct Garage {
    binary: PathBuf,
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
    /// Access key id and secret of a key that may read, write and own every test bucket.
    key: (String, String),
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VTOOL_GARAGE") {
        return PathBuf::from(path);
    }
    let cached = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/garage/bin/garage");
    if cached.exists() {
        return cached;
    }
    PathBuf::from("garage")
}

impl Garage {
    /// Start three nodes, join them in one zone with replication factor 3, and create a
    /// key. Panics with what to install when there is no Garage binary.
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().expect("tempdir");
        // Any 32 bytes; the nodes only need to share them.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut rng = crate::Rng::new(seed);
        let secret: String = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let root = dir.path().join(format!("node{i}"));
            fs::create_dir_all(&root).expect("mkdir");
            let (s3_port, rpc_port, admin_port) = (free_port(), free_port(), free_port());
            let config = root.join("garage.toml");
            fs::write(
                &config,
                format!(
                    r#"metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#,
                    root = root.display()
                ),
            )
            .expect("write garage.toml");
            nodes.push(Node {
                config,
                s3_port,
                rpc_port,
                admin_port,
                child: None,
            });
        }
        let mut garage = Garage {
            binary: binary(),
            _dir: dir,
            nodes,
            key: (String::new(), String::new()),
        };
        for i in 0..3 {
            garage.start_node(i);
        }
        let ids: Vec<String> = (0..3)
            .map(|i| {
                let out = garage.cli_on(i, &["node", "id", "-q"]);
                let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
                // `<hex id>@127.0.0.1:<port>`
                id.split('@').next().unwrap_or_default().to_string()
            })
            .collect();
        for (i, id) in ids.iter().enumerate().skip(1) {
            let addr = format!("{id}@127.0.0.1:{}", garage.nodes[i].rpc_port);
            garage.cli(&["node", "connect", &addr]);
        }
        for id in &ids {
            garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", id]);
        }
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.wait_healthy();
        let created = garage.cli(&["key", "create", "vtool-test"]);
        let text = String::from_utf8_lossy(&created.stdout).to_string();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {name:?} in `garage key create`:\n{text}"))
        };
        garage.key = (field("Key ID:"), field("Secret key:"));
        garage
    }

    fn start_node(&mut self, i: usize) {
        // Appended to, so that a restarted node's log keeps what it said before.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.nodes[i].config.with_file_name("log"))
            .expect("log");
        let child = Command::new(&self.binary)
            .args(["-c"])
            .arg(&self.nodes[i].config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {}: {e}; install Garage 2.5 with `cargo install garage --locked --version 2.5.0` (scripts/test.sh does), or set VTOOL_GARAGE",
                    self.binary.display()
                )
            });
        self.nodes[i].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.nodes[i].s3_port)).is_err() {
            assert!(Instant::now() < deadline, "garage node {i} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run the garage CLI against node `i`, which must succeed.
    fn cli_on(&self, i: usize, args: &[&str]) -> Output {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(&self.binary)
                .arg("-c")
                .arg(&self.nodes[i].config)
                .args(args)
                .output()
                .expect("run garage");
            if out.status.success() {
                return out;
            }
            // Right after start the RPC layer may not be up yet, nor peers connected.
            assert!(
                Instant::now() < deadline,
                "garage {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.cli_on(0, args)
    }

    /// Create `bucket`, owned and writable by the test key.
    pub fn create_bucket(&self, bucket: &str) {
        self.cli(&["bucket", "create", bucket]);
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            &self.key.0,
        ]);
    }

    /// S3 requests of kind `endpoint` (`PutObject`, `DeleteObjects`, …) the running nodes
    /// have served, from their Prometheus metrics (`api_s3_request_counter`).
    pub fn requests(&self, endpoint: &str) -> u64 {
        use std::io::{Read, Write};
        let wanted = format!("api_s3_request_counter{{api_endpoint=\"{endpoint}\"}}");
        let mut total = 0;
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let mut stream =
                std::net::TcpStream::connect(("127.0.0.1", node.admin_port)).expect("admin API");
            write!(
                stream,
                "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            .expect("request metrics");
            let mut text = String::new();
            stream.read_to_string(&mut text).expect("metrics");
            total += text
                .lines()
                .filter_map(|l| l.strip_prefix(&wanted))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum::<u64>();
        }
        total
    }

    /// Node 0's S3 endpoint (the one clients talk to; kill the others).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.nodes[0].s3_port)
    }

    /// SIGKILL node `i` (1 or 2: node 0 serves the S3 API the tests use).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start a killed node again on its directories, and wait until node 0 sees every node
    /// up again: a listening port alone does not mean the node has rejoined.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "node {i} is running");
        self.start_node(i);
        if self.nodes.iter().all(|n| n.child.is_some()) {
            self.wait_healthy();
        }
    }

    /// Wait until node 0 reports the cluster `healthy`: every storage node connected and
    /// every partition on all its nodes.
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.cli(&["json-api", "GetClusterHealth"]);
            let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if health["status"] == "healthy" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the garage cluster did not become healthy: {health}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A backend configuration for `bucket/prefix` on this cluster.
    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        let mut config = S3Config::new(bucket, prefix);
        config.endpoint = Some(self.endpoint());
        config.path_style = true;
        config.static_key = Some(self.key.clone());
        config.region = Some(REGION.into());
        config
    }

    /// The environment a `vtool` process needs for `s3://` URLs on this cluster.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VTOOL_S3_ENDPOINT", self.endpoint()),
            ("VTOOL_S3_PATH_STYLE", "1".into()),
            ("AWS_ACCESS_KEY_ID", self.key.0.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.key.1.clone()),
            ("AWS_REGION", REGION.into()),
        ]
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        // A failed test's cluster directory goes with it: keep what the nodes said.
        if std::thread::panicking() {
            for (i, node) in self.nodes.iter().enumerate() {
                let log = fs::read_to_string(node.config.with_file_name("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- garage node {i} log (last {} lines) ---", tail.len());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}
