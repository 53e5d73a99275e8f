"""Generate a deterministic validator-node directory ("state A").

    geth/chaindata/NNNNNN.ldb          ~55%  ~2 MiB LevelDB tables, ~incompressible
    geth/chaindata/ancient/chain/*     ~40%  append-only freezer tables, ~1.7x with zstd
    beacon/chain_db/NNNNNN.ldb          ~5%  beacon-node LevelDB (fills the remainder)
    validator/keystores/0x<pk>/voting-keystore.json  x200, EIP-2335-shaped
    validator/secrets/0x<pk>                         x200, password files
    validator/slashing_protection.sqlite             real SQLite, few thousand rows
    validator/validator_definitions.yml, jwt.hex, config.toml, geth/nodekey, ...

Big files are written in parallel (one process per CPU); every file has its own
seeded PRNG so the output is byte-identical for a given (size, seed).
"""

import multiprocessing
import os
import time

from . import compress, freezer, leveldb, slashing_db
from .content import keystore_json, password
from .prng import rng_for

FRACTION_CHAINDATA = 0.55
FRACTION_FREEZER = 0.40
N_VALIDATORS = 200

GETH_DB = "geth/chaindata"
FREEZER_DIR = "geth/chaindata/ancient/chain"
BEACON_DB = "beacon/chain_db"
KEYSTORES = "validator/keystores"
SECRETS = "validator/secrets"
SLASHING_DB = "validator/slashing_protection.sqlite"

CATEGORIES = (  # (label, path prefix) -- first match wins
    ("freezer", FREEZER_DIR + "/"),
    ("geth leveldb", GETH_DB + "/"),
    ("beacon leveldb", BEACON_DB + "/"),
    ("keystores", KEYSTORES + "/"),
    ("secrets", SECRETS + "/"),
    ("slashing db", SLASHING_DB),
    ("other", ""),
)


def _run_task(task):
    kind = task[0]
    if kind == "ldb":
        _, path, seed, label = task
        return leveldb.write_table(path, seed, label)
    if kind == "freezer":
        _, dirpath, name, n_blocks, seed, label = task
        spec = next(t for t in freezer.TABLES if t.name == name)
        return freezer.append_blocks(dirpath, spec, n_blocks, seed, label)
    raise ValueError(kind)


def run_tasks(tasks, workers: int) -> None:
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            _run_task(t)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_run_task, tasks, chunksize=1):
            pass


def _ldb_tasks(root: str, rel: str, budget: int, seed: int):
    d = os.path.join(root, rel)
    os.makedirs(d, exist_ok=True)
    leveldb.write_metadata(d, seed, rel)
    numbers = leveldb.plan_numbers(rng_for(seed, f"{rel}:numbers"), 4, leveldb.tables_for_bytes(budget))
    return [("ldb", leveldb.table_path(d, n), seed, f"{rel}:{n}") for n in numbers]


def _small_files(root: str, seed: int) -> None:
    rng = rng_for(seed, "small")
    with open(os.path.join(root, "jwt.hex"), "w") as f:
        f.write("0x" + rng.randbytes(32).hex())
    os.chmod(os.path.join(root, "jwt.hex"), 0o600)
    with open(os.path.join(root, "config.toml"), "w") as f:
        f.write('[Eth]\nNetworkId = 1\nSyncMode = "snap"\nNoPruning = false\n'
                'DatabaseCache = 512\nTrieCleanCache = 154\n\n[Node]\nDataDir = "/var/lib/node/geth"\n'
                'AuthAddr = "127.0.0.1"\nAuthPort = 8551\nJWTSecret = "/var/lib/node/jwt.hex"\n'
                '\n[Node.P2P]\nMaxPeers = 50\nListenAddr = ":30303"\n')
    with open(os.path.join(root, "geth", "nodekey"), "w") as f:
        f.write(rng.randbytes(32).hex())
    open(os.path.join(root, "geth", "LOCK"), "wb").close()
    open(os.path.join(root, FREEZER_DIR, "FLOCK"), "wb").close()


