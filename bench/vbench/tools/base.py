"""What the harness needs from a backup tool.

Each tool gets its own directory (``root``) holding repo/, cache/, config, logs/ and
restore/ (plus sftp-cache/ and s3-cache/ for the repository on the SFTP server, whose files live under
the run's sftp-server/ dir).  Commands are returned as ``Cmd`` so the harness can time them
uniformly; a command the tool has no equivalent for is ``None`` (reported as n/a).
"""

import os
import shutil
import subprocess
from dataclasses import dataclass, field


@dataclass
class Cmd:
    argv: list
    cwd: str | None = None
    ok_codes: tuple = (0,)
    notes: dict = field(default_factory=dict)
    env: dict | None = None      # full environment; None = Tool.env()
    rc_meaning: dict = field(default_factory=dict)  # exit code -> what it means (for the report)


class Tool:
    name = "?"
    binary = "?"

    def __init__(self, root: str, data_dir: str, binary: str | None = None):
        self.root = os.path.abspath(root)
        self.data_dir = os.path.abspath(data_dir)
        if binary:
            self.binary = binary
        self.repo = os.path.join(self.root, "repo")
        self.cache = os.path.join(self.root, "cache")
        self.logs = os.path.join(self.root, "logs")
        self.sftp_cache = os.path.join(self.root, "sftp-cache")
        self.s3_cache = os.path.join(self.root, "s3-cache")

    # -- availability ---------------------------------------------------------------
    def resolved_binary(self) -> str | None:
        if os.sep in self.binary:
            return self.binary if os.access(self.binary, os.X_OK) else None
        return shutil.which(self.binary)

    def missing(self) -> str | None:
        """Reason the tool cannot run, or None."""
        return None if self.resolved_binary() else f"{self.binary} not found"

    def version(self) -> str:
        try:
            p = subprocess.run([self.resolved_binary() or self.binary, *self.version_args()],
                               capture_output=True, text=True, env=self.env(), timeout=30)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    def version_args(self):
        return ["--version"]

    # -- environment ----------------------------------------------------------------
    def env(self) -> dict:
        return dict(os.environ)

    # -- commands -------------------------------------------------------------------
    def init_cmd(self) -> Cmd:
        raise NotImplementedError

    def backup_cmd(self, phase: str) -> Cmd:
        raise NotImplementedError

    def restore_cmd(self, target: str) -> Cmd:
        raise NotImplementedError

    def restored_root(self, target: str) -> str:
        """Where the backed-up directory ends up under ``target``."""
        raise NotImplementedError

    def restore_verify_cmd(self, target: str) -> Cmd | None:
        """Restore like restore_cmd, plus the tool's own check of what it wrote."""
        return None

    def check_cmd(self) -> Cmd | None:
        return None

    def retention_cmd(self, keep: int) -> Cmd | None:
        """Keep the ``keep`` newest snapshots and free the space of the others, now."""
        return None

    def copy_cmd(self, ssh, dest_path: str) -> Cmd | None:
        """Copy the local repository to ``dest_path`` on the SFTP server ``ssh`` (sshd.SshServer)."""
        return None

    # -- a repository on the SFTP server (its files are at the absolute ``path``) ---------
    def sftp_init_cmd(self, ssh, path: str) -> Cmd | None:
        return None

    def sftp_backup_cmd(self, ssh, path: str) -> Cmd | None:
        return None

    # -- a repository on the S3 cluster ``s3`` (garage.GarageCluster), under ``prefix`` of its bucket --
    def s3_init_cmd(self, s3, prefix: str) -> Cmd | None:
        return None

    def s3_backup_cmd(self, s3, prefix: str) -> Cmd | None:
        return None

    def s3_restore_cmd(self, s3, prefix: str, target: str) -> Cmd | None:
        """Restore the latest snapshot; the tree lands where restored_root(target) says."""
        return None

    def s3_copy_cmd(self, s3, prefix: str) -> Cmd | None:
        """Copy the local repository to a new ``prefix`` on the S3 cluster."""
        return None

    def copy_carries(self, rel: str) -> bool:
        """Whether a copy of the repository by this tool carries the file ``rel`` (directories
        are not compared: an empty one is no data)."""
        return True

    def no_backend_note(self, kind: str) -> str:
        """Why the ``kind`` ("SFTP", "S3") phases are n/a for this tool."""
        return f"{self.name} has no {kind} backend"

    # -- results --------------------------------------------------------------------
    def classify_failure(self, stderr_text: str) -> str:
        """'failed' or 'n/a' (feature not implemented by this tool version)."""
        return "failed"

    def parse_summary(self, stdout_text: str):
        """Tool-reported backup summary (dict) if it prints one."""
        return None

    def repo_paths(self):
        return [self.repo]

    def cache_paths(self):
        return [self.cache]
