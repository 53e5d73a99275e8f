"""Measure how well data compresses: zstd -3 (CLI) if present, else zlib -6 as a proxy."""

import shutil
import subprocess
import zlib


def ratio(paths, per_file_cap: int = 64 << 20, total_cap: int = 256 << 20):
    """(ratio, method, sampled_bytes) over the first bytes of each file."""
    have_zstd = shutil.which("zstd") is not None
    raw = packed = 0
    for p in paths:
        if raw >= total_cap:
            break
        with open(p, "rb") as f:
            data = f.read(min(per_file_cap, total_cap - raw))
        if not data:
            continue
        raw += len(data)
        if have_zstd:
            out = subprocess.run(["zstd", "-3", "-c", "-q"], input=data, capture_output=True, check=True).stdout
            packed += len(out)
        else:
            packed += len(zlib.compress(data, 6))
    method = "zstd -3" if have_zstd else "zlib -6 (proxy; zstd CLI not found)"
    return (raw / packed if packed else float("nan")), method, raw
