"""vtool (this project).  CLI contract used here:

    vtool init    --repo R --identity-out R.identity --backup-key-out R.backupkey
    vtool backup  --repo R --backup-key R.backupkey DATA --json
    vtool restore --repo R --identity R.identity latest --target T   -> T/<basename DATA>
    vtool check   --repo R --read-data --identity R.identity
"""

import json
import os

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

    def restore_cmd(self, target):
        return Cmd([self.binary, "restore", "--repo", self.repo, "--identity", self.identity,
                    "latest", "--target", target])

    def restored_root(self, target):
        return os.path.join(target, os.path.basename(self.data_dir))

    def check_cmd(self):
        return Cmd([self.binary, "check", "--repo", self.repo, "--read-data", "--identity", self.identity])

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
