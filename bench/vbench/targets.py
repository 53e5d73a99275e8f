"""vtool's performance targets, evaluated against restic / borg results.

Each target: (phase, metric, reference tool, required factor).  ``ratio`` is always
oriented so that bigger is better for vtool and the target is met when ratio >= factor.
"""

from dataclasses import dataclass

SUBJECT = "vtool"


@dataclass(frozen=True)
class Target:
    id: str
    phase: str      # phase name, or "*" for all backup/restore phases
    metric: str     # "throughput" | "speed" | "repo" | "peak_rss"
    other: str
    factor: float
    text: str


TARGETS = (
    Target("first-throughput", "first", "throughput", "restic", 3.0, "first backup throughput >= 3x restic"),
    Target("first-repo", "first", "repo", "restic", 1.0, "first backup repo size <= restic's"),
    Target("incremental-speed", "incremental", "speed", "restic", 4.0, "incremental backup >= 4x faster than restic"),
    Target("nochange-speed", "nochange", "speed", "borg", 5.0, "no-change backup >= 5x faster than borg"),
    Target("restore-throughput", "restore", "throughput", "restic", 2.0, "restore throughput >= 2x restic"),
    Target("peak-rss", "*", "peak_rss", "borg", 1.0, "peak memory (max over backups+restore) <= borg's"),
)


def _ok(cell):
    return cell is not None and cell.get("status") == "ok"


def _peak(results, tool):
    vals = []
    for ph in results["phases"].values():
        if ph["kind"] not in ("backup", "restore"):
            continue
        cell = ph["tools"].get(tool)
        if not _ok(cell) or cell.get("peak_rss_mib") is None:
            return None  # a phase missing -> not comparable
        vals.append(cell["peak_rss_mib"])
    return max(vals) if vals else None


def ratio(results, phase, metric, other):
    """bigger-is-better ratio of SUBJECT vs other, or None if not comparable."""
    if metric == "peak_rss":
        v, o = _peak(results, SUBJECT), _peak(results, other)
        return o / v if v and o else None
    ph = results["phases"].get(phase)
    if not ph:
        return None
    v, o = ph["tools"].get(SUBJECT), ph["tools"].get(other)
    if not (_ok(v) and _ok(o)):
        return None
    if metric in ("throughput", "speed"):
        return o["wall_s"] / v["wall_s"] if v["wall_s"] > 0 else None
    if metric == "repo":
        return o["repo_mib"] / v["repo_mib"] if v.get("repo_mib") and o.get("repo_mib") else None
    raise ValueError(metric)


def evaluate(results) -> list:
    out = []
    for t in TARGETS:
        if t.phase != "*" and t.phase not in results["phases"]:
            continue
        r = ratio(results, t.phase, t.metric, t.other)
        out.append({"id": t.id, "phase": t.phase, "text": t.text, "other": t.other, "required": t.factor,
                    "ratio": None if r is None else round(r, 3),
                    "met": None if r is None else r >= t.factor})
    return out
