"""One benchmark run for one dataset size: dataset cache, tools, phases, results."""

import json
import os
import platform
import shutil
import subprocess
import sys
import time

from . import GENERATOR_VERSION, dataset, measure, mutation, targets, tree
from .phases import LOCAL_BACKUP, PHASES, Phase
from .garage import GarageCluster
from .sshd import SshServer
from .tools import TOOLS
from .tools.awssync import AwsSync
from .tools.scp import Scp
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
    def __init__(self, opts, data_dir: str, run_dir: str):
        self.opts = opts
        self.data_dir = data_dir
        self.run_dir = run_dir
        self.state = "A"
        self._manifests = {}
        self.broken = {}                 # tool -> reason later phases are skipped
        self.verification_failures = []
        self.drop_ok = None
        self.ssh = None                  # SshServer, started by the first SFTP phase
        self.ssh_error = None            # why SFTP phases are skipped
        self.backups_done = set()        # local backup phases run so far (one snapshot each)
        self.garage = None               # GarageCluster, started by the first S3 phase
        self.garage_error = None         # why S3 phases are skipped
        self.s3_repos = {}               # tool -> prefix of the repository s3-backup made

    def _start_once(self, attr: str, what: str, make, started):
        """Start a throwaway server the first time a phase needs it: (server, None), or
        (None, why the phases that need it are skipped).  Kept in self.<attr> and
        self.<attr>_error."""
        server, error = getattr(self, attr), getattr(self, attr + "_error")
        if server is None and error is None:
            candidate = make()
            error = candidate.missing()
            if error is None:
                try:
                    log(f"starting {what} ({candidate.binary})")
                    candidate.start()
                    server = candidate
                    log(started(candidate))
                except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                    error = f"{what} did not start: {e}"[:300]
            if error:
                log(f"phases needing {what} skipped: {error}")
            setattr(self, attr, server)
            setattr(self, attr + "_error", error)
        return server, error

    # -- the S3 cluster (throwaway 3-node Garage on 127.0.0.1; files under <run>/garage/) ----
    def s3(self):
        """(cluster, None) or (None, reason the S3 phases cannot run)."""
        return self._start_once(
            "garage", "a 3-node Garage cluster on 127.0.0.1",
            lambda: GarageCluster(os.path.join(self.run_dir, "garage")),
            lambda c: f"garage S3 API on {c.endpoint}, bucket {c.bucket}")

    def stop_s3(self) -> None:
        if self.garage is not None:
            self.garage.stop()
            log("garage stopped")
            self.garage = None

    # -- the SFTP server (throwaway sshd on 127.0.0.1; files under <run>/sftp-server/) ----
    def sftp(self):
        """(server, None) or (None, reason the SFTP phases cannot run)."""
        return self._start_once(
            "ssh", "sshd on 127.0.0.1",
            lambda: SshServer(os.path.join(self.run_dir, "sshd")),
            lambda server: f"sshd listening on 127.0.0.1:{server.port}, user {server.user}")

    def sftp_path(self, name: str) -> str:
        """Absolute path on the SFTP server (the same filesystem: the server is local)."""
        base = os.path.join(self.run_dir, "sftp-server")
        os.makedirs(base, exist_ok=True)
        return os.path.join(base, name)

    def stop_sftp(self) -> None:
        if self.ssh is not None:
            self.ssh.stop()
            log("sshd stopped")
            self.ssh = None

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


