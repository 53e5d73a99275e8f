""""One day later": turn state A into state B, deterministically for a given seed.

* freezer: every table gets the same number of new blocks, ~1% of the freezer's bytes,
  appended to the existing files (nothing before the old end changes);
* LevelDB dirs: ~2% of the .ldb tables are replaced by new tables with new, higher
  numbers (the old files are deleted), like a compaction; MANIFEST/LOG get appended;
* slashing DB: ten more epochs of attestations (and the odd block proposal).
"""

import os
import time

from . import dataset, freezer, leveldb, slashing_db
from .prng import rng_for


def _dir_bytes(d: str) -> int:
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))


def mutate(root: str, seed: int, freezer_fraction: float = 0.01, ldb_fraction: float = 0.02,
           epochs: int = 10, workers: int = 0) -> dict:
    t0 = time.monotonic()
    workers = workers or os.cpu_count() or 1
    tasks, replaced = [], {}

    fdir = os.path.join(root, dataset.FREEZER_DIR)
    freezer_before = _dir_bytes(fdir)
    blocks = freezer.blocks_for_bytes(int(freezer_before * freezer_fraction))
    items = freezer._state(os.path.join(fdir, "headers.cidx"))[0]
    label = f"freezer:mutate:{seed}:{items}"
    tasks += [("freezer", fdir, t.name, blocks, seed, label) for t in freezer.TABLES]

    to_delete = []
    for rel in (dataset.GETH_DB, dataset.BEACON_DB):
        d = os.path.join(root, rel)
        tables = leveldb.existing_tables(d)
        if not tables:
            continue
        n = max(1, round(len(tables) * ldb_fraction))
        top = tables[-1][0]
        rng = rng_for(seed, f"{rel}:mutate:{top}")
        old = sorted(rng.sample(tables, n))
        new = leveldb.plan_numbers(rng, top, n)
        tasks += [("ldb", leveldb.table_path(d, num), seed, f"{rel}:{num}") for num in new]
        to_delete += [p for _, p in old]
        leveldb.append_manifest(d, rng, [num for num, _ in old], new)
        replaced[rel] = {"removed": len(old), "added": len(new), "of": len(tables)}

    dataset.run_tasks(tasks, workers)
    for p in to_delete:
        os.remove(p)

    rows = slashing_db.advance(os.path.join(root, dataset.SLASHING_DB), rng_for(seed, f"slashing:{items}"), epochs)
    return {
        "freezer_bytes_before": freezer_before,
        "freezer_bytes_appended": _dir_bytes(fdir) - freezer_before,
        "freezer_blocks_appended": blocks,
        "ldb_replaced": replaced,
        "slashing_rows_added": rows,
        "seconds": round(time.monotonic() - t0, 2),
    }
