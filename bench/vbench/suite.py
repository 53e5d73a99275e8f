"""One benchmark run for one dataset size: dataset cache, tools, phases, results."""

import json
import os
import platform
import shutil
import subprocess
import sys
import time

from . import GENERATOR_VERSION, dataset, measure, mutation, targets, tree
from .phases import Phase
from .tools import TOOLS
from .units import MIB, fmt_size, size_label


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------
# dataset cache: <work>/datasets/<size>-s<seed>/node  (+ dataset.json marker)
# ---------------------------------------------------------------------------------
def ensure_dataset(work: str, size: int, seed: int, regen: bool = False):
    key = f"{size_label(str(size))}-s{seed}"
    base = os.path.join(work, "datasets", key)
    node, marker = os.path.join(base, "node"), os.path.join(base, "dataset.json")
    if not regen and os.path.exists(marker):
        with open(marker) as f:
            info = json.load(f)
        if info.get("generator_version") == GENERATOR_VERSION and os.path.isdir(node):
            log(f"dataset cached: {node}")
            return node, info
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    log(f"generating {fmt_size(size)} dataset (seed {seed}) in {node}")
    info = dataset.generate(node, size, seed)
    info["compression"] = dataset.measure_compression(node)
    info["generator_version"] = GENERATOR_VERSION
    with open(marker, "w") as f:
        json.dump(info, f, indent=2)
    log(f"generated {fmt_size(info['total_bytes'])} in {info['seconds']} s; "
        f"freezer {info['compression']['freezer_ratio']}x ({info['compression']['method']})")
    return node, info


