"""The benchmark, as an ordered list of phases (the extension point).

Every phase runs for every tool before the next phase starts, so all tools see the
same data in the same state.  ``state`` says which dataset state a phase needs: the
suite mutates A -> B (mutate.py) right before the first phase that needs "B".
Restore/check/copy run against whatever was backed up last (restore is verified against
the live data, which is exactly that state).

``sftp-backup`` is a first backup of state A into a fresh repository on a throwaway sshd on
127.0.0.1, so it sits right after ``first`` (same bytes as ``first``; the local repositories
are not touched).  ``sftp-copy`` copies the local repository as the backup phases left it,
so it comes last.  The S3 phases mirror them on a throwaway 3-node Garage cluster
(vbench/garage.py): ``s3-backup`` and ``s3-restore`` (which needs state A, hence before
``incremental``) right after ``sftp-backup``, ``s3-copy`` at the end.  A phase with a ``reference`` also runs that reference measurement once
(suite.REFERENCES), e.g. ``scp -r`` of vtool's repository for ``sftp-copy``.

To add a phase: append a Phase here; if its ``kind`` is new, register a runner for
it in suite.RUNNERS (a function (phase, tool, ctx) -> result dict) and, if it needs a
new command, add a method to tools.base.Tool and the adapters.
"""

from dataclasses import dataclass

LOCAL_BACKUP = "backup"


@dataclass(frozen=True)
class Phase:
    name: str    # key in results / --phases
    title: str
    kind: str    # "backup" | "restore" | "restore-verify" | "check" | "retention" | "sftp-backup" | "sftp-copy" | "s3-*"
    state: str | None  # dataset state it needs ("A"/"B"); None = whatever was backed up last
    needs_backup: bool = False     # reads the local repository: needs a "backup" phase before it
    reference: str | None = None   # extra non-tool measurement (suite.REFERENCES), e.g. "scp"
    note: str | None = None        # printed under the phase's table


PHASES = (
    Phase("first", "First backup", "backup", "A"),
    Phase("sftp-backup", "First backup to a repository on SFTP (127.0.0.1)", "sftp-backup", "A",
          note="same state-A data as `first`, into a new repository on the local sshd; "
               "borg uses `borg serve` over ssh (it has no SFTP backend)"),
    Phase("s3-backup", "First backup to a repository on S3 (3-node Garage, 127.0.0.1)", "s3-backup", "A",
          note="same state-A data as `first`, into a new repository on the local Garage cluster; "
               "requests = S3 requests counted by the cluster; req/GiB = requests per GiB stored "
               "under the repository's prefix; borg has no S3 backend"),
    Phase("s3-restore", "Restore the latest snapshot from the S3 repository", "s3-restore", "A",
          note="verified byte-for-byte against state A; stored MiB = the repository's objects"),
    Phase("incremental", "Incremental backup (one day later)", "backup", "B"),
    Phase("nochange", "No-change backup (same data again)", "backup", "B"),
    Phase("restore", "Restore the latest snapshot into an empty directory", "restore", None,
          needs_backup=True),
    Phase("restore-verify", "Restore with the tool's own verification (--verify)", "restore-verify", None,
          needs_backup=True),
    Phase("check", "Check the repository, reading all data", "check", None, needs_backup=True),
    Phase("retention", "Seven days of backups, then forget keeping 3 and prune", "retention", None,
          needs_backup=True,
          note="before it, the dataset goes through more simulated days (each tool backs up "
               "every day, untimed) until every tool has 7 snapshots; timed: `vtool forget "
               "--keep-last 3` + `vtool prune --grace 0s` (backup key only), `restic forget "
               "--keep-last 3 --prune`, `borg prune --keep-last 3` + `borg compact`; repo MiB "
               "after"),
    Phase("sftp-copy", "Copy vtool's local repository to SFTP (127.0.0.1)", "sftp-copy", None,
          needs_backup=True, reference="scp",
          note="MB/s = bytes of vtool's local repository / wall (both rows move the same directory); "
               "repo MiB = size of the copy on the server"),
    Phase("s3-copy", "Copy vtool's local repository to S3 (3-node Garage, 127.0.0.1)", "s3-copy", None,
          needs_backup=True, reference="aws-s3-sync",
          note="MB/s = bytes of vtool's local repository / wall (both rows move the same directory); "
               "stored MiB = sum of the object sizes under the destination prefix; restic n/a (vtool's "
               "repository is copied), borg has no S3 backend"),
)

BY_NAME = {p.name: p for p in PHASES}


def select(names) -> list:
    """Phases by name, in canonical order.  ValueError for unknown names, or for phases that
    read the repository without a backup phase in the run (every run starts with empty
    repositories)."""
    unknown = set(names) - set(BY_NAME)
    if unknown:
        raise ValueError(f"unknown phase(s) {sorted(unknown)}; known: {', '.join(BY_NAME)}")
    chosen = [p for p in PHASES if p.name in set(names)]
    if not any(p.kind == LOCAL_BACKUP for p in chosen):
        need = [p.name for p in chosen if p.needs_backup]
        if need:
            raise ValueError(f"phase(s) {', '.join(need)} need a backup in the same run (every run starts "
                             f"with new, empty repositories): add at least one of "
                             f"{', '.join(p.name for p in PHASES if p.kind == LOCAL_BACKUP)}, "
                             f"e.g. --phases first,{','.join(need)}")
    return chosen