def _validator_files(root: str, seed: int) -> int:
    rng = rng_for(seed, "validators")
    os.makedirs(os.path.join(root, KEYSTORES), exist_ok=True)
    os.makedirs(os.path.join(root, SECRETS), exist_ok=True)
    pubkeys = []
    defs = ["---\n"]
    for i in range(N_VALIDATORS):
        pk = "0x" + rng.randbytes(48).hex()
        pubkeys.append(pk)
        kdir = os.path.join(root, KEYSTORES, pk)
        os.makedirs(kdir, exist_ok=True)
        with open(os.path.join(kdir, "voting-keystore.json"), "w") as f:
            f.write(keystore_json(rng, i, pk))
        spath = os.path.join(root, SECRETS, pk)
        with open(spath, "w") as f:
            f.write(password(rng))
        os.chmod(spath, 0o600)
        defs.append(f"- enabled: true\n  voting_public_key: \"{pk}\"\n  description: \"\"\n"
                    f"  type: local_keystore\n"
                    f"  voting_keystore_path: /var/lib/node/{KEYSTORES}/{pk}/voting-keystore.json\n"
                    f"  voting_keystore_password_path: /var/lib/node/{SECRETS}/{pk}\n")
    with open(os.path.join(root, "validator", "validator_definitions.yml"), "w") as f:
        f.write("".join(defs))
    return slashing_db.create(os.path.join(root, SLASHING_DB), rng, pubkeys)


def generate(root: str, size: int, seed: int = 1, workers: int = 0) -> dict:
    """Create the dataset under root (must be empty or absent). Returns a summary."""
    t0 = time.monotonic()
    if os.path.exists(root) and os.listdir(root):
        raise FileExistsError(f"{root} is not empty")
    workers = workers or os.cpu_count() or 1
    os.makedirs(os.path.join(root, FREEZER_DIR), exist_ok=True)

    # the small stuff first, so the beacon DB can fill exactly the remainder
    _small_files(root, seed)
    rows = _validator_files(root, seed)
    small = tree_bytes(root)

    freezer_blocks = freezer.blocks_for_bytes(int(size * FRACTION_FREEZER))
    tasks = [("freezer", os.path.join(root, FREEZER_DIR), t.name, freezer_blocks, seed, "freezer:gen")
             for t in sorted(freezer.TABLES, key=lambda t: -t.mean_item)]
    tasks += _ldb_tasks(root, GETH_DB, int(size * FRACTION_CHAINDATA), seed)
    beacon_budget = size - small - int(size * FRACTION_CHAINDATA) - int(size * FRACTION_FREEZER)
    tasks += _ldb_tasks(root, BEACON_DB, max(beacon_budget, 1 << 20), seed)
    run_tasks(tasks, workers)

    summary = summarize(root)
    summary.update(seed=seed, requested_bytes=size, slashing_rows=rows,
                   freezer_blocks=freezer_blocks, seconds=round(time.monotonic() - t0, 2))
    return summary


def tree_bytes(root: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def summarize(root: str) -> dict:
    cats = {label: {"files": 0, "bytes": 0} for label, _ in CATEGORIES}
    for dirpath, _, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            label = next(lbl for lbl, prefix in CATEGORIES if rel.startswith(prefix))
            cats[label]["files"] += 1
            cats[label]["bytes"] += os.lstat(os.path.join(dirpath, name)).st_size
    total = sum(c["bytes"] for c in cats.values())
    return {"total_bytes": total, "total_files": sum(c["files"] for c in cats.values()), "categories": cats}


def measure_compression(root: str) -> dict:
    """Sampled compression ratios of the freezer and of the LevelDB tables."""
    fz = freezer.data_files(os.path.join(root, FREEZER_DIR))
    ldb = [p for _, p in leveldb.existing_tables(os.path.join(root, GETH_DB))][:16]
    f_ratio, method, f_n = compress.ratio(fz)
    l_ratio, _, l_n = compress.ratio(ldb)
    return {"method": method, "freezer_ratio": round(f_ratio, 3), "freezer_sampled_bytes": f_n,
            "ldb_ratio": round(l_ratio, 3), "ldb_sampled_bytes": l_n}
