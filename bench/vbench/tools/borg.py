"""borg 1.2: repokey-blake2, zstd level 3.

No restore-with-verification: ``restore_verify_cmd`` is None (n/a).  SFTP phase: borg
has no SFTP backend; it talks to ``borg serve`` over ssh instead
(``ssh://USER@127.0.0.1:PORT/PATH``, BORG_RSH with the bench key and known_hosts).
"""

import json
import os
import shlex
import subprocess

from .base import Cmd, Tool


class Borg(Tool):
    name = "borg"
    binary = "borg"

    def env(self):
        e = super().env()
        e.update(
            BORG_PASSPHRASE="bench",
            BORG_BASE_DIR=os.path.join(self.root, "home"),
            BORG_CACHE_DIR=self.cache,
            BORG_CONFIG_DIR=os.path.join(self.root, "config"),
            BORG_SECURITY_DIR=os.path.join(self.root, "security"),
            BORG_KEYS_DIR=os.path.join(self.root, "keys"),
            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
        )
        e.pop("BORG_REPO", None)
        return e

    def init_cmd(self):
        return Cmd([self.binary, "init", "--encryption=repokey-blake2", self.repo])

    def backup_cmd(self, phase):
        # rc 1 = "warning" in borg 1.2 (e.g. a file changed while read): still a backup
        return Cmd([self.binary, "create", "--compression", "zstd,3", "--stats", "--json",
                    f"{self.repo}::{phase}-{{now}}", self.data_dir], ok_codes=(0, 1))

    def latest_archive(self) -> str:
        p = subprocess.run([self.binary, "list", "--last", "1", "--short", self.repo],
                           capture_output=True, text=True, env=self.env())
        names = p.stdout.split()
        if p.returncode != 0 or not names:
            raise RuntimeError(f"borg list failed: {p.stderr.strip()[-300:]}")
        return names[-1]

    def restore_cmd(self, target):
        archive = self.latest_archive()  # untimed helper
        return Cmd([self.binary, "extract", f"{self.repo}::{archive}"], cwd=target, ok_codes=(0, 1),
                   notes={"archive": archive})

    def restored_root(self, target):
        return os.path.join(target, self.data_dir.lstrip("/"))

    def retention_cmd(self, keep):
        prune = [self.binary, "prune", "--keep-last", str(keep), self.repo]
        compact = [self.binary, "compact", self.repo]
        return Cmd(["sh", "-c", f"{shlex.join(prune)} && {shlex.join(compact)}"])

    def check_cmd(self):
        return Cmd([self.binary, "check", "--verify-data", self.repo])

    # -- repository on the SSH server (borg serve, not SFTP) --------------------------
    def sftp_env(self, ssh):
        e = self.env()
        e.update(BORG_CACHE_DIR=self.sftp_cache, BORG_RSH=shlex.join(["ssh", *ssh.ssh_options()]))
        return e

    def sftp_init_cmd(self, ssh, path):
        return Cmd([self.binary, "init", "--encryption=repokey-blake2",
                    f"ssh://{ssh.user}@127.0.0.1:{ssh.port}{path}"], env=self.sftp_env(ssh),
                   notes={"transport": "borg serve over ssh (borg has no SFTP backend)"})

    def sftp_backup_cmd(self, ssh, path):
        return Cmd([self.binary, "create", "--compression", "zstd,3", "--stats", "--json",
                    f"ssh://{ssh.user}@127.0.0.1:{ssh.port}{path}::sftp-{{now}}", self.data_dir],
                   ok_codes=(0, 1), env=self.sftp_env(ssh),
                   notes={"transport": "borg serve over ssh (borg has no SFTP backend)"})

    def parse_summary(self, stdout_text):
        try:
            return json.loads(stdout_text)
        except ValueError:
            return None

    def cache_paths(self):
        return [self.cache, os.path.join(self.root, "security")]