def _measured(phase: Phase, tool, cmd, ctx: Context, tag: str | None = None, nbytes: int | None = None) -> dict:
    """Run cmd cold (page cache dropped) and measure it.  MB/s = nbytes (default: the
    dataset's bytes) / wall."""
    if not ctx.opts.no_drop_caches:
        ok = measure.drop_caches()
        ctx.drop_ok = ok if ctx.drop_ok is None else (ctx.drop_ok and ok)
    log(f"  {tool.name}: {phase.name}: {' '.join(cmd.argv)}" + (f"  (cwd {cmd.cwd})" if cmd.cwd else ""))
    env = cmd.env if cmd.env is not None else tool.env()
    counting = phase.kind.startswith("s3-") and ctx.garage is not None
    before = ctx.garage.requests() if counting else None
    m = measure.run_measured(cmd.argv, env, cmd.cwd, tool.logs, tag or phase.name, ctx.opts.timeout)
    if counting:  # the cluster's own count of S3 requests during the command, per endpoint
        after = ctx.garage.requests()
        by_ep = {k: after[k] - before.get(k, 0) for k in sorted(after) if after[k] - before.get(k, 0)}
        m["requests_by_endpoint"], m["requests"] = by_ep, sum(by_ep.values())
    m["sync_s"] = round(measure.timed_sync(), 3)  # deferred writes the tool left behind (not in wall)
    if m["rc"] in cmd.ok_codes:
        m["status"] = "ok"
    else:
        with open(m["stderr"], errors="replace") as f:
            m["status"] = tool.classify_failure(f.read())
        meaning = cmd.rc_meaning.get(m["rc"])
        m["note"] = f"rc={m['rc']}: " + (meaning or measure.tail(m["stderr"], 2, 120))
    if nbytes is None:
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


def _s3_stored(m: dict, ctx: Context, prefix: str) -> None:
    """stored bytes under prefix (sum of object sizes) and requests per GiB stored."""
    stored = ctx.garage.stored_bytes(prefix)
    m["s3_prefix"] = prefix
    if stored is not None:
        m["stored_bytes"] = stored
        m["stored_mib"] = round(stored / MIB, 1)
        if stored and m.get("requests") is not None:
            m["requests_per_gib"] = round(m["requests"] / (stored / (1 << 30)), 1)


def _restore(phase: Phase, tool, ctx: Context, make_cmd) -> dict:
    """Restore into an empty dir with make_cmd(target), then compare the restored tree
    byte-for-byte (list + size + BLAKE2b) with the live data."""
    target = os.path.join(tool.root, "restore")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    try:
        cmd = make_cmd(target)
    except Exception as e:  # e.g. borg list failed
        return {"status": "failed", "note": str(e)[:200]}
    if cmd is None:
        shutil.rmtree(target, ignore_errors=True)
        return {"status": "n/a", "note": f"{tool.name} has no equivalent"}
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
                ctx.verification_failures.append({"tool": tool.name, "phase": phase.name, "errors": errors})
                log(f"  {tool.name}: RESTORE MISMATCH: " + "; ".join(errors[:5]))
            else:
                m["verified"] = True
                if warnings:
                    m["note"] = f"verified; {len(warnings)} mode differences"
    if not ctx.opts.keep_restores:
        shutil.rmtree(target, ignore_errors=True)
    return m


def run_restore(phase: Phase, tool, ctx: Context) -> dict:
    return _restore(phase, tool, ctx, tool.restore_cmd)


def run_restore_verify(phase: Phase, tool, ctx: Context) -> dict:
    """Like restore, with the tool's own verification switched on (vtool/restic --verify);
    the harness still compares the tree itself."""
    return _restore(phase, tool, ctx, tool.restore_verify_cmd)


def run_check(phase: Phase, tool, ctx: Context) -> dict:
    cmd = tool.check_cmd()
    if cmd is None:
        return {"status": "n/a", "note": "no check command"}
    return _measured(phase, tool, cmd, ctx)


RETENTION_DAYS = 7


def prepare_retention(tools: list, ctx: Context) -> dict:
    """More simulated days until every tool holds RETENTION_DAYS snapshots: the dataset
    changes as one day does (mutation.mutate), then every tool backs it up (untimed)."""
    days = 0
    have = sum(1 for p in PHASES if p.kind == LOCAL_BACKUP and p.name in ctx.backups_done)
    for day in range(have, RETENTION_DAYS):
        info = mutation.mutate(ctx.data_dir, ctx.opts.seed + day)
        ctx.state = f"day{day + 1}"
        days += 1
        log(f"retention: day {day + 1} ({info['seconds']} s of mutation)")
        for tool in tools:
            if tool.name in ctx.broken:
                continue
            m = measure.run_measured(tool.backup_cmd(f"day{day + 1}").argv, tool.env(), None, tool.logs,
                                     f"retention-day{day + 1}", ctx.opts.timeout)
            if m["rc"] not in tool.backup_cmd("day").ok_codes:
                ctx.broken[tool.name] = f"retention day {day + 1} backup failed"
    return {"days_added": days}


