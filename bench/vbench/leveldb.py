"""LevelDB-style directories: numbered ~2 MiB .ldb tables plus CURRENT/LOCK/LOG/MANIFEST.

Mutation mimics compaction: some tables disappear, new ones with higher numbers appear.
"""

import os
import random
import re

from . import content
from .prng import rng_for

TABLE_TARGET = 2 << 20  # LevelDB / geth default table size
_TABLE_RE = re.compile(r"^(\d{6})\.ldb$")


def table_size(rng: random.Random) -> int:
    return int(TABLE_TARGET * rng.uniform(0.93, 1.0))


def tables_for_bytes(budget: int) -> int:
    return max(1, round(budget / (TABLE_TARGET * 0.965)))


def write_table(path: str, seed: int, label: str) -> int:
    rng = rng_for(seed, label)
    data = content.ldb_table(rng, table_size(rng), first_key=rng.randrange(1 << 40))
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def plan_numbers(rng: random.Random, start: int, count: int):
    nums, n = [], start
    for _ in range(count):
        n += rng.randint(1, 3)
        nums.append(n)
    return nums


def table_path(dirpath: str, number: int) -> str:
    return os.path.join(dirpath, f"{number:06d}.ldb")


def existing_tables(dirpath: str):
    """Sorted list of (number, path)."""
    out = []
    for name in os.listdir(dirpath):
        m = _TABLE_RE.match(name)
        if m:
            out.append((int(m.group(1)), os.path.join(dirpath, name)))
    return sorted(out)


def write_metadata(dirpath: str, seed: int, label: str) -> None:
    """The small non-table files of a LevelDB directory."""
    rng = rng_for(seed, f"{label}:meta")
    with open(os.path.join(dirpath, "CURRENT"), "w") as f:
        f.write("MANIFEST-000004\n")
    open(os.path.join(dirpath, "LOCK"), "wb").close()
    with open(os.path.join(dirpath, "LOG"), "w") as f:
        for i in range(200):
            f.write(f"2024/11/20-00:{i // 60:02d}:{i % 60:02d}.{rng.randrange(10**6):06d} "
                    f"Compaction@{rng.randrange(1000)} table #{rng.randrange(10**5)} L{rng.randrange(6)}\n")
    with open(os.path.join(dirpath, "MANIFEST-000004"), "wb") as f:
        f.write(content.low_entropy(rng, 48 << 10))


def append_manifest(dirpath: str, rng: random.Random, removed, added) -> None:
    """Version-edit record appended to the MANIFEST, like a real compaction."""
    rec = b"".join(b"\x06" + n.to_bytes(4, "big") for n in removed)
    rec += b"".join(b"\x07" + n.to_bytes(4, "big") + rng.randbytes(24) for n in added)
    with open(os.path.join(dirpath, "MANIFEST-000004"), "ab") as f:
        f.write(len(rec).to_bytes(4, "little") + rec)
    with open(os.path.join(dirpath, "LOG"), "a") as f:
        f.write(f"compaction: -{len(removed)} +{len(added)} tables\n")
