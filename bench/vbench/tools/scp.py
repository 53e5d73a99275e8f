"""scp: not a backup tool, the yardstick for ``sftp-copy`` (a per-phase reference, not in TOOLS).

``scp -r`` copies vtool's local repository directory to the SFTP server, so it moves
exactly the bytes ``vtool copy`` moves.  OpenSSH >= 9.0 scp uses the SFTP protocol.
Uses the Tool interface only to be measured like the tools (logs, env, missing, version).
"""

import os
import subprocess

from .base import Cmd, Tool


class Scp(Tool):
    name = "scp"
    binary = "scp"

    def __init__(self, root: str, source: str):
        super().__init__(root, source)
        self.source = os.path.abspath(source)

    def version(self):
        try:  # scp has no version flag; it is OpenSSH's
            p = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=30)
            return (p.stderr or p.stdout).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    def copy_cmd(self, ssh, dest_path):
        # dest_path must not exist: scp -r then creates it as a copy of the source directory
        return Cmd(ssh.scp_argv(self.source, dest_path))