def run_retention(phase: Phase, tool, ctx: Context) -> dict:
    cmd = tool.retention_cmd(3)
    if cmd is None:
        return {"status": "n/a", "note": "no forget/prune"}
    m = _measured(phase, tool, cmd, ctx)
    if m["status"] == "ok":
        m["repo_bytes"] = sum(measure.du_bytes(p) or 0 for p in tool.repo_paths())
        m["repo_mib"] = round(m["repo_bytes"] / MIB, 1)
    return m


def run_sftp_backup(phase: Phase, tool, ctx: Context) -> dict:
    """init (timed, but not part of the phase's numbers) + first backup into a new repository
    on the local sshd.  A failure here does not stop the tool's other phases."""
    ssh, why = ctx.sftp()
    if ssh is None:
        return {"status": "skipped", "note": why}
    path = ctx.sftp_path(f"{tool.name}-repo")
    init, backup = tool.sftp_init_cmd(ssh, path), tool.sftp_backup_cmd(ssh, path)
    if init is None or backup is None:
        return {"status": "n/a", "note": tool.no_backend_note("SFTP")}
    log(f"  {tool.name}: {phase.name}: init {' '.join(init.argv)}")
    i = measure.run_measured(init.argv, init.env if init.env is not None else tool.env(), None,
                             tool.logs, f"{phase.name}-init", ctx.opts.timeout)
    if i["rc"] != 0:
        return {"status": "failed", "note": f"init rc={i['rc']}: {measure.tail(i['stderr'], 2, 120)}",
                "init": {k: i[k] for k in ("rc", "wall_s", "stderr")}}
    m = _measured(phase, tool, backup, ctx)
    m["init_wall_s"] = round(i["wall_s"], 3)
    m["sftp_path"] = path
    if m["status"] == "ok":
        m["repo_bytes"] = measure.du_bytes(path) or 0
        m["repo_mib"] = round(m["repo_bytes"] / MIB, 1)
        with open(m["stdout"], errors="replace") as f:
            m["summary"] = tool.parse_summary(f.read())
    return m


def _copy(phase: Phase, who, ctx: Context, source: str) -> dict:
    """who.copy_cmd(ssh, DEST) copies ``source`` (a local repository dir) to a new DEST on
    the SFTP server; then DEST is compared with ``source`` (list + size + BLAKE2b; files the
    copy adds, like a README, are allowed)."""
    ssh, why = ctx.sftp()
    if ssh is None:
        return {"status": "skipped", "note": why}
    dest = ctx.sftp_path(f"{who.name}-copy")
    shutil.rmtree(dest, ignore_errors=True)  # must not exist (scp -r semantics, vtool: a new repo)
    cmd = who.copy_cmd(ssh, dest)
    if cmd is None:
        return {"status": "n/a", "note": f"not measured for {who.name} (the yardstick is scp of vtool's repository)"}
    src_bytes = measure.du_bytes(source) or 0
    m = _measured(phase, who, cmd, ctx, nbytes=src_bytes)
    m["source_bytes"] = src_bytes
    if m["status"] == "ok":
        m["repo_bytes"] = measure.du_bytes(dest) or 0
        m["repo_mib"] = round(m["repo_bytes"] / MIB, 1)
        with open(m["stdout"], errors="replace") as f:
            m["summary"] = who.parse_summary(f.read())
        log(f"  {who.name}: verifying the copy {dest}")
        carried = {rel: e for rel, e in tree.manifest(source).items()
                   if e["type"] != "dir" and who.copy_carries(rel)}
        errors, _ = tree.compare(carried, tree.manifest(dest) if os.path.isdir(dest) else {},
                                 allow_extra=True)
        m["verify"] = {"errors": errors}
        if errors:
            m["status"], m["note"] = "MISMATCH", f"copy differs from the source: {errors[0]}"
            ctx.verification_failures.append({"tool": who.name, "phase": phase.name, "errors": errors})
            log(f"  {who.name}: COPY MISMATCH: " + "; ".join(errors[:5]))
        else:
            m["verified"] = True
    if not ctx.opts.keep_restores:
        shutil.rmtree(dest, ignore_errors=True)
    return m


