//! A throwaway OpenSSH server on 127.0.0.1 for tests: generated host and user keys, its own
//! authorized_keys and known_hosts, public-key login for the current user (or, started by
//! root, for one other user).

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vtool_transfer::SftpConfig;

use crate::running_as_root;

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Private key authorized on the server.
    pub user_key: PathBuf,
    /// known_hosts holding the server's host key for `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
    pub user: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

fn sshd_binary() -> PathBuf {
    // sshd refuses to re-exec itself unless started with an absolute path.
    for p in ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("OpenSSH sshd not found (install openssh-server)");
}

pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "vtool-test", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The `internal-sftp` flags of an append-only account (see the README's "Append-only
/// storage").
pub const APPEND_ONLY_FLAGS: &str = "-P remove,rmdir,posix-rename,setstat,fsetstat,lsetstat";

impl Sshd {
    pub fn start() -> Self {
        Self::start_with("", current_user())
    }

    /// Serve SFTP read-only (`internal-sftp -R`): writes are refused even for root.
    pub fn start_read_only() -> Self {
        Self::start_with("-R", current_user())
    }

    /// Serve SFTP that cannot delete: `internal-sftp -P` denies removing files and
    /// directories, overwriting renames and changing attributes, as for a backup account
    /// whose host may be stolen. Creating files and renaming them into free names works.
    pub fn start_append_only() -> Self {
        Self::start_with(APPEND_ONLY_FLAGS, current_user())
    }

    /// Log in as `user` instead (the server must run as root): its SFTP sessions have that
    /// user's file permissions, which root's sessions would bypass. The server's directory
    /// becomes world-readable so sshd, acting as `user`, can read authorized_keys.
    pub fn start_as(user: &str) -> Self {
        assert!(running_as_root(), "only root's sshd can log in as {user}");
        Self::start_with("", user.to_string())
    }

    fn start_with(sftp_flags: &str, user: String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        if user != current_user() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let host_key = d.join("host_ed25519");
        let user_key = d.join("user_ed25519");
        keygen(&host_key);
        keygen(&user_key);
        fs::copy(d.join("user_ed25519.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let port = free_port();
        let host_pub = fs::read_to_string(d.join("host_ed25519.pub")).expect("host pub");
        let known_hosts = d.join("known_hosts");
        fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}")).expect("known_hosts");
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host}\n\
                 PidFile {pid}\n\
                 AuthorizedKeysFile {auth}\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 MaxStartups 100\n\
                 MaxSessions 50\n\
                 LogLevel INFO\n\
                 Subsystem sftp internal-sftp {sftp_flags}\n",
                host = host_key.display(),
                pid = d.join("sshd.pid").display(),
                auth = d.join("authorized_keys").display(),
            ),
        )
        .expect("sshd_config");
        if running_as_root() {
            // sshd insists on its privilege-separation directory when started as root;
            // containers without systemd lack it.
            fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        let mut sshd = Sshd {
            log: d.join("sshd.log"),
            dir,
            port,
            user_key,
            known_hosts,
            user,
            config,
            child: None,
        };
        sshd.restart();
        sshd
    }

    /// Start (again) on the same port with the same keys.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "sshd already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let mut child = Command::new(sshd_binary())
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sshd exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        self.child = Some(child);
    }

    /// Kill sshd and every session process it forked (they outlive the listener otherwise),
    /// like a server crash: open connections drop at once.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut pids = descendants(child.id());
        pids.push(child.id());
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(|p| p.to_string()))
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &Path) -> String {
        format!(
            "sftp://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    /// A client configuration for `path`: this server's key and known_hosts, no agent, short
    /// timeouts so failures show quickly.
    pub fn config(&self, path: &Path) -> SftpConfig {
        let mut c = SftpConfig::new(
            self.user.clone(),
            "127.0.0.1",
            self.port,
            path.display().to_string(),
        );
        c.identity_file = Some(self.user_key.clone());
        c.known_hosts = Some(self.known_hosts.clone());
        c.use_agent = false;
        c.connect_timeout = Duration::from_secs(10);
        c.request_timeout = Duration::from_secs(10);
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// All processes below `pid`, from /proc (sshd's session processes call setsid(), so a
/// process-group kill would miss them).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // Fields after the parenthesised command name: state, ppid, ...
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &parent_of {
            if pp == parent && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}
