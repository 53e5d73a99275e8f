#!/usr/bin/env bash
# Prune at scale: a synthetic repository of BLOBS 1 MiB chunks (its index, refs and snapshots
# real, its packs sparse files), 7 snapshots, forget keeping 3, then one prune with
# `--grace 0s --max-unused unlimited` (whole unused packs; no pack data exists to repack).
# Prints the prune's wall time and peak RSS (/usr/bin/time).
#
#   bench/prune_scale.sh [BLOBS] [WORKDIR]     # default 10000000 blobs (~10 TB), bench/work/prune-scale
set -euo pipefail
cd "$(dirname "$0")/.."
blobs="${1:-10000000}"
work="${2:-bench/work/prune-scale}"
cargo build --release -q -p vtool -p vtool-snapshot --example synth_repo
rm -rf "$work"
t0=$(date +%s)
target/release/examples/synth_repo "$work" "$blobs" 7
echo "generated in $(( $(date +%s) - t0 )) s" >&2
key=(--repo "$work/repo" --backup-key "$work/backup.key")
target/release/vtool forget "${key[@]}" --keep-last 3 >/dev/null
/usr/bin/time -f "prune: %e s wall, %M KiB peak RSS" \
  target/release/vtool prune "${key[@]}" --grace 0s --max-unused unlimited
rm -rf "$work"