def run_sftp_copy(phase: Phase, tool, ctx: Context) -> dict:
    return _copy(phase, tool, ctx, tool.repo)


def run_s3_backup(phase: Phase, tool, ctx: Context) -> dict:
    """init (untimed) + first backup into a new repository on the Garage cluster.  A failure
    here does not stop the tool's other phases."""
    s3, why = ctx.s3()
    if s3 is None:
        return {"status": "skipped", "note": why}
    prefix = f"{tool.name}-repo"
    init, backup = tool.s3_init_cmd(s3, prefix), tool.s3_backup_cmd(s3, prefix)
    if init is None or backup is None:
        return {"status": "skipped", "note": tool.no_backend_note("S3")}
    log(f"  {tool.name}: {phase.name}: init {' '.join(init.argv)}")
    i = measure.run_measured(init.argv, init.env, None, tool.logs, f"{phase.name}-init", ctx.opts.timeout)
    if i["rc"] != 0:
        return {"status": "failed", "note": f"init rc={i['rc']}: {measure.tail(i['stderr'], 2, 120)}",
                "init": {k: i[k] for k in ("rc", "wall_s", "stderr")}}
    m = _measured(phase, tool, backup, ctx)
    m["init_wall_s"] = round(i["wall_s"], 3)
    if m["status"] == "ok":
        ctx.s3_repos[tool.name] = prefix
        _s3_stored(m, ctx, prefix)
        m["repo_mib"] = m.get("stored_mib")
        with open(m["stdout"], errors="replace") as f:
            m["summary"] = tool.parse_summary(f.read())
    return m


def run_s3_restore(phase: Phase, tool, ctx: Context) -> dict:
    """Restore the latest snapshot of the s3-backup repository, verified like restore."""
    s3, why = ctx.s3()
    if s3 is None:
        return {"status": "skipped", "note": why}
    prefix = ctx.s3_repos.get(tool.name)
    if prefix is None:
        if tool.s3_backup_cmd(s3, "x") is None:
            return {"status": "skipped", "note": tool.no_backend_note("S3")}
        return {"status": "skipped", "note": "no S3 repository (s3-backup did not run or failed)"}
    m = _restore(phase, tool, ctx, lambda target: tool.s3_restore_cmd(s3, prefix, target))
    if m["status"] in ("ok", "MISMATCH"):
        _s3_stored(m, ctx, prefix)
    return m


def _s3_copy(phase: Phase, who, ctx: Context, source: str) -> dict:
    """who.s3_copy_cmd(s3, PREFIX) copies ``source`` (vtool's local repository dir) to a new
    prefix on the cluster; MB/s = bytes of the source / wall."""
    s3, why = ctx.s3()
    if s3 is None:
        return {"status": "skipped", "note": why}
    prefix = "vtool-copy" if who.name == targets.SUBJECT else f"{who.name}-copy".replace("aws-s3-sync", "aws")
    cmd = who.s3_copy_cmd(s3, prefix)
    if cmd is None and who.s3_backup_cmd(s3, prefix) is None:
        return {"status": "skipped", "note": who.no_backend_note("S3")}
    if cmd is None:
        return {"status": "n/a", "note": f"not measured for {who.name} (the yardstick is aws s3 sync of vtool's repository)"}
    src_bytes = measure.du_bytes(source) or 0
    m = _measured(phase, who, cmd, ctx, nbytes=src_bytes)
    m["source_bytes"] = src_bytes
    if m["status"] == "ok":
        _s3_stored(m, ctx, prefix)
        m["repo_mib"] = m.get("stored_mib")
        with open(m["stdout"], errors="replace") as f:
            m["summary"] = who.parse_summary(f.read())
    return m


def run_s3_copy(phase: Phase, tool, ctx: Context) -> dict:
    return _s3_copy(phase, tool, ctx, tool.repo)


RUNNERS = {"retention": run_retention, "backup": run_backup, "restore": run_restore, "restore-verify": run_restore_verify,
           "check": run_check, "sftp-backup": run_sftp_backup, "sftp-copy": run_sftp_copy,
           "s3-backup": run_s3_backup, "s3-restore": run_s3_restore, "s3-copy": run_s3_copy}


