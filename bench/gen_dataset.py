#!/usr/bin/env python3
"""Generate a deterministic validator-like node directory.

    python3 bench/gen_dataset.py DIR --size 2GiB [--seed N] [--workers N] [--no-verify]
"""

import argparse
import json
import sys

from vbench import dataset
from vbench.units import fmt_size, parse_size


def print_summary(root: str, summary: dict, comp=None, out=sys.stdout) -> None:
    print(f"dataset {root}: {fmt_size(summary['total_bytes'])} in {summary['total_files']} files "
          f"(requested {fmt_size(summary['requested_bytes'])}, seed {summary['seed']}, "
          f"{summary['seconds']} s)", file=out)
    for label, c in summary["categories"].items():
        share = 100 * c["bytes"] / max(1, summary["total_bytes"])
        print(f"  {label:<15} {c['files']:>6} files  {fmt_size(c['bytes']):>11}  {share:5.1f}%", file=out)
    print(f"  slashing db rows: {summary['slashing_rows']}, freezer blocks: {summary['freezer_blocks']}", file=out)
    if comp:
        print(f"  compression ({comp['method']}, sampled): freezer {comp['freezer_ratio']:.2f}x "
              f"over {fmt_size(comp['freezer_sampled_bytes'])}, .ldb {comp['ldb_ratio']:.2f}x "
              f"over {fmt_size(comp['ldb_sampled_bytes'])}", file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="node directory to create (must be empty or absent)")
    ap.add_argument("--size", default="2GiB", help="total size, e.g. 256MiB, 2GiB (default 2GiB)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="parallel writers (default: CPU count)")
    ap.add_argument("--no-verify", action="store_true", help="skip the compression-ratio measurement")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)

    summary = dataset.generate(args.dir, parse_size(args.size), args.seed, args.workers)
    comp = None if args.no_verify else dataset.measure_compression(args.dir)
    if args.json:
        print(json.dumps({**summary, "compression": comp}, indent=2))
    else:
        print_summary(args.dir, summary, comp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
