"""Running a command and measuring it: wall time, CPU, peak RSS (via /usr/bin/time)."""

import os
import shutil
import subprocess
import sys
import time

TIME_BIN = "/usr/bin/time"

# Used when /usr/bin/time is absent: same numbers, from getrusage(RUSAGE_CHILDREN).
_FALLBACK = r"""
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    f.write("0 %.2f %.2f %d\n" % (ru.ru_utime, ru.ru_stime, ru.ru_maxrss))
sys.exit(rc)
"""


def run_measured(argv, env, cwd, log_dir, tag, timeout=None) -> dict:
    """Run argv; stdout/stderr go to log_dir/tag.{stdout,stderr}.

    Returns rc, wall_s (monotonic clock around the process), user_s, sys_s,
    peak_rss_kib (max RSS of the largest process in the tree, as reported by
    wait4/getrusage), and the log paths."""
    os.makedirs(log_dir, exist_ok=True)
    out_path = os.path.join(log_dir, f"{tag}.stdout")
    err_path = os.path.join(log_dir, f"{tag}.stderr")
    time_path = os.path.join(log_dir, f"{tag}.time")
    if os.path.exists(TIME_BIN):
        wrapped = [TIME_BIN, "-f", "%e %U %S %M", "-o", time_path] + list(argv)
    else:
        wrapped = [sys.executable, "-c", _FALLBACK, time_path] + list(argv)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        try:
            rc = subprocess.run(wrapped, env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = -999
        except FileNotFoundError as e:
            err.write(str(e).encode())
            rc = 127
        wall = time.monotonic() - t0
    user = system = rss = None
    try:
        with open(time_path) as f:
            last = [ln for ln in f.read().splitlines() if ln.strip()][-1].split()
        user, system, rss = float(last[1]), float(last[2]), int(last[3])
    except (OSError, IndexError, ValueError):
        pass
    return {"rc": rc, "wall_s": wall, "user_s": user, "sys_s": system, "peak_rss_kib": rss,
            "stdout": out_path, "stderr": err_path, "argv": list(argv), "cwd": cwd}


def drop_caches() -> bool:
    """sync + drop the page cache (needs root); silently False if not permitted."""
    subprocess.run(["sync"], check=False)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed_sync() -> float:
    t0 = time.monotonic()
    subprocess.run(["sync"], check=False)
    return time.monotonic() - t0


def du_bytes(path: str) -> int | None:
    """Apparent size (du -sb) of a path, None if it does not exist."""
    if not os.path.exists(path):
        return None
    if shutil.which("du"):
        p = subprocess.run(["du", "-sb", path], capture_output=True, text=True)
        if p.returncode == 0:
            return int(p.stdout.split()[0])
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for dirpath, _, files in os.walk(path):
        for n in files:
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


def tail(path: str, lines: int = 3, width: int = 160) -> str:
    try:
        with open(path, errors="replace") as f:
            text = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])[-width:]
