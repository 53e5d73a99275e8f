#!/usr/bin/env bash
# Loopback throughput of the SFTP backend with 64 MiB objects against a throwaway OpenSSH
# sshd (crates/transfer/examples/sftp_throughput.rs), for comparison with `scp`.
#
#   bench/sftp_throughput.sh [MIB]    # total size, default 128
set -euo pipefail
cd "$(dirname "$0")/.."
VTOOL_SFTP_BENCH_MB="${1:-128}" \
  exec cargo run --release -q -p vtool-transfer --example sftp_throughput
