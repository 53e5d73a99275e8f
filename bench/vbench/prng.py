"""Deterministic pseudo-random streams.

Every file gets its own random.Random seeded from (global seed, label), so files can
be generated in any order / in parallel and still be byte-identical run to run.
"""

import hashlib
import random

# random.randbytes() overflows above 256 MiB per call; stay well below.
_MAX_CALL = 32 << 20


def derive_seed(seed: int, label: str) -> int:
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def rng_for(seed: int, label: str) -> random.Random:
    return random.Random(derive_seed(seed, label))


def randbytes(rng: random.Random, n: int) -> bytes:
    if n <= _MAX_CALL:
        return rng.randbytes(n)
    return b"".join(rng.randbytes(min(_MAX_CALL, n - i)) for i in range(0, n, _MAX_CALL))


def randhex(rng: random.Random, nbytes: int) -> str:
    return rng.randbytes(nbytes).hex()