def ref_scp(phase: Phase, tools: list, ctx: Context) -> dict:
    """scp -r of the subject's (vtool's) local repository: what sftp-copy is measured against."""
    subject = next((t for t in tools if t.name == targets.SUBJECT), None)
    if subject is None:
        return {"status": "skipped", "note": f"copies {targets.SUBJECT}'s repository; {targets.SUBJECT} not in --tools"}
    if subject.name in ctx.broken:
        return {"status": "skipped", "note": f"{subject.name}: {ctx.broken[subject.name]}"}
    scp = Scp(os.path.join(ctx.run_dir, "scp"), subject.repo)
    reason = scp.missing()
    if reason:
        return {"status": "missing", "note": reason}
    cell = _copy(phase, scp, ctx, subject.repo)
    cell.setdefault("version", scp.version())
    return cell


def ref_aws_sync(phase: Phase, tools: list, ctx: Context) -> dict:
    """aws s3 sync of the subject's (vtool's) local repository: what s3-copy is measured against."""
    subject = next((t for t in tools if t.name == targets.SUBJECT), None)
    if subject is None:
        return {"status": "skipped", "note": f"copies {targets.SUBJECT}'s repository; {targets.SUBJECT} not in --tools"}
    if subject.name in ctx.broken:
        return {"status": "skipped", "note": f"{subject.name}: {ctx.broken[subject.name]}"}
    aws = AwsSync(os.path.join(ctx.run_dir, "aws"), subject.repo)
    reason = aws.missing()
    if reason:
        return {"status": "missing", "note": reason}
    cell = _s3_copy(phase, aws, ctx, subject.repo)
    cell.setdefault("version", aws.version())
    return cell


# Per-phase reference measurements (Phase.reference): (phase, tools, ctx) -> result cell,
# shown in the phase's table below the tools and usable as a target's ``other``.
REFERENCES = {"scp": ref_scp, "aws-s3-sync": ref_aws_sync}


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
    ctx = Context(opts, data_dir, run_dir)

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

    try:
        for phase in phases:
            mut = ctx.to_state(phase.state)
            if mut:
                results["mutation"] = mut
                results["dataset"]["B"] = {"bytes": ctx.dataset_bytes(), "files": tree.file_count(ctx.manifest())}
            if phase.kind == "retention":
                results["retention"] = prepare_retention(tools, ctx)
            log(f"phase {phase.name}: {phase.title}")
            cells = {}
            for tool in tools:
                if tool.name in ctx.broken:
                    cells[tool.name] = {"status": "skipped", "note": ctx.broken[tool.name]}
                    continue
                cells[tool.name] = RUNNERS[phase.kind](phase, tool, ctx)
            if phase.kind == LOCAL_BACKUP:
                ctx.backups_done.add(phase.name)
            ph = results["phases"][phase.name] = {"title": phase.title, "kind": phase.kind, "state": ctx.state,
                                                  "dataset_bytes": ctx.dataset_bytes(), "tools": cells}
            if phase.note:
                ph["note"] = phase.note
            if phase.reference:
                log(f"phase {phase.name}: reference {phase.reference}")
                ph["references"] = {phase.reference: REFERENCES[phase.reference](phase, tools, ctx)}
    finally:
        if ctx.ssh is not None:
            results["sftp"] = {"sshd": ctx.ssh.binary, "port": ctx.ssh.port, "user": ctx.ssh.user,
                               "sshd_log": ctx.ssh.log_path}
        elif ctx.ssh_error:
            results["sftp"] = {"skipped": ctx.ssh_error}
        ctx.stop_sftp()
        if ctx.garage is not None:
            results["s3"] = {"garage": ctx.garage.binary, "garage_version": ctx.garage.version(),
                             "nodes": len(ctx.garage.nodes), "endpoint": ctx.garage.endpoint,
                             "bucket": ctx.garage.bucket, "dir": ctx.garage.dir}
        elif ctx.garage_error:
            results["s3"] = {"skipped": ctx.garage_error}
        ctx.stop_s3()

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
