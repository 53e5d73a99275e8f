#!/usr/bin/env python3
"""Benchmark vtool against restic and borg on a synthetic validator-node dataset.

    python3 bench/run.py --size 2GiB [--work DIR] [--tools vtool,restic,borg] [--vtool PATH]
    python3 bench/run.py --memory-flatness 2GiB,8GiB      # run per size, compare peak RSS

Markdown to stdout, progress to stderr, JSON to <work>/results-<size>.json.
Exit status: 0 ok, 1 a restore (or an SFTP copy) was not byte-identical, 2 usage error.
"""

import argparse
import os
import sys

from vbench import phases as P
from vbench.report import flatness_markdown, markdown
from vbench.suite import log, run_suite
from vbench.tools import TOOLS
from vbench.tools.vtool import DEFAULT_BINARY
from vbench.units import parse_size

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2GiB", help="dataset size (default 2GiB)")
    ap.add_argument("--memory-flatness", metavar="S1,S2,...",
                    help="run the whole benchmark once per size and compare peak RSS across sizes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=os.path.join(HERE, "work"), help="work dir (default bench/work)")
    ap.add_argument("--tools", default="vtool,rustic,restic,borg", help=f"comma list of {','.join(TOOLS)}")
    ap.add_argument("--vtool", default=DEFAULT_BINARY, help=f"vtool binary (default {DEFAULT_BINARY})")
    ap.add_argument("--phases", default=",".join(P.BY_NAME),
                    help=f"comma list, run in canonical order (default {','.join(P.BY_NAME)})")
    ap.add_argument("--timeout", type=float, default=None, help="per-command timeout in seconds")
    ap.add_argument("--no-drop-caches", action="store_true", help="do not drop the page cache before commands")
    ap.add_argument("--keep-restores", action="store_true", help="keep restored trees (deleted after verifying)")
    ap.add_argument("--cleanup", action="store_true", help="delete the run dir (repos, data copy) at the end")
    ap.add_argument("--plot", metavar="FILE.png", help="also draw each tool's throughput per phase (needs matplotlib)")
    ap.add_argument("--regen", action="store_true", help="regenerate the cached dataset")
    args = ap.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in args.tools if t not in TOOLS]
    if bad:
        ap.error(f"unknown tool(s) {bad}; known: {', '.join(TOOLS)}")
    try:
        args.phase_list = P.select([p.strip() for p in args.phases.split(",") if p.strip()])
        sizes = args.memory_flatness or args.size
        args.sizes = [parse_size(s) for s in sizes.split(",")]
    except ValueError as e:
        ap.error(str(e))
    args.vtool = os.path.abspath(args.vtool)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    all_results = []
    for size in args.sizes:
        res = run_suite(args, size, args.phase_list)
        all_results.append(res)
        sys.stdout.write(markdown(res) + "\n")
        sys.stdout.flush()
        if args.plot:
            from vbench.plot import throughput_png
            throughput_png(res, args.plot)
            log(f"plot written to {args.plot}")
    if len(all_results) > 1:
        sys.stdout.write(flatness_markdown(all_results))
    failed = [f for r in all_results for f in r["verification_failures"]]
    if failed:
        log("VERIFICATION FAILED for: " + ", ".join(sorted({f"{f['tool']} ({f.get('phase')})" for f in failed})))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
