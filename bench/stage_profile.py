#!/usr/bin/env python3
"""Per-stage CPU breakdown of a `perf record` profile of one vtool command.

    perf record -F 999 -g -o perf.data vtool backup ...
    python3 bench/stage_profile.py perf.data CPU_SECONDS      # user + sys of the command

Every sampled symbol is put in one stage by name (the table below); the stage's share of
the samples times the command's CPU seconds is the CPU time it took. doc/BENCHMARKS.md sets
each stage's time beside its limit from bench/stage_limits.sh.
"""

import re
import subprocess
import sys

STAGES = (  # first match wins
    ("hash (BLAKE3)", r"blake3"),
    ("chunk (FastCDC)", r"fastcdc"),
    ("decompress (zstd)", r"ZSTD_decompress|ZSTD_buildFSETable|HUF_decompress|FSE_decode|ZSTD_decode"),
    ("compress (zstd)", r"ZSTD_|HIST_|HUF_|FSE_|zstd"),
    ("encrypt (age: ChaCha20-Poly1305, X25519)", r"chacha20|poly1305|curve25519|x25519|age::"),
    ("read (kernel: page cache to user)", r"_copy_to_iter|copy_page_to_iter|filemap_read|filemap_get"),
    ("write (kernel: user to page cache, ext4)", r"copy_folio_from_iter|generic_perform_write|ext4_|jbd2|iomap|__block_write"),
    ("memory copies in vtool (memmove/memset)", r"memmove|memcpy|memset"),
    ("page faults, page allocation", r"page_fault|clear_page|do_anonymous_page|get_page_from_freelist|memcg|folio_|alloc_pages|__alloc|rmqueue|lru"),
    ("scheduling, locks, syscalls", r"_raw_spin|finish_task_switch|futex|sched|schedule|entry_SYSCALL|syscall|do_syscall"),
)


def shares(perf_data: str) -> dict:
    out = subprocess.run(["perf", "report", "-i", perf_data, "--no-children", "--sort", "sym",
                          "--stdio", "-g", "none", "--percent-limit", "0"],
                         capture_output=True, text=True, check=True).stdout
    got = {name: 0.0 for name, _ in STAGES}
    got["other"] = 0.0
    for line in out.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+\[[.k]\]\s+(.*)", line)
        if not m:
            continue
        pct, sym = float(m.group(1)), m.group(2)
        stage = next((name for name, rx in STAGES if re.search(rx, sym)), "other")
        got[stage] += pct
    return got


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    cpu = float(argv[2])
    print("| stage | share of CPU | CPU s |")
    print("|---|---:|---:|")
    for stage, pct in sorted(shares(argv[1]).items(), key=lambda kv: -kv[1]):
        if pct >= 0.05:
            print(f"| {stage} | {pct:.1f}% | {pct / 100 * cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
