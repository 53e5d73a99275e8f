#!/usr/bin/env bash
# The mutual-TLS certificates of a custody cluster (doc/CUSTODY.md), with openssl: one CA, a
# certificate per etcd member (server and peer: its name and IP address as SANs) and one per
# client host (vtool on each validator host). Keep ca.key offline once done.
#
#   make-certs.sh DIR --member etcd-1=10.0.0.1 --member etcd-2=10.0.0.2 --member etcd-3=10.0.0.3 \
#                     --client host-a --client host-b
#
# Writes DIR/ca.crt, DIR/ca.key, DIR/member-NAME.{crt,key}, DIR/client-NAME.{crt,key}; never
# overwrites a file. Certificates are valid for --days (default 825).
set -euo pipefail
usage() { echo "usage: $0 DIR [--days N] --member NAME=IP... --client NAME..." >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1; shift
days=825 members=() clients=()
while [ $# -gt 0 ]; do
  case $1 in
    --member) [ $# -ge 2 ] || usage; members+=("$2"); shift 2 ;;
    --client) [ $# -ge 2 ] || usage; clients+=("$2"); shift 2 ;;
    --days) [ $# -ge 2 ] || usage; days=$2; shift 2 ;;
    *) usage ;;
  esac
done
[ ${#members[@]} -gt 0 ] && [ ${#clients[@]} -gt 0 ] || usage
mkdir -p "$dir"
umask 077

fresh() { for f; do [ ! -e "$dir/$f" ] || { echo "$dir/$f exists; not overwriting" >&2; exit 2; }; done; }

if [ ! -e "$dir/ca.crt" ]; then
  fresh ca.key
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=vtool custody etcd CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# sign NAME FILE-PREFIX EXTENSIONS
sign() {
  fresh "$2.key" "$2.crt"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$dir/$2.key" -out "$dir/$2.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$2.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -out "$dir/$2.crt" -extfile <(printf '%s\n' "$3") 2>/dev/null
  rm -f "$dir/$2.csr"
}

for m in "${members[@]}"; do
  name=${m%%=*} ip=${m#*=}
  [ "$name" != "$m" ] || usage
  sign "$name" "member-$name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$name,IP:$ip"
done
for c in "${clients[@]}"; do
  sign "$c" "client-$c" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
done
chmod 0644 "$dir"/*.crt
echo "certificates in $dir: copy ca.crt and member-NAME.* to each member, ca.crt and client-NAME.* to each host"
