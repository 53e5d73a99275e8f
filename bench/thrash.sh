#!/usr/bin/env bash
# The thrash suite (crates/cli/tests/thrash) at a larger trial count: kill -9 during backup
# and copy, single-byte flips in every object kind, concurrent backups. Prints one line per
# scenario, "thrash NAME: trials N, held H, failed F", and the seed that replays the run.
#
#   bench/thrash.sh [TRIALS]          # default 50 trials per scenario
#   VTOOL_THRASH_SEED=123 bench/thrash.sh 20
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-50}"
seed="${VTOOL_THRASH_SEED:-$(date +%s%N)}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "thrash: $trials trials per scenario, seed $seed" >&2
start=$(date +%s)
status=0
VTOOL_THRASH_TRIALS="$trials" VTOOL_THRASH_SEED="$seed" \
  cargo test -p vtool --test tests -- thrash:: --nocapture --test-threads=1 >"$log" 2>&1 || status=$?
grep -E '^thrash [^:]+: trials ' "$log" | sort -u
echo "thrash: $(( $(date +%s) - start )) s, exit $status (full log: rerun with the same seed)" >&2
if [ "$status" != 0 ]; then
  grep -E 'failed:|panicked' "$log" | head -40 >&2
fi
exit "$status"
