"""restic 0.14+: repository format v2 (compression=auto, i.e. zstd).

SFTP: ``-r sftp:USER@127.0.0.1:/PATH -o sftp.command="ssh USER@127.0.0.1 -p PORT -i KEY ... -s sftp"``
(restic splits sftp.command itself, honouring double quotes; no shell is involved).
"""

import json
import os

from .base import Cmd, Tool


class Restic(Tool):
    name = "restic"
    binary = "restic"

    def env(self):
        e = super().env()
        e.update(RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=self.cache)
        e.pop("RESTIC_REPOSITORY", None)
        return e

    def version_args(self):
        return ["version"]

    def init_cmd(self):
        return Cmd([self.binary, "init", "--repo", self.repo, "--repository-version", "2"])

    def backup_cmd(self, phase):
        # --json only changes the output format (the final line is a summary object)
        return Cmd([self.binary, "-r", self.repo, "backup", "--json", self.data_dir])

    def restore_cmd(self, target):
        return Cmd([self.binary, "-r", self.repo, "restore", "latest", "--target", target])

    def restore_verify_cmd(self, target):
        cmd = self.restore_cmd(target)
        cmd.argv.append("--verify")
        return cmd

    def restored_root(self, target):
        return os.path.join(target, self.data_dir.lstrip("/"))

    def check_cmd(self):
        return Cmd([self.binary, "-r", self.repo, "check", "--read-data"])

    def retention_cmd(self, keep):
        return Cmd([self.binary, "-r", self.repo, "forget", "--keep-last", str(keep), "--prune"])

    # -- SFTP repository --------------------------------------------------------------
    def _sftp_args(self, ssh, path):
        command = " ".join(f'"{a}"' if any(c.isspace() for c in a) else a for a in ssh.ssh_argv() + ["-s", "sftp"])
        return ["-r", f"sftp:{ssh.user}@127.0.0.1:{path}", "-o", f"sftp.command={command}"]

    def sftp_env(self):
        e = self.env()
        e["RESTIC_CACHE_DIR"] = self.sftp_cache
        return e

    def sftp_init_cmd(self, ssh, path):
        return Cmd([self.binary, *self._sftp_args(ssh, path), "init", "--repository-version", "2"],
                   env=self.sftp_env())

    def sftp_backup_cmd(self, ssh, path):
        return Cmd([self.binary, *self._sftp_args(ssh, path), "backup", "--json", self.data_dir],
                   env=self.sftp_env())

    def parse_summary(self, stdout_text):
        for line in reversed(stdout_text.splitlines()):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("message_type") == "summary":
                return obj
        return None
