"""vtool (this project).  CLI contract used here:

    vtool init    --repo R --identity-out R.identity --backup-key-out R.backupkey
    vtool backup  --repo R --backup-key R.backupkey DATA --json
    vtool restore --repo R --identity R.identity latest --target T --no-gate  -> T/<basename DATA>
    vtool restore ... --verify          (re-reads what it wrote; exit 3 if the fingerprint differs)
    vtool check   --repo R --read-data --identity R.identity
    vtool copy    --from R --to sftp://USER@127.0.0.1:PORT/DEST --json
    SFTP repository: init/backup as above with --repo sftp://USER@127.0.0.1:PORT/PATH and
    VTOOL_SSH_KEY / VTOOL_SSH_KNOWN_HOSTS in the environment
    S3 repository: --repo s3://bench/PREFIX (init/backup/restore) and vtool copy --to s3://bench/PREFIX,
    with VTOOL_S3_ENDPOINT, VTOOL_S3_PATH_STYLE=1, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION
"""

import json
import os
import shlex

from .base import Cmd, Tool

DEFAULT_BINARY = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                               "target", "release", "vtool"))


class Vtool(Tool):
    name = "vtool"
    binary = DEFAULT_BINARY

    @property
    def identity(self):
        return self.repo + ".identity"

    @property
    def backup_key(self):
        return self.repo + ".backupkey"

    def env(self):
        e = super().env()
        e["VTOOL_CACHE_DIR"] = self.cache
        return e

    def init_cmd(self):
        return Cmd([self.binary, "init", "--repo", self.repo,
                    "--identity-out", self.identity, "--backup-key-out", self.backup_key])

    def backup_cmd(self, phase):
        return Cmd([self.binary, "backup", "--repo", self.repo, "--backup-key", self.backup_key,
                    self.data_dir, "--json"])

    def _restore_argv(self, repo, identity, target):
        # --no-gate: the benchmark never runs `vtool gate`, so without it restore refuses the
        # dataset's keystores (the override is recorded in the repository, inside the timed restore).
        return [self.binary, "restore", "--repo", repo, "--identity", identity, "latest", "--target", target,
                "--no-gate"]

    def restore_cmd(self, target):
        return Cmd(self._restore_argv(self.repo, self.identity, target))

    def restore_verify_cmd(self, target):
        cmd = self.restore_cmd(target)
        cmd.argv.append("--verify")
        cmd.rc_meaning = {3: "vtool --verify: restored tree does not match the snapshot (or damaged objects)"}
        return cmd

    def restored_root(self, target):
        return os.path.join(target, os.path.basename(self.data_dir))

    def check_cmd(self):
        return Cmd([self.binary, "check", "--repo", self.repo, "--read-data", "--identity", self.identity])

    def retention_cmd(self, keep):
        # The identity stays unused: retention runs with the backup key alone.
        key = ["--repo", self.repo, "--backup-key", self.backup_key]
        forget = [self.binary, "forget", *key, "--keep-last", str(keep)]
        prune = [self.binary, "prune", *key, "--grace", "0s"]
        return Cmd(["sh", "-c", f"{shlex.join(forget)} && {shlex.join(prune)}"])

    # What a location keeps for itself (doc/FORMAT.md): check records vouch only for the
    # location they checked, and writers/, ends/, trash/, waiting/, check/ coordinate the
    # commands running against it. `vtool copy` carries every other object.
    LOCATION_RECORDS = ("checks", "writers", "ends", "trash", "waiting", "check")

    def copy_carries(self, rel):
        return rel.split(os.sep, 1)[0] not in self.LOCATION_RECORDS

    def copy_cmd(self, ssh, dest_path):
        return Cmd([self.binary, "copy", "--from", self.repo, "--to", ssh.url(dest_path), "--json"],
                   env=self.sftp_env(ssh))

    # -- SFTP repository --------------------------------------------------------------
    def sftp_env(self, ssh):
        e = self.env()
        e.update(ssh.vtool_env(), VTOOL_CACHE_DIR=self.sftp_cache)
        return e

    def sftp_keys(self):
        base = os.path.join(self.root, "sftp-repo")
        return base + ".identity", base + ".backupkey"

    def sftp_init_cmd(self, ssh, path):
        identity, backup_key = self.sftp_keys()
        return Cmd([self.binary, "init", "--repo", ssh.url(path),
                    "--identity-out", identity, "--backup-key-out", backup_key], env=self.sftp_env(ssh))

    def sftp_backup_cmd(self, ssh, path):
        return Cmd([self.binary, "backup", "--repo", ssh.url(path), "--backup-key", self.sftp_keys()[1],
                    self.data_dir, "--json"], env=self.sftp_env(ssh))

    # -- S3 repository ----------------------------------------------------------------
    def s3_env(self, s3):
        e = self.env()
        e.update(s3.vtool_env(), VTOOL_CACHE_DIR=self.s3_cache)
        return e

    def s3_keys(self):
        base = os.path.join(self.root, "s3-repo")
        return base + ".identity", base + ".backupkey"

    def s3_init_cmd(self, s3, prefix):
        identity, backup_key = self.s3_keys()
        return Cmd([self.binary, "init", "--repo", s3.url(prefix),
                    "--identity-out", identity, "--backup-key-out", backup_key], env=self.s3_env(s3))

    def s3_backup_cmd(self, s3, prefix):
        return Cmd([self.binary, "backup", "--repo", s3.url(prefix), "--backup-key", self.s3_keys()[1],
                    self.data_dir, "--json"], env=self.s3_env(s3))

    def s3_restore_cmd(self, s3, prefix, target):
        return Cmd(self._restore_argv(s3.url(prefix), self.s3_keys()[0], target), env=self.s3_env(s3))

    def s3_copy_cmd(self, s3, prefix):
        return Cmd([self.binary, "copy", "--from", self.repo, "--to", s3.url(prefix), "--json"],
                   env=self.s3_env(s3))

    def classify_failure(self, stderr_text):
        return "n/a" if "unrecognized subcommand" in stderr_text else "failed"

    def parse_summary(self, stdout_text):
        text = stdout_text.strip()
        try:
            return json.loads(text)
        except ValueError:
            for line in reversed(text.splitlines()):  # tolerate log lines before the JSON
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        return None
