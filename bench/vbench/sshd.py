"""A throwaway OpenSSH server on 127.0.0.1 for the SFTP phases.

Mirrors crates/testkit/src/sshd.rs: generated ed25519 host and user keys, its
own sshd_config (127.0.0.1 only, a free port, public-key login for the current user only,
``StrictModes no``, ``UsePAM no``, ``Subsystem sftp internal-sftp``), a known_hosts file
with ``[127.0.0.1]:PORT <host key>``.  ``/usr/sbin/sshd -D -e -f CONFIG`` runs in the
foreground; ``stop()`` kills it and every session process it forked (those call setsid(),
so a process-group kill would miss them).

Clients get the server's key and known_hosts explicitly (no agent, no ~/.ssh):
``ssh_argv()`` for ssh/restic/borg, ``scp_argv()`` for the scp reference, ``url()`` and
``vtool_env()`` for vtool (VTOOL_SSH_KEY / VTOOL_SSH_KNOWN_HOSTS).
"""

import os
import shutil
import socket
import subprocess
import time

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")


def sshd_binary() -> str | None:
    # sshd refuses to re-exec itself unless started with an absolute path.
    for p in SSHD_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vbench", "-f", path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _descendants(pid: int) -> list:
    """All processes below pid, from /proc."""
    parent_of = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            parent_of.append((int(e), int(rest[1])))
        except (OSError, IndexError, ValueError):
            continue
    out, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for p, pp in parent_of:
            if pp == parent and p not in out:
                out.append(p)
                frontier.append(p)
    return out


class SshServer:
    """Call ``missing()`` first; ``start()`` raises RuntimeError with sshd's log on failure."""

    def __init__(self, workdir: str):
        self.dir = os.path.abspath(workdir)
        self.binary = sshd_binary()
        self.user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        self.port = None
        self.user_key = os.path.join(self.dir, "user_ed25519")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.config = os.path.join(self.dir, "sshd_config")
        self.log_path = os.path.join(self.dir, "sshd.log")
        self.proc = None

    def missing(self) -> str | None:
        """Reason the SFTP phases cannot run, or None."""
        if not self.binary:
            return f"OpenSSH sshd not found (looked at {', '.join(SSHD_CANDIDATES)})"
        for b in ("ssh-keygen", "ssh"):
            if not shutil.which(b):
                return f"{b} not found"
        if not self.user:
            return "cannot determine the current user (id -un)"
        return None

    def log_tail(self, n: int = 5) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return " | ".join(ln.strip() for ln in f.read().splitlines()[-n:])
        except OSError:
            return ""

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        host_key = os.path.join(self.dir, "host_ed25519")
        _keygen(host_key)
        _keygen(self.user_key)
        auth = os.path.join(self.dir, "authorized_keys")
        shutil.copyfile(self.user_key + ".pub", auth)
        self.port = _free_port()
        with open(host_key + ".pub") as f:
            host_pub = f.read()
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {host_pub}")
        with open(self.config, "w") as f:
            f.write(f"Port {self.port}\n"
                    "ListenAddress 127.0.0.1\n"
                    f"HostKey {host_key}\n"
                    f"PidFile {os.path.join(self.dir, 'sshd.pid')}\n"
                    f"AuthorizedKeysFile {auth}\n"
                    "PubkeyAuthentication yes\n"
                    "PasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\n"
                    "PermitRootLogin prohibit-password\n"
                    "StrictModes no\n"
                    "UsePAM no\n"
                    "MaxStartups 100\n"
                    "MaxSessions 50\n"
                    "LogLevel INFO\n"
                    "Subsystem sftp internal-sftp\n")
        if os.geteuid() == 0:
            # sshd insists on its privilege-separation directory when started as root;
            # containers without systemd lack it (same as the Rust test harness).
            os.makedirs("/run/sshd", exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "-D", "-e", "-f", self.config],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                pass
            if self.proc.poll() is not None:
                rc, self.proc = self.proc.returncode, None
                raise RuntimeError(f"sshd exited with {rc}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port}: {self.log_tail()}")
            time.sleep(0.025)

    def stop(self) -> None:
        """Kill sshd and every session process it forked."""
        if self.proc is None:
            return
        for pid in _descendants(self.proc.pid) + [self.proc.pid]:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        self.proc.wait()
        self.proc = None

    # -- client side ----------------------------------------------------------------
    def ssh_options(self) -> list:
        """Options for ssh/scp: only our key, only our known_hosts, never prompt."""
        return ["-i", self.user_key, "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]

    def ssh_argv(self) -> list:
        """`ssh USER@127.0.0.1 -p PORT <options>`, without a remote command."""
        return ["ssh", f"{self.user}@127.0.0.1", "-p", str(self.port)] + self.ssh_options()

    def scp_argv(self, src: str, dest_path: str) -> list:
        # OpenSSH >= 9.0 scp speaks the SFTP protocol, like the tools it is compared with.
        return (["scp", "-r", "-q", "-P", str(self.port)] + self.ssh_options()
                + [src, f"{self.user}@127.0.0.1:{dest_path}"])

    def url(self, path: str) -> str:
        """vtool's sftp:// URL for an absolute path on the server."""
        return f"sftp://{self.user}@127.0.0.1:{self.port}{path}"

    def vtool_env(self) -> dict:
        return {"VTOOL_SSH_KEY": self.user_key, "VTOOL_SSH_KNOWN_HOSTS": self.known_hosts}
