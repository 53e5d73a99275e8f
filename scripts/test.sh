#!/usr/bin/env bash
# Runs the whole test suite. The tests use real programs: OpenSSH's sshd (SFTP backend), the
# database engines drills boot (sqlite3, RocksDB's ldb, LMDB's tools) and the checksum tools
# manifests are made for, promtool and systemd-analyze for the metrics and units, etcd for the
# custody registry (and protoc, which the etcd client's build needs), moto and a Garage cluster
# for the S3 backend; install them first when they are missing and we can.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v ldb >/dev/null 2>&1 || need+=(rocksdb-tools)
command -v mdb_stat >/dev/null 2>&1 || need+=(lmdb-utils)
command -v b3sum >/dev/null 2>&1 || need+=(b3sum)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]} (install them, e.g. sudo apt-get install ${need[*]})" >&2
    exit 2
  fi
fi
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  python3 -m pip install -q 'moto[server]' || {
    echo "missing: moto (install it with: python3 -m pip install 'moto[server]')" >&2
    exit 2
  }
fi
# Garage 2.5, the distributed S3 store the object-storage tests run a 3-node cluster of:
# built once into the ignored .cache/ (about 10 minutes on 2 cores), unless one is on PATH.
garage_version=2.5.0
if [ -z "${VTOOL_GARAGE:-}" ] && [ ! -x .cache/garage/bin/garage ]; then
  if command -v garage >/dev/null 2>&1 && garage --version 2>/dev/null | grep -q "cargo:$garage_version"; then
    mkdir -p .cache/garage/bin && cp "$(command -v garage)" .cache/garage/bin/garage
  else
    echo "building Garage $garage_version into .cache/garage (once)" >&2
    cargo install garage --locked --version "$garage_version" --root .cache/garage --quiet
  fi
fi
exec cargo test --workspace
