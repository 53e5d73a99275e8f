"""Directory manifests (relative path -> kind, size, mode, hash) and their comparison."""

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor

HASH = "blake2b"


def _hash_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, HASH).hexdigest()


def manifest(root: str, with_hash: bool = True, workers: int = 0) -> dict:
    """{relpath: {"type": "file"|"dir"|"symlink"|"other", "size", "mode", "hash"}}"""
    entries = {}
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                entries[rel] = {"type": "file", "size": st.st_size, "mode": stat.S_IMODE(st.st_mode)}
                files.append(rel)
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = {"type": "dir", "mode": stat.S_IMODE(st.st_mode)}
            elif stat.S_ISLNK(st.st_mode):
                entries[rel] = {"type": "symlink", "target": os.readlink(path)}
            else:
                entries[rel] = {"type": "other"}
    if with_hash:
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for rel, digest in zip(files, pool.map(lambda r: _hash_file(os.path.join(root, r)), files)):
                entries[rel]["hash"] = digest
    return entries


def file_count(m: dict) -> int:
    return sum(1 for e in m.values() if e["type"] == "file")


def total_bytes(m: dict) -> int:
    return sum(e.get("size", 0) for e in m.values() if e["type"] == "file")


def compare(expected: dict, actual: dict, max_report: int = 20, allow_extra: bool = False):
    """(errors, warnings): content/list differences are errors, mode differences warnings.
    allow_extra: entries only in ``actual`` are fine (e.g. a README a copy adds)."""
    errors, warnings = [], []
    missing = sorted(set(expected) - set(actual))
    extra = [] if allow_extra else sorted(set(actual) - set(expected))
    errors += [f"missing: {p}" for p in missing[:max_report]]
    errors += [f"unexpected: {p}" for p in extra[:max_report]]
    if len(missing) > max_report or len(extra) > max_report:
        errors.append(f"... {len(missing)} missing, {len(extra)} unexpected in total")
    for rel in sorted(set(expected) & set(actual)):
        e, a = expected[rel], actual[rel]
        if e["type"] != a["type"]:
            errors.append(f"type differs: {rel}: {e['type']} vs {a['type']}")
        elif e["type"] == "file":
            if e["size"] != a["size"]:
                errors.append(f"size differs: {rel}: {e['size']} vs {a['size']}")
            elif e.get("hash") != a.get("hash"):
                errors.append(f"content differs: {rel}")
        elif e["type"] == "symlink" and e["target"] != a["target"]:
            errors.append(f"symlink target differs: {rel}")
        if "mode" in e and e.get("mode") != a.get("mode"):
            warnings.append(f"mode differs: {rel}: {oct(e['mode'])} vs {oct(a.get('mode') or 0)}")
    return errors, warnings
