"""restic 0.14+: repository format v2 (compression=auto, i.e. zstd).

SFTP: ``-r sftp:USER@127.0.0.1:/PATH -o sftp.command="ssh USER@127.0.0.1 -p PORT -i KEY ... -s sftp"``
(restic splits sftp.command itself, honouring double quotes; no shell is involved).
S3: ``-r s3:http://127.0.0.1:PORT/bench/PREFIX`` with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION=garage.
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

    # -- S3 repository ----------------------------------------------------------------
    def s3_args(self, s3, prefix):
        return ["-r", f"s3:{s3.endpoint}/{s3.bucket}/{prefix}"]

    def s3_env(self, s3):
        e = self.env()
        e.update(s3.aws_env(), RESTIC_CACHE_DIR=self.s3_cache)
        return e

    def s3_init_cmd(self, s3, prefix):
        return Cmd([self.binary, *self.s3_args(s3, prefix), "init", "--repository-version", "2"],
                   env=self.s3_env(s3))

    def s3_backup_cmd(self, s3, prefix):
        return Cmd([self.binary, *self.s3_args(s3, prefix), "backup", "--json", self.data_dir],
                   env=self.s3_env(s3))

    def s3_restore_cmd(self, s3, prefix, target):
        return Cmd([self.binary, *self.s3_args(s3, prefix), "restore", "latest", "--target", target],
                   env=self.s3_env(s3))

    def parse_summary(self, stdout_text):
        for line in reversed(stdout_text.splitlines()):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("message_type") == "summary":
                return obj
        return None
