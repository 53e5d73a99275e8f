"""restic 0.14+: repository format v2 (compression=auto, i.e. zstd)."""

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

    def restored_root(self, target):
        return os.path.join(target, self.data_dir.lstrip("/"))

    def check_cmd(self):
        return Cmd([self.binary, "-r", self.repo, "check", "--read-data"])

    def parse_summary(self, stdout_text):
        for line in reversed(stdout_text.splitlines()):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("message_type") == "summary":
                return obj
        return None
