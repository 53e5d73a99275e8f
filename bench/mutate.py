#!/usr/bin/env python3
"""Apply "one day later" to a dataset made by gen_dataset.py (in place).

    python3 bench/mutate.py DIR --seed N

Appends ~1% of the freezer size to the freezer tables, replaces ~2% of the .ldb tables
with new ones (new names, old ones deleted) and adds rows to the slashing DB.
"""

import argparse
import json
import sys

from vbench.mutation import mutate
from vbench.units import fmt_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--freezer-fraction", type=float, default=0.01)
    ap.add_argument("--ldb-fraction", type=float, default=0.02)
    ap.add_argument("--epochs", type=int, default=10, help="epochs of attestations to add")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    s = mutate(args.dir, args.seed, args.freezer_fraction, args.ldb_fraction, args.epochs)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"mutated {args.dir} in {s['seconds']} s:")
    print(f"  freezer: +{fmt_size(s['freezer_bytes_appended'])} ({s['freezer_blocks_appended']} blocks) "
          f"on {fmt_size(s['freezer_bytes_before'])}")
    for rel, r in s["ldb_replaced"].items():
        print(f"  {rel}: replaced {r['removed']} of {r['of']} tables with {r['added']} new ones")
    print(f"  slashing db: +{s['slashing_rows_added']} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
