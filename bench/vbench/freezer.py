"""geth-style append-only freezer ("ancient") tables.

Each table is an index file (<name>.cidx / .ridx, 6-byte entries: uint16 file number,
uint32 end offset, big-endian) plus data files <name>.NNNN.cdat / .rdat that are only
ever appended to (a new data file starts when one would exceed 2 GB, like geth).
Generation and mutation share ``append_blocks`` so "one day later" really appends.
"""

import os
import random
import struct
from dataclasses import dataclass

from . import content
from .prng import rng_for

MAX_FILE = 2 * 1000 * 1000 * 1000  # geth freezerTableSize
BATCH_BLOCKS = 512                  # blocks generated per write (bounds memory)


@dataclass(frozen=True)
class TableSpec:
    name: str
    raw: bool          # .rdat/.ridx (uncompressed in geth) vs .cdat/.cidx
    min_item: int
    max_item: int
    kind: str          # "mixed" | "random" | "const"

    @property
    def mean_item(self) -> float:
        return (self.min_item + self.max_item) / 2


TABLES = (
    TableSpec("headers", False, 480, 620, "mixed"),
    TableSpec("hashes", True, 32, 32, "random"),
    TableSpec("bodies", False, 8 << 10, 72 << 10, "mixed"),
    TableSpec("receipts", False, 4 << 10, 46 << 10, "mixed"),
    TableSpec("diffs", True, 10, 10, "const"),
)

MEAN_BLOCK_BYTES = sum(t.mean_item + 6 for t in TABLES)  # data + index entry


def _paths(dirpath: str, spec: TableSpec, filenum: int = 0):
    ext = "r" if spec.raw else "c"
    return (os.path.join(dirpath, f"{spec.name}.{ext}idx"),
            os.path.join(dirpath, f"{spec.name}.{filenum:04d}.{ext}dat"))


def _state(index_path: str):
    """(items, filenum, offset) of an existing table, or a fresh one."""
    if not os.path.exists(index_path) or os.path.getsize(index_path) < 6:
        return 0, 0, 0
    size = os.path.getsize(index_path)
    with open(index_path, "rb") as f:
        f.seek(size - 6)
        filenum, offset = struct.unpack(">HI", f.read(6))
    return size // 6 - 1, filenum, offset


def _content(rng: random.Random, spec: TableSpec, n: int) -> bytes:
    if spec.kind == "random":
        return rng.randbytes(n)
    if spec.kind == "const":  # post-merge total difficulty never changes
        return bytes.fromhex("89c70a0e2f8b1d57ae27a0")[: spec.min_item] * (n // spec.min_item)
    return content.mixed_bytes(rng, n)


def append_blocks(dirpath: str, spec: TableSpec, n_blocks: int, seed: int, label: str) -> int:
    """Append n_blocks items to one table; returns bytes written (data + index)."""
    rng = rng_for(seed, f"{label}:{spec.name}")
    index_path, _ = _paths(dirpath, spec)
    items, filenum, offset = _state(index_path)
    written = 0
    with open(index_path, "ab") as idx:
        if items == 0 and os.path.getsize(index_path) == 0:
            idx.write(struct.pack(">HI", 0, 0))
            written += 6
        done = 0
        while done < n_blocks:
            batch = min(BATCH_BLOCKS, n_blocks - done)
            sizes = [rng.randint(spec.min_item, spec.max_item) for _ in range(batch)]
            data = _content(rng, spec, sum(sizes))
            entries = bytearray()
            pos = 0
            start = 0
            for sz in sizes:
                if offset + sz > MAX_FILE:  # roll over to the next data file
                    written += _write_data(dirpath, spec, filenum, data[start:pos])
                    filenum, offset, start = filenum + 1, 0, pos
                offset += sz
                pos += sz
                entries += struct.pack(">HI", filenum, offset)
            written += _write_data(dirpath, spec, filenum, data[start:pos])
            idx.write(entries)
            written += len(entries)
            done += batch
    return written


def _write_data(dirpath: str, spec: TableSpec, filenum: int, data) -> int:
    _, path = _paths(dirpath, spec, filenum)
    with open(path, "ab") as f:
        f.write(data)
    return len(data)


def blocks_for_bytes(budget: int) -> int:
    return max(1, int(budget // MEAN_BLOCK_BYTES))


def data_files(dirpath: str):
    return sorted(os.path.join(dirpath, n) for n in os.listdir(dirpath) if n.endswith("dat"))
