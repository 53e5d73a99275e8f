#!/usr/bin/env bash
# vtool's main job on the bundled sample node: init a local repository, back up, restore with
# full verification, prove the keystore opens, and show the fingerprint.
set -euo pipefail
cd "$(dirname "$0")/.."
# The etcd client (custody registry) compiles its protocol definitions with protoc.
if ! command -v protoc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
  else
    echo "missing: protoc (install it, e.g. sudo apt-get install protobuf-compiler)" >&2
    exit 2
  fi
fi
cargo build -p vtool
vtool=$PWD/target/debug/vtool
work=$(mktemp -d "${TMPDIR:-/tmp}/vtool-demo.XXXXXX")
export VTOOL_CACHE_DIR=$work/cache
echo "== working in $work"

echo "== vtool init"
"$vtool" init --repo "$work/repo" --identity-out "$work/restore.identity" --backup-key-out "$work/backup.key"

echo "== vtool backup (backup key only)"
"$vtool" backup --repo "$work/repo" --backup-key "$work/backup.key" --tag demo fixtures/sample-node

echo "== vtool backup again (nothing changed: files cache, nothing read)"
"$vtool" backup --repo "$work/repo" --backup-key "$work/backup.key" --tag demo fixtures/sample-node

echo "== vtool snapshots"
"$vtool" snapshots --repo "$work/repo"

echo "== vtool restore --verify (restore identity)"
# Keystores leave the repository only behind a passing gate (vtool gate), which needs beacon nodes;
# this sample has none, so the restore is an override, recorded in the repository.
"$vtool" restore --repo "$work/repo" --identity "$work/restore.identity" latest --target "$work/restored" --verify --no-gate
"$vtool" reports --repo "$work/repo" --identity "$work/restore.identity"

echo "== vtool keys check on the restored validator"
"$vtool" keys check "$work/restored/sample-node/lighthouse/validators" \
  --passwords "$work/restored/sample-node/lighthouse/secrets"

echo "== vtool drill: restore to a scratch dir, prove it, decrypt the keystores, boot sqlite3 on the slashing-protection DB"
"$vtool" drill --repo "$work/repo" --identity "$work/restore.identity" latest \
  --prove-keys sample-node/lighthouse/validators --passwords sample-node/lighthouse/secrets \
  --boot "sqlite3 {dir}/sample-node/lighthouse/validators/slashing_protection.sqlite 'PRAGMA integrity_check'" \
  --expect '^ok$'
"$vtool" drills --repo "$work/repo" --identity "$work/restore.identity"

echo "== the restored tree is byte-identical to the source"
diff -r fixtures/sample-node "$work/restored/sample-node" && echo "identical"
echo "== done; the fingerprint above identifies this backup. Clean up with: rm -rf $work"