def copy_tree(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", src, dst], check=True)


# ---------------------------------------------------------------------------------
# context shared by the phase runners
# ---------------------------------------------------------------------------------
class Context:
    def __init__(self, opts, data_dir: str):
        self.opts = opts
        self.data_dir = data_dir
        self.state = "A"
        self._manifests = {}
        self.broken = {}                 # tool -> reason later phases are skipped
        self.verification_failures = []
        self.drop_ok = None

    def manifest(self, with_hash: bool = False) -> dict:
        key = (self.state, with_hash)
        if key not in self._manifests:
            self._manifests[key] = tree.manifest(self.data_dir, with_hash=with_hash)
        return self._manifests[key]

    def dataset_bytes(self) -> int:
        return tree.total_bytes(self.manifest())

    def to_state(self, state: str | None) -> dict | None:
        if state is None or state == self.state:
            return None
        if (self.state, state) != ("A", "B"):
            raise RuntimeError(f"cannot go from state {self.state} to {state}")
        log("mutating the dataset: state A -> B (one day later)")
        info = mutation.mutate(self.data_dir, self.opts.seed)
        self.state = "B"
        return info


def _measured(phase: Phase, tool, cmd, ctx: Context, tag: str | None = None) -> dict:
    if not ctx.opts.no_drop_caches:
        ok = measure.drop_caches()
        ctx.drop_ok = ok if ctx.drop_ok is None else (ctx.drop_ok and ok)
    log(f"  {tool.name}: {phase.name}: {' '.join(cmd.argv)}" + (f"  (cwd {cmd.cwd})" if cmd.cwd else ""))
    m = measure.run_measured(cmd.argv, tool.env(), cmd.cwd, tool.logs, tag or phase.name, ctx.opts.timeout)
    m["sync_s"] = round(measure.timed_sync(), 3)  # deferred writes the tool left behind (not in wall)
    if m["rc"] in cmd.ok_codes:
        m["status"] = "ok"
    else:
        with open(m["stderr"], errors="replace") as f:
            m["status"] = tool.classify_failure(f.read())
        m["note"] = f"rc={m['rc']}: {measure.tail(m['stderr'], 2, 120)}"
    nbytes = ctx.dataset_bytes()
    m["dataset_bytes"] = nbytes
    m["wall_s"] = round(m["wall_s"], 3)
    m["mb_s"] = round(nbytes / 1e6 / m["wall_s"], 2) if m["wall_s"] > 0 else None
    m["peak_rss_mib"] = round(m["peak_rss_kib"] / 1024, 1) if m.get("peak_rss_kib") else None
    if cmd.notes:
        m["notes"] = cmd.notes
    log(f"  {tool.name}: {phase.name}: {m['status']} in {m['wall_s']:.2f} s, "
        f"{m['mb_s']} MB/s, peak RSS {m['peak_rss_mib']} MiB")
    return m


def run_backup(phase: Phase, tool, ctx: Context) -> dict:
    m = _measured(phase, tool, tool.backup_cmd(phase.name), ctx)
    if m["status"] == "ok":
        m["repo_bytes"] = sum(measure.du_bytes(p) or 0 for p in tool.repo_paths())
        m["repo_mib"] = round(m["repo_bytes"] / MIB, 1)
        m["cache_bytes"] = sum(measure.du_bytes(p) or 0 for p in tool.cache_paths())
        with open(m["stdout"], errors="replace") as f:
            m["summary"] = tool.parse_summary(f.read())
    else:
        ctx.broken[tool.name] = f"{phase.name} backup {m['status']}"
    return m


def run_restore(phase: Phase, tool, ctx: Context) -> dict:
    target = os.path.join(tool.root, "restore")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    try:
        cmd = tool.restore_cmd(target)
    except Exception as e:  # e.g. borg list failed
        return {"status": "failed", "note": str(e)[:200]}
    m = _measured(phase, tool, cmd, ctx)
    if m["status"] == "ok":
        root = tool.restored_root(target)
        if not os.path.isdir(root):
            m["status"], m["note"] = "failed", f"restored tree not found at {root}"
        else:
            log(f"  {tool.name}: verifying restored tree {root}")
            errors, warnings = tree.compare(ctx.manifest(with_hash=True), tree.manifest(root, with_hash=True))
            m["verify"] = {"errors": errors, "warnings": warnings[:20], "n_warnings": len(warnings)}
            if errors:
                m["status"], m["note"] = "MISMATCH", f"{len(errors)} differences, e.g. {errors[0]}"
                ctx.verification_failures.append({"tool": tool.name, "errors": errors})
                log(f"  {tool.name}: RESTORE MISMATCH: " + "; ".join(errors[:5]))
            else:
                m["verified"] = True
                if warnings:
                    m["note"] = f"verified; {len(warnings)} mode differences"
    if not ctx.opts.keep_restores:
        shutil.rmtree(target, ignore_errors=True)
    return m


def run_check(phase: Phase, tool, ctx: Context) -> dict:
    cmd = tool.check_cmd()
    if cmd is None:
        return {"status": "n/a", "note": "no check command"}
    return _measured(phase, tool, cmd, ctx)


RUNNERS = {"backup": run_backup, "restore": run_restore, "check": run_check}


def host_info() -> dict:
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        mem = f"{kib / (1 << 20):.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "mem": mem, "kernel": platform.release(), "python": platform.python_version()}


def run_suite(opts, size: int, phases: list) -> dict:
    label = size_label(str(size))
    work = os.path.abspath(opts.work)
    src, ds_info = ensure_dataset(work, size, opts.seed, opts.regen)

    run_dir = os.path.join(work, f"run-{label}")
    shutil.rmtree(run_dir, ignore_errors=True)
    data_dir = os.path.join(run_dir, "data", "node")
    log(f"copying dataset to {data_dir}")
    copy_tree(src, data_dir)
    ctx = Context(opts, data_dir)

    results = {
        "size": label, "size_bytes": size, "seed": opts.seed, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": host_info(), "data_dir": data_dir, "tools": {}, "phases": {},
        "dataset": {"A": {"bytes": ctx.dataset_bytes(), "files": tree.file_count(ctx.manifest())},
                    "generator": {k: v for k, v in ds_info.items() if k != "compression"},
                    "compression": ds_info.get("compression")},
    }

    tools = []
    for name in opts.tools:
        cls = TOOLS[name]
        tool = cls(os.path.join(run_dir, name), data_dir, opts.vtool if name == "vtool" else None)
        tools.append(tool)
        info = results["tools"][name] = {"binary": tool.resolved_binary() or tool.binary}
        reason = tool.missing()
        if reason:
            info.update(status="missing", note=reason)
            ctx.broken[name] = f"missing: {reason}"
            log(f"{name}: {reason} — skipped")
            continue
        info["version"] = tool.version()
        os.makedirs(tool.root, exist_ok=True)
        m = measure.run_measured(tool.init_cmd().argv, tool.env(), None, tool.logs, "init", opts.timeout)
        info["init"] = {k: m[k] for k in ("rc", "wall_s", "peak_rss_kib", "stderr")}
        if m["rc"] != 0:
            info.update(status="init failed", note=measure.tail(m["stderr"], 2, 160))
            ctx.broken[name] = "init failed"
            log(f"{name}: init failed: {info['note']}")
        else:
            info["status"] = "ok"

    for phase in phases:
        mut = ctx.to_state(phase.state)
        if mut:
            results["mutation"] = mut
            results["dataset"]["B"] = {"bytes": ctx.dataset_bytes(), "files": tree.file_count(ctx.manifest())}
        log(f"phase {phase.name}: {phase.title}")
        cells = {}
        for tool in tools:
            if tool.name in ctx.broken:
                cells[tool.name] = {"status": "skipped", "note": ctx.broken[tool.name]}
                continue
            cells[tool.name] = RUNNERS[phase.kind](phase, tool, ctx)
        results["phases"][phase.name] = {"title": phase.title, "kind": phase.kind, "state": ctx.state,
                                         "dataset_bytes": ctx.dataset_bytes(), "tools": cells}

    results["drop_caches"] = bool(ctx.drop_ok)
    results["verification_failures"] = ctx.verification_failures
    results["targets"] = targets.evaluate(results)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")

    out = os.path.join(work, f"results-{label}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    log(f"results written to {out}")
    if opts.cleanup:
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"removed {run_dir}")
    return results
