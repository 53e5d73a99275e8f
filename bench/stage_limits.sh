#!/usr/bin/env bash
# Each backup stage's limit on this machine, one core, measured with the reference tool on
# the benchmark's own files (doc/BENCHMARKS.md puts vtool's per-stage time beside these):
#   hash      b3sum (BLAKE3) over the dataset, one thread
#   compress  zstd -b3 on the freezer files (what vtool compresses) and on the .ldb tables
#   encrypt   openssl speed -evp chacha20-poly1305, 16 KiB blocks
#   write     dd of 1 GiB in 16 MiB blocks with fsync at the end (packs are 16 MiB)
#   read      cat of the dataset from a dropped page cache
#
#   bench/stage_limits.sh DATASET_DIR [SCRATCH_DIR]
set -euo pipefail
data=${1:?usage: stage_limits.sh DATASET_DIR [SCRATCH_DIR]}
scratch=${2:-$(dirname "$data")}
bytes=$(du -sb "$data" | cut -f1)
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
mbps() { python3 -c "import sys; print(f'{$1 / 1e6 / $2:.0f}')"; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); python3 -c "print($t1 - $t0)"; }

echo "| stage | tool | MB/s (one core) |"
echo "|---|---|---:|"
drop; t=$(secs cat $(find "$data" -type f)); echo "| read (cold cache) | cat | $(mbps "$bytes" "$t") |"
t=$(secs b3sum --num-threads 1 $(find "$data" -type f)); echo "| hash | b3sum --num-threads 1 (cached) | $(mbps "$bytes" "$t") |"
freezer=$(find "$data" -path '*ancient*' -type f -size +1M | head -20)
ldb=$(find "$data" -name '*.ldb' -type f | head -40)
for set in freezer ldb; do
    files=${!set}
    line=$(zstd -b3 -e3 -T1 -q $files 2>&1 | tail -1)
    # " 3#files...   : 123456 ->  65432 (x1.89),  345.6 MB/s,  1234.5 MB/s"
    c=$(echo "$line" | grep -oE '[0-9.]+ MB/s' | head -1 | cut -d' ' -f1)
    d=$(echo "$line" | grep -oE '[0-9.]+ MB/s' | tail -1 | cut -d' ' -f1)
    r=$(echo "$line" | grep -oE 'x[0-9.]+' | head -1)
    echo "| compress ($set, $r) | zstd -b3 | $c |"
    echo "| decompress ($set) | zstd -b3 | $d |"
done
enc=$(openssl speed -evp chacha20-poly1305 -bytes 16384 -seconds 2 2>/dev/null | awk '/^chacha20-poly1305/ {print $NF}')
echo "| encrypt | openssl speed -evp chacha20-poly1305 (16 KiB) | $(python3 -c "print(f'{float(\"${enc%k}\") * 1000 / 1e6:.0f}')") |"
f="$scratch/stage-limits-dd"
t=$(secs dd if=/dev/zero of="$f" bs=16M count=64 conv=fsync); rm -f "$f"
echo "| write + fsync | dd bs=16M conv=fsync | $(mbps $((1 << 30)) "$t") |"
