"""Markdown rendering of results (stdout) — the JSON is the results dict itself."""

from . import targets as T
from .units import fmt_size

SUBJECT = T.SUBJECT
FLAT_GROWTH = 1.10  # issue 15: peak RSS grows at most 10% from the smallest to the largest size


def _f(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def _verdict(met):
    return "n/a" if met is None else ("**met**" if met else "**MISSED**")


def _rows(ph: dict):
    """(label, name, cell): the tools, then the phase's reference measurements (e.g. scp)."""
    for tool, c in ph["tools"].items():
        yield tool, tool, c
    for ref, c in ph.get("references", {}).items():
        yield f"{ref} (reference)", ref, c


def phase_table(ph: dict) -> list:
    if ph["kind"].startswith("s3-"):
        return s3_table(ph)
    lines = ["| tool | wall s | MB/s | peak RSS MiB | repo MiB | status |",
             "|---|---:|---:|---:|---:|---|"]
    for label, _, c in _rows(ph):
        status = c["status"] + (f": {c['note']}" if c.get("note") else "")
        if c["status"] != "ok":  # numbers of failed / n/a runs stay in the JSON only
            c = {}
        lines.append(f"| {label} | {_f(c.get('wall_s'), 2)} | {_f(c.get('mb_s'))} | "
                     f"{_f(c.get('peak_rss_mib'))} | {_f(c.get('repo_mib'))} | {status.replace('|', '/')} |")
    return lines


def s3_table(ph: dict) -> list:
    """S3 phases also show the cluster's request count and requests per GiB stored."""
    lines = ["| tool | wall s | MB/s | peak RSS MiB | stored MiB | requests | req/GiB stored | status |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for label, _, c in _rows(ph):
        status = c["status"] + (f": {c['note']}" if c.get("note") else "")
        if c["status"] != "ok":
            c = {}
        req = "—" if c.get("requests") is None else str(c["requests"])
        lines.append(f"| {label} | {_f(c.get('wall_s'), 2)} | {_f(c.get('mb_s'))} | {_f(c.get('peak_rss_mib'))} | "
                     f"{_f(c.get('stored_mib'))} | {req} | {_f(c.get('requests_per_gib'))} | "
                     f"{status.replace('|', '/')} |")
    return lines


def comparison_lines(results: dict, name: str, ph: dict) -> list:
    out = []
    v = ph["tools"].get(T.SUBJECT)
    if not v or v.get("status") != "ok":
        return out
    for _, other, o in _rows(ph):
        if other == T.SUBJECT or o.get("status") != "ok" or not v.get("wall_s"):
            continue
        r = o["wall_s"] / v["wall_s"]
        speed = (f"{r:.2f}x faster" if r >= 1.005 else f"{1 / r:.2f}x slower" if r <= 1 / 1.005
                 else "as fast")
        parts = [f"{speed} (throughput {v['mb_s']:.1f} vs {o['mb_s']:.1f} MB/s)"]
        if v.get("peak_rss_mib") and o.get("peak_rss_mib"):
            parts.append(f"peak RSS {v['peak_rss_mib'] / o['peak_rss_mib']:.2f}x")
        if v.get("repo_mib") and o.get("repo_mib"):
            parts.append(f"repo {v['repo_mib'] / o['repo_mib']:.2f}x")
        out.append(f"- vtool vs {other}: " + ", ".join(parts))
    return out


def _need(t: dict) -> str:
    return f"{'≤' if t.get('op') == '<=' else '≥'} {t['required']:g}x"


def _actual(t: dict) -> str:
    if t["ratio"] is None:
        return f"— ({t['why']})" if t.get("why") else "—"
    return f"{t['ratio']:.2f}x" + (f" of {t['versus']}" if t.get("other_phase") else "")


def target_lines(results: dict, phase: str) -> list:
    out = []
    for t in results.get("targets", []):
        if t["phase"] == phase:
            out.append(f"- target: {t['text']}: {_actual(t)} (need {_need(t)}) → {_verdict(t['met'])}")
    return out


def markdown(results: dict) -> str:
    ds = results["dataset"]
    L = [f"# vtool benchmark — {results['size']} dataset (seed {results['seed']})", ""]
    L.append(f"- host: {results['host']['cpus']} CPUs, {results['host']['mem']}, {results['host']['kernel']}")
    L.append(f"- dataset: state A {fmt_size(ds['A']['bytes'])} / {ds['A']['files']} files; "
             f"state B {fmt_size(ds['B']['bytes'])} / {ds['B']['files']} files" if "B" in ds else
             f"- dataset: state A {fmt_size(ds['A']['bytes'])} / {ds['A']['files']} files")
    if ds.get("compression"):
        c = ds["compression"]
        L.append(f"- compressibility ({c['method']}): freezer {c['freezer_ratio']:.2f}x, .ldb {c['ldb_ratio']:.2f}x")
    L.append(f"- page cache dropped before each measured command: {'yes' if results['drop_caches'] else 'no'}")
    for name, t in results["tools"].items():
        L.append(f"- {name}: {t.get('version') or '—'} ({t['status']}{': ' + t['note'] if t.get('note') else ''})")
    sftp = results.get("sftp")
    if sftp:
        L.append(f"- SFTP phases: skipped: {sftp['skipped']}" if sftp.get("skipped") else
                 f"- SFTP phases: throwaway {sftp['sshd']} on 127.0.0.1:{sftp['port']} (loopback, same disk), "
                 f"user {sftp['user']}, ed25519 key")
    s3 = results.get("s3")
    if s3:
        L.append(f"- S3 phases: skipped: {s3['skipped']}" if s3.get("skipped") else
                 f"- S3 phases: {s3['nodes']}-node Garage cluster on 127.0.0.1 ({s3['garage_version']}), "
                 f"replication factor 3, clients on {s3['endpoint']}, bucket {s3['bucket']}; requests = "
                 f"sum of api_s3_request_counter over the nodes during the command")
    L.append("- MB/s = dataset bytes (10^6) / wall time; RSS from /usr/bin/time %M; repo = du -sb after the backup")
    for name, ph in results["phases"].items():
        L += ["", f"## {ph['title']} (state {ph['state']})", ""]
        L += phase_table(ph)
        if ph.get("note"):
            L += ["", f"Note: {ph['note']}."]
        extra = [f"- {ref}: {c['version']}" for ref, c in ph.get("references", {}).items() if c.get("version")]
        extra += comparison_lines(results, name, ph) + target_lines(results, name)
        if extra:
            L += [""] + extra
    tl = target_lines(results, "*")
    if tl:
        L += ["", "## Memory", ""] + tl
    if results.get("targets"):
        L += ["", "## Targets", "", "| target | vs | need | actual | result |", "|---|---|---:|---:|---|"]
        for t in results["targets"]:
            r = _actual(t) if t["ratio"] is None else f"{t['ratio']:.2f}x"
            L.append(f"| {t['text']} | {t.get('versus', t['other'])} | {_need(t)} | {r} | {_verdict(t['met'])} |")
    if results.get("verification_failures"):
        L += ["", "## VERIFICATION FAILED (restored tree / copied repository not byte-identical)", ""]
        for f in results["verification_failures"]:
            L.append(f"- {f['tool']}" + (f" ({f['phase']})" if f.get("phase") else "") + ": "
                     + "; ".join(f["errors"][:10]))
    return "\n".join(L) + "\n"


def flatness_markdown(all_results: list) -> str:
    """Peak RSS per tool/phase across dataset sizes (memory should not grow with data)."""
    sizes = [r["size"] for r in all_results]
    L = ["# Peak memory vs dataset size", "",
         "| tool | phase | " + " | ".join(f"RSS MiB @ {s}" for s in sizes) + " | growth |",
         "|---|---|" + "---:|" * (len(sizes) + 1)]
    first = all_results[0]
    for phase in first["phases"]:
        for tool in first["phases"][phase]["tools"]:
            vals = [r["phases"].get(phase, {}).get("tools", {}).get(tool, {}).get("peak_rss_mib")
                    if r["phases"].get(phase, {}).get("tools", {}).get(tool, {}).get("status") == "ok" else None
                    for r in all_results]
            growth = f"{vals[-1] / vals[0]:.2f}x" if vals[0] and vals[-1] else "—"
            if tool == SUBJECT and vals[0] and vals[-1]:
                growth += f" {_verdict(vals[-1] / vals[0] <= FLAT_GROWTH)}"
            L.append(f"| {tool} | {phase} | " + " | ".join(_f(v) for v in vals) + f" | {growth} |")
    L += ["", f"target: {SUBJECT}'s peak RSS grows at most {FLAT_GROWTH:.2f}x from {sizes[0]} to {sizes[-1]} in every phase"]
    return "\n".join(L) + "\n"
