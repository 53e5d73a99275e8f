"""The benchmark, as an ordered list of phases (the extension point).

Every phase runs for every tool before the next phase starts, so all tools see the
same data in the same state.  ``state`` says which dataset state a phase needs: the
suite mutates A -> B (mutate.py) right before the first phase that needs "B".
Restore/check run against whatever was backed up last (restore is verified against
the live data, which is exactly that state).

To add a phase: append a Phase here; if its ``kind`` is new, register a runner for
it in suite.RUNNERS (a function (phase, tool, ctx) -> result dict) and, if it needs a
new command, add a method to tools.base.Tool and the adapters.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str    # key in results / --phases
    title: str
    kind: str    # "backup" | "restore" | "check"  (see suite.RUNNERS)
    state: str | None  # dataset state it needs ("A"/"B"); None = whatever was backed up last


PHASES = (
    Phase("first", "First backup", "backup", "A"),
    Phase("incremental", "Incremental backup (one day later)", "backup", "B"),
    Phase("nochange", "No-change backup (same data again)", "backup", "B"),
    Phase("restore", "Restore the latest snapshot into an empty directory", "restore", None),
    Phase("check", "Check the repository, reading all data", "check", None),
)

BY_NAME = {p.name: p for p in PHASES}


def select(names) -> list:
    """Phases by name, in canonical order."""
    unknown = set(names) - set(BY_NAME)
    if unknown:
        raise ValueError(f"unknown phase(s) {sorted(unknown)}; known: {', '.join(BY_NAME)}")
    return [p for p in PHASES if p.name in set(names)]
