#!/bin/sh
# Installs what the harness compares against: restic and borg from Debian, rustic built with
# cargo into the project's ignored .cache/rustic (skipped when already built), matplotlib for
# --plot, and the profilers and stage-limit tools doc/BENCHMARKS.md uses.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
apt-get install -y -q restic borgbackup b3sum zstd openssl linux-perf strace time >/dev/null
if [ ! -x "$root/.cache/rustic/bin/rustic" ]; then
    cargo install rustic-rs --locked --version 0.11.4 --root "$root/.cache/rustic" --quiet
fi
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib
"$root/.cache/rustic/bin/rustic" --version
