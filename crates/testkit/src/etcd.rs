//! A throwaway etcd (Debian's `etcd-server`) on 127.0.0.1: one member or a cluster, each in
//! its own data directory, serving clients over mutual TLS with certificates made here, or
//! over plaintext.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::sshd::free_port;

/// A CA and the certificates it signed, as PEM files in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// A CA named `name`, a server certificate for 127.0.0.1/localhost and a client one.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca, ca_key);
        let write = |file: &str, pem: String| {
            let p = dir.join(format!("{name}-{file}"));
            fs::write(&p, pem).expect("write pem");
            p
        };
        let leaf = |cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
                .expect("leaf params");
            p.distinguished_name.push(DnType::CommonName, cn);
            p.use_authority_key_identifier_extension = true;
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("leaf key");
            let cert = p.signed_by(&key, &issuer).expect("sign leaf");
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = leaf("etcd", ExtendedKeyUsagePurpose::ServerAuth);
        let (client, client_key) = leaf("vtool", ExtendedKeyUsagePurpose::ClientAuth);
        Pki {
            ca: write("ca.crt", ca_cert.pem()),
            server_cert: write("server.crt", server),
            server_key: write("server.key", server_key),
            client_cert: write("client.crt", client),
            client_key: write("client.key", client_key),
        }
    }
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// etcd members on loopback; killed when dropped.
pub struct Etcd {
    pub dir: tempfile::TempDir,
    /// `None`: plaintext clients.
    pub pki: Option<Pki>,
    members: Vec<Member>,
}

impl Etcd {
    /// One member serving mutual TLS.
    pub fn start() -> Etcd {
        Etcd::cluster(1)
    }

    /// `n` members serving mutual TLS (peers talk plaintext on loopback).
    pub fn cluster(n: usize) -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new(dir.path(), "test");
        Etcd::launch(dir, n, Some(pki))
    }

    /// One member serving mutual TLS with these certificates.
    pub fn with_pki(pki: Pki) -> Etcd {
        Etcd::launch(tempfile::tempdir().expect("tempdir"), 1, Some(pki))
    }

    /// One member serving plaintext `http://`.
    pub fn plaintext() -> Etcd {
        Etcd::launch(tempfile::tempdir().expect("tempdir"), 1, None)
    }

    fn launch(dir: tempfile::TempDir, n: usize, pki: Option<Pki>) -> Etcd {
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let mut etcd = Etcd { dir, pki, members };
        for i in 0..n {
            etcd.spawn(i);
        }
        etcd.wait_healthy();
        etcd
    }

    fn scheme(&self) -> &'static str {
        if self.pki.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn spawn(&mut self, i: usize) {
        let cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let m = &self.members[i];
        let client = format!("{}://127.0.0.1:{}", self.scheme(), m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let data = self.dir.path().join(&m.name);
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .expect("log file");
        let mut c = Command::new("etcd");
        c.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "vtool-test"])
            // Quick elections and no metrics port: the tests kill members.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Some(p) = &self.pki {
            c.arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(&p.ca)
                .arg("--cert-file")
                .arg(&p.server_cert)
                .arg("--key-file")
                .arg(&p.server_key);
        }
        let child = c
            .spawn()
            .expect("start etcd (install etcd-server: apt-get install etcd-server)");
        self.members[i].child = Some(child);
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("{}://127.0.0.1:{}", self.scheme(), m.client_port))
            .collect()
    }

    /// `--etcd URL…` and, with TLS, the certificate options, as vtool takes them.
    pub fn vtool_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for e in self.endpoints() {
            args.extend(["--etcd".to_string(), e]);
        }
        match &self.pki {
            Some(p) => {
                for (flag, path) in [
                    ("--etcd-cacert", &p.ca),
                    ("--etcd-cert", &p.client_cert),
                    ("--etcd-key", &p.client_key),
                ] {
                    args.extend([flag.to_string(), path.display().to_string()]);
                }
            }
            None => args.push("--insecure-plaintext".into()),
        }
        args
    }

    /// `etcdctl` against every member, with the client certificate.
    pub fn etcdctl(&self, args: &[&str]) -> Command {
        self.etcdctl_at(&self.endpoints(), args)
    }

    fn etcdctl_at(&self, endpoints: &[String], args: &[&str]) -> Command {
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")));
        if let Some(p) = &self.pki {
            c.arg(format!("--cacert={}", p.ca.display()))
                .arg(format!("--cert={}", p.client_cert.display()))
                .arg(format!("--key={}", p.client_key.display()));
        }
        c.args(args);
        c
    }

    /// Run `etcdctl args`, which must succeed.
    pub fn etcdctl_ok(&self, args: &[&str]) -> Output {
        let out = self.etcdctl(args).output().expect("run etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `etcdctl lock --ttl=TTL LOCK`, returned once it holds the lock (its lease expires
    /// `ttl` seconds after it is killed).
    pub fn hold_lock(&self, lock: &str, ttl: u32) -> Child {
        let mut holder = self
            .etcdctl(&["lock", &format!("--ttl={ttl}"), lock])
            .stdout(Stdio::piped())
            .spawn()
            .expect("etcdctl lock");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("read what etcdctl lock printed");
        holder
    }

    /// Revoke the lease of whoever holds `lock` (the waiter with the oldest key): the lock
    /// passes on at once, as when a holder's lease expires, without waiting for a TTL.
    pub fn revoke_lock_holder(&self, lock: &str) {
        let out = self.etcdctl_ok(&["get", "--prefix", &format!("{lock}/"), "-w", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("etcdctl json");
        let holder = v["kvs"]
            .as_array()
            .and_then(|kvs| kvs.iter().min_by_key(|kv| kv["create_revision"].as_i64()))
            .and_then(|kv| kv["lease"].as_i64())
            .expect("a lock holder with a lease");
        self.etcdctl_ok(&["lease", "revoke", &format!("{holder:x}")]);
    }

    /// Keys under the lock `lock`: its holder's and its waiters', each bound to a lease.
    pub fn lock_keys(&self, lock: &str) -> usize {
        let out = self.etcdctl_ok(&["get", "--prefix", &format!("{lock}/"), "-w", "json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("etcdctl json")["kvs"]
            .as_array()
            .map_or(0, Vec::len)
    }

    /// Kill member `i` (SIGKILL) and wait for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start member `i` again on its data directory and wait until the cluster is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_healthy();
    }

    /// Until every running member answers `endpoint health`.
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let running: Vec<String> = self
            .members
            .iter()
            .zip(self.endpoints())
            .filter(|(m, _)| m.child.is_some())
            .map(|(_, e)| e)
            .collect();
        loop {
            let out = self
                .etcdctl_at(&running, &["endpoint", "health"])
                .output()
                .expect("run etcdctl");
            if out.status.success() {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| {
                        fs::read_to_string(self.dir.path().join(format!("{}.log", m.name)))
                            .unwrap_or_default()
                    })
                    .collect();
                panic!(
                    "etcd not healthy after 30s: {}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
