"""vtool's performance targets, evaluated against restic / borg / scp results or against
vtool itself in another phase.

Each target: (phase, metric, reference, required factor).  The reference is ``other``
(a tool, or a per-phase reference such as "scp") in ``other_phase`` (default: the same
phase; a different phase with other="vtool" makes a self-comparison).

``ratio`` orientation depends on the metric:
  throughput / speed / repo / phase_rss  bigger is better for vtool: other / vtool
                                         (wall time, repo MiB, RSS in this phase); met when
                                         ratio >= factor
  peak_rss                               the same for RSS, in the worst of the backup,
                                         restore and check phases (RSS_KINDS)
  cost                                   vtool's wall / other's wall: how much more vtool's
                                         phase costs; met when ratio <= factor
"""

from dataclasses import dataclass

SUBJECT = "vtool"
RSS_KINDS = ("backup", "sftp-backup", "restore", "restore-verify", "check")


@dataclass(frozen=True)
class Target:
    id: str
    phase: str      # phase name, or "*" for all backup/restore phases
    metric: str     # "throughput" | "speed" | "repo" | "peak_rss" | "phase_rss" | "cost"
    other: str      # tool or per-phase reference ("scp"); may be SUBJECT with other_phase
    factor: float
    text: str
    other_phase: str | None = None  # compare with ``other`` in this phase instead

    @property
    def op(self) -> str:
        return "<=" if self.metric == "cost" else ">="

    @property
    def versus(self) -> str:
        return f"{self.other} {self.other_phase}" if self.other_phase else self.other


TARGETS = (
    Target("first-throughput", "first", "throughput", "restic", 3.5, "first backup throughput >= 3.5x restic"),
    Target("first-throughput-rustic", "first", "throughput", "rustic", 2.5,
           "first backup throughput >= 2.5x rustic"),
    Target("first-repo", "first", "repo", "restic", 1.0, "first backup repo size <= restic's"),
    Target("sftp-backup-throughput", "sftp-backup", "throughput", "restic", 2.5,
           "first backup to SFTP throughput >= 2.5x restic"),
    Target("incremental-speed", "incremental", "speed", "restic", 5.0, "incremental backup >= 5x faster than restic"),
    Target("nochange-speed", "nochange", "speed", "borg", 10.0, "no-change backup >= 10x faster than borg"),
    Target("restore-throughput", "restore", "throughput", "restic", 2.5, "restore throughput >= 2.5x restic"),
    Target("restore-throughput-rustic", "restore", "throughput", "rustic", 2.0, "restore throughput >= 2x rustic"),
    Target("restore-verify-cost", "restore-verify", "cost", SUBJECT, 1.3,
           "restore --verify costs at most 30% more than a plain restore", other_phase="restore"),
    Target("check-throughput", "check", "throughput", "restic", 3.0, "check --read-data throughput >= 3x restic"),
    Target("retention-speed", "retention", "speed", "restic", 3.0,
           "forget keeping 3 + prune >= 3x faster than restic forget --prune"),
    Target("retention-repo", "retention", "repo", "restic", 1.0,
           "repository after forget + prune <= restic's"),
    Target("retention-rss", "retention", "phase_rss", "restic", 1.0,
           "forget + prune peak memory <= restic's"),
    Target("sftp-copy-throughput", "sftp-copy", "throughput", "scp", 0.8,
           "copy to SFTP throughput >= 0.8x scp of the same repository"),
    Target("peak-rss", "*", "peak_rss", "borg", 1.0,
           "peak memory <= borg's in every backup, restore and check phase (the worst phase)"),
)


def _ok(cell):
    return cell is not None and cell.get("status") == "ok"


def cell(results, phase, name):
    """A tool's or a per-phase reference's result in a phase, or None."""
    ph = results["phases"].get(phase)
    if not ph:
        return None
    return ph["tools"].get(name) or ph.get("references", {}).get(name)


def _worst_rss_ratio(results, other):
    """min over the backup, restore and check phases both tools ran of other's peak RSS /
    SUBJECT's: below 1 means SUBJECT used more memory than ``other`` in at least one phase."""
    ratios = []
    for ph in results["phases"].values():
        if ph["kind"] not in RSS_KINDS:
            continue
        v, o = ph["tools"].get(SUBJECT), ph["tools"].get(other)
        if _ok(v) and _ok(o) and v.get("peak_rss_mib") and o.get("peak_rss_mib"):
            ratios.append(o["peak_rss_mib"] / v["peak_rss_mib"])
    return min(ratios) if ratios else None


def ratio(results, phase, metric, other, other_phase=None):
    """SUBJECT in phase vs other in other_phase (default phase), oriented as described in
    the module docstring, or None if not comparable."""
    if metric == "peak_rss":
        return _worst_rss_ratio(results, other)
    v, o = cell(results, phase, SUBJECT), cell(results, other_phase or phase, other)
    if not (_ok(v) and _ok(o)):
        return None
    if metric in ("throughput", "speed"):  # same bytes on both sides: throughput ratio = time ratio
        return o["wall_s"] / v["wall_s"] if v["wall_s"] > 0 else None
    if metric == "cost":
        return v["wall_s"] / o["wall_s"] if o["wall_s"] > 0 else None
    if metric == "repo":
        return o["repo_mib"] / v["repo_mib"] if v.get("repo_mib") and o.get("repo_mib") else None
    if metric == "phase_rss":
        a, b = v.get("peak_rss_mib"), o.get("peak_rss_mib")
        return b / a if a and b else None
    raise ValueError(metric)


def evaluate(results) -> list:
    out = []
    for t in TARGETS:
        if t.phase != "*" and t.phase not in results["phases"]:
            continue
        r = ratio(results, t.phase, t.metric, t.other, t.other_phase)
        met = None if r is None else (r <= t.factor if t.op == "<=" else r >= t.factor)
        row = {"id": t.id, "phase": t.phase, "text": t.text, "other": t.other,
               "other_phase": t.other_phase, "versus": t.versus, "metric": t.metric, "op": t.op,
               "required": t.factor, "ratio": None if r is None else round(r, 3), "met": met}
        if r is None and t.other_phase and t.other_phase not in results["phases"]:
            row["why"] = f"phase {t.other_phase} not run"
        out.append(row)
    return out
