"""rustic 0.11 (``cargo install rustic-rs``; bench/setup.sh builds it into .cache/rustic/bin):
repository format v2, zstd level 3 by default, the same pack format as restic.

Local repository only.  rustic reaches SFTP and S3 through OpenDAL service options rather
than restic-style URLs; the harness does not drive those, so the SFTP and S3 phases are
n/a for it.  ``forget --prune --instant-delete`` frees the space now, as restic's
``forget --prune`` does (rustic's default keeps deleted packs for 23 h).
"""

import os
import shutil

from .base import Cmd, Tool

BUILT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                      ".cache", "rustic", "bin", "rustic"))


class Rustic(Tool):
    name = "rustic"
    binary = BUILT if os.access(BUILT, os.X_OK) else (shutil.which("rustic") or "rustic")

    def env(self):
        e = super().env()
        for k in [k for k in e if k.startswith("RUSTIC_")]:
            del e[k]
        return e

    def _argv(self, *args):
        return [self.binary, "-r", self.repo, "--password", "bench", "--cache-dir", self.cache, *args]

    def init_cmd(self):
        return Cmd(self._argv("init"))

    def backup_cmd(self, phase):
        return Cmd(self._argv("backup", "--json", self.data_dir))

    def restore_cmd(self, target):
        return Cmd(self._argv("restore", "latest", target))

    def restored_root(self, target):
        return os.path.join(target, self.data_dir.lstrip("/"))

    def check_cmd(self):
        return Cmd(self._argv("check", "--read-data"))

    def retention_cmd(self, keep):
        return Cmd(self._argv("forget", "--keep-last", str(keep), "--prune", "--instant-delete"))

    def no_backend_note(self, kind):
        return f"not measured: the harness drives {kind} only through restic-style repository URLs"
