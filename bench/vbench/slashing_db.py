"""A real SQLite slashing-protection DB shaped like lighthouse's.

Schema follows lighthouse's slashing_protection crate (validators, signed_blocks,
signed_attestations).  ``create`` fills it with a few thousand rows; ``advance``
adds the rows a day of (sparse, pruned) duties would add.
"""

import random
import sqlite3

SCHEMA = """
CREATE TABLE validators (
    id INTEGER PRIMARY KEY,
    public_key BLOB NOT NULL UNIQUE,
    enabled BOOL NOT NULL DEFAULT TRUE
);
CREATE TABLE signed_blocks (
    validator_id INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    signing_root BLOB NOT NULL,
    FOREIGN KEY(validator_id) REFERENCES validators(id)
    UNIQUE (validator_id, slot)
);
CREATE TABLE signed_attestations (
    validator_id INTEGER,
    source_epoch INTEGER NOT NULL,
    target_epoch INTEGER NOT NULL,
    signing_root BLOB NOT NULL,
    FOREIGN KEY(validator_id) REFERENCES validators(id)
    UNIQUE (validator_id, target_epoch)
);
"""

FIRST_EPOCH = 250_000
SLOTS_PER_EPOCH = 32


def _add_epochs(con: sqlite3.Connection, rng: random.Random, n_validators: int, first: int, count: int) -> int:
    rows = 0
    for epoch in range(first, first + count):
        con.executemany(
            "INSERT INTO signed_attestations VALUES (?, ?, ?, ?)",
            [(v, epoch - 1, epoch, rng.randbytes(32)) for v in range(1, n_validators + 1)],
        )
        rows += n_validators
        # roughly one proposal per ~40 epochs across 200 validators
        if rng.random() < 0.4:
            v = rng.randint(1, n_validators)
            slot = epoch * SLOTS_PER_EPOCH + rng.randrange(SLOTS_PER_EPOCH)
            con.execute("INSERT OR IGNORE INTO signed_blocks VALUES (?, ?, ?)", (v, slot, rng.randbytes(32)))
            rows += 1
    return rows


def create(path: str, rng: random.Random, pubkeys, epochs: int = 20) -> int:
    con = sqlite3.connect(path)
    try:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO validators (public_key, enabled) VALUES (?, 1)", [(pk,) for pk in pubkeys])
        rows = len(pubkeys) + _add_epochs(con, rng, len(pubkeys), FIRST_EPOCH, epochs)
        con.commit()
    finally:
        con.close()
    return rows


def advance(path: str, rng: random.Random, epochs: int = 10) -> int:
    """Append ``epochs`` more epochs of attestations (and the odd block)."""
    con = sqlite3.connect(path)
    try:
        n_validators = con.execute("SELECT COUNT(*) FROM validators").fetchone()[0]
        last = con.execute("SELECT COALESCE(MAX(target_epoch), ?) FROM signed_attestations",
                           (FIRST_EPOCH - 1,)).fetchone()[0]
        rows = _add_epochs(con, rng, n_validators, last + 1, epochs)
        con.commit()
    finally:
        con.close()
    return rows
