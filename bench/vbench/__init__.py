"""vbench: benchmark harness comparing vtool with restic and borg.

Standard library only.  Layout (one idea per module):

    units.py        size parsing / formatting
    prng.py         deterministic, seedable byte streams
    content.py      byte generators (LevelDB tables, freezer records, keystores)
    freezer.py      geth-style append-only freezer tables (shared by gen + mutate)
    leveldb.py      LevelDB-style directories of .ldb tables (shared by gen + mutate)
    slashing_db.py  lighthouse-like slashing_protection.sqlite
    dataset.py      generate a whole node directory ("state A")
    mutation.py     "one day later" ("state B")
    tree.py         manifests (list + size + hash) and comparison
    measure.py      run a command under /usr/bin/time, drop caches, du
    tools/          one adapter per backup tool (restic, borg, vtool)
    phases.py       the ordered list of benchmark steps (extension point)
    targets.py      vtool performance targets, evaluated against the others
    report.py       markdown tables + JSON results
    suite.py        orchestrates one benchmark run for one dataset size
"""

GENERATOR_VERSION = 1  # bump when dataset content changes, invalidates bench/work caches
