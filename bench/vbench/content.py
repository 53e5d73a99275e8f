"""Byte-level content generators.

* ``ldb_table``      ~incompressible LevelDB-style SSTable (random payload + block structure)
* ``mixed_bytes``    freezer-style records: random segments interleaved with zero-padded
                     32-byte words (like RLP/ABI integers); ~1.7x with zstd -3
* ``keystore_json``  EIP-2335-shaped keystore (random hex, no real crypto)
* ``password``       lighthouse-style 48-char password
"""

import json
import random
import string
import struct
import uuid

from .prng import randbytes

# Fraction of freezer bytes that are pure random.  The rest are zero-padded words with
# 4 random bytes each (zstd -3 squeezes those ~6.8x).  0.52 gives ~1.7x overall.
FREEZER_RANDOM_FRACTION = 0.52

LDB_BLOCK = 4096
LDB_MAGIC = struct.pack("<Q", 0xDB4775248B80FB57)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def low_entropy(rng: random.Random, n: int) -> bytes:
    """Zero-padded 32-byte words whose last 4 bytes are random (small integers)."""
    buf = bytearray(n)
    words = n // 32
    if words:
        for off in range(28, 32):
            buf[off:words * 32:32] = rng.randbytes(words)
    return bytes(buf)


def mixed_bytes(rng: random.Random, n: int, random_fraction: float = FREEZER_RANDOM_FRACTION) -> bytes:
    """n bytes: alternating random / low-entropy segments of 0.5-8 KiB per pair."""
    if n <= 0:
        return b""
    pairs = []
    total = 0
    total_rand = 0
    while total < n:
        plen = min(rng.randrange(512, 8192), n - total)
        a = int(plen * random_fraction)
        pairs.append((a, plen - a))
        total += plen
        total_rand += a
    rnd = randbytes(rng, total_rand)
    low = low_entropy(rng, n - total_rand)
    parts = []
    ri = li = 0
    for a, b in pairs:
        parts.append(rnd[ri:ri + a])
        parts.append(low[li:li + b])
        ri += a
        li += b
    return b"".join(parts)


def ldb_table(rng: random.Random, size: int, first_key: int) -> bytearray:
    """A LevelDB-ish SSTable: 4 KiB 'snappy' data blocks of random payload, each with a
    key header and a 5-byte trailer, then an index block and the 48-byte footer."""
    size = max(size, 2 * LDB_BLOCK)
    buf = bytearray(randbytes(rng, size))
    n_blocks = max(1, (size - 48) // LDB_BLOCK - 1)
    index = bytearray()
    key = first_key
    for i in range(n_blocks):
        off = i * LDB_BLOCK
        k = b"h" + key.to_bytes(8, "big") + b"n"
        hdr = b"\x00" + _varint(len(k)) + _varint(LDB_BLOCK - 64) + k
        buf[off:off + len(hdr)] = hdr
        buf[off + LDB_BLOCK - 5] = 1  # block trailer: compression type = snappy (+ crc, random)
        index += b"\x00" + _varint(len(k)) + b"\x06" + k + _varint(off) + _varint(LDB_BLOCK - 5)
        key += rng.randrange(1, 64)
    index_off = n_blocks * LDB_BLOCK
    index = bytes(index[: size - 48 - index_off])
    buf[index_off:index_off + len(index)] = index
    footer = (_varint(index_off) + _varint(0) + _varint(index_off) + _varint(len(index))).ljust(40, b"\x00")
    buf[size - 48:] = footer + LDB_MAGIC
    return buf


def keystore_json(rng: random.Random, index: int, pubkey_hex: str) -> str:
    ks = {
        "crypto": {
            "kdf": {
                "function": "scrypt",
                "params": {"dklen": 32, "n": 262144, "p": 1, "r": 8, "salt": rng.randbytes(32).hex()},
                "message": "",
            },
            "checksum": {"function": "sha256", "params": {}, "message": rng.randbytes(32).hex()},
            "cipher": {
                "function": "aes-128-ctr",
                "params": {"iv": rng.randbytes(16).hex()},
                "message": rng.randbytes(32).hex(),
            },
        },
        "description": "",
        "pubkey": pubkey_hex,
        "path": f"m/12381/3600/{index}/0/0",
        "uuid": str(uuid.UUID(bytes=rng.randbytes(16), version=4)),
        "version": 4,
    }
    return json.dumps(ks)  # compact, like lighthouse (~700 bytes)


def password(rng: random.Random, length: int = 48) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(length))
