#!/usr/bin/env bash
# The fuzz targets (crates/cli/tests/fuzz) at a large case count: every parser of untrusted
# bytes (pack trailer and ciphertext, index, tree, snapshot, config, drill record, EIP-3076
# interchange, EIP-2335 keystore, SFTP URL). Prints "fuzz NAME: N cases in S s" per target.
#
#   bench/fuzz.sh [CASES]             # default 20000 cases per target
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
VTOOL_FUZZ_CASES="$cases" \
  cargo test -p vtool --test tests -- fuzz:: --nocapture --test-threads=1 >"$log" 2>&1 || status=$?
# Each line follows libtest's "test NAME ... " on the same line.
grep -oE 'fuzz [^:]+: [0-9]+ cases in .*' "$log" | sort -u || true
if [ "$status" != 0 ]; then
  grep -E 'panicked|minimal failing input|fuzz [^:]+: Test failed' "$log" | head -40 >&2
fi
exit "$status"
