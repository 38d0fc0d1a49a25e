#!/usr/bin/env bash
# Generates a private CA, a server certificate and client certificates for portcullis' TLS and mutual TLS
# (server.tls.cert / key / clientCa, identities[].mtls.subject) — for development, tests and small
# deployments. Production certificates should come from your PKI (cert-manager, Vault, ...).
#
# usage: scripts/gen-certs.sh [-d DIR] [--days N] [--san SAN]... [CLIENT_NAME]...
#
#   -d, --dir DIR     output directory (default ./certs); created if missing
#   --days N          validity of new certificates in days (default 825)
#   --san SAN         an extra subjectAltName for the server certificate, e.g. DNS:gw.example.com or
#                     IP:10.0.0.5 (repeatable); localhost, 127.0.0.1 and ::1 are always included
#   CLIENT_NAME       one client certificate per name, with subject CN=<name> (for `mtls: { subject: "CN=<name>" }`)
#
# Writes into DIR:
#   ca.crt, ca.key              the CA (reused if DIR already has one, so clients can be added later)
#   server.crt, server.key      server certificate (SAN localhost, 127.0.0.1, ::1 and any --san)
#   <name>.crt, <name>.key      client certificates (extendedKeyUsage clientAuth)
# Keys are EC P-256, PEM, mode 0600. Check the result with:
#   openssl verify -CAfile DIR/ca.crt DIR/server.crt DIR/<name>.crt
#
# A gateway.yaml using them:
#   server:
#     tls: { cert: DIR/server.crt, key: DIR/server.key, clientCa: DIR/ca.crt }
#   identities:
#     - name: ci-runner
#       roles: [admin]
#       mtls: { subject: "CN=ci-runner" }
set -euo pipefail

dir=./certs
days=825
sans=()
clients=()

die() {
  echo "gen-certs: $*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    -d | --dir) [ $# -ge 2 ] || die "$1 needs a value"; dir=$2; shift 2 ;;
    --days) [ $# -ge 2 ] || die "$1 needs a value"; days=$2; shift 2 ;;
    --san) [ $# -ge 2 ] || die "$1 needs a value"; sans+=("$2"); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) clients+=("$1"); shift ;;
  esac
done

case "$days" in '' | *[!0-9]*) die "--days must be a whole number" ;; esac
for san in ${sans[@]+"${sans[@]}"}; do
  case "$san" in DNS:?* | IP:?*) ;; *) die "--san must look like DNS:name or IP:address, got '$san'" ;; esac
done
for name in ${clients[@]+"${clients[@]}"}; do
  # The name becomes a file name and a CN: keep it to what both allow without quoting.
  case "$name" in *[!A-Za-z0-9._-]* | '' | .*) die "client name '$name' may use only letters, digits, '.', '_' and '-'" ;; esac
  case "$name" in ca | server) die "client name '$name' would overwrite the $name certificate" ;; esac
done

command -v openssl >/dev/null || die "openssl is not installed"
mkdir -p "$dir"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

newkey() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  chmod 600 "$1"
}

# sign NAME SUBJECT EXTENSIONS: a key and a certificate signed by the CA.
sign() {
  local name=$1 subject=$2 ext=$3
  newkey "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$work/$name.csr"
  printf '%s\n' "$ext" >"$work/$name.ext"
  openssl x509 -req -in "$work/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -CAserial "$work/ca.srl" \
    -days "$days" -sha256 -extfile "$work/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  chmod 644 "$dir/$name.crt"
}

if [ -f "$dir/ca.crt" ] && [ -f "$dir/ca.key" ]; then
  echo "gen-certs: reusing the CA in $dir"
else
  newkey "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" -subj "/CN=portcullis development CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$dir/ca.crt"
  chmod 644 "$dir/ca.crt"
  echo "gen-certs: CA            $dir/ca.crt"
fi

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for extra in ${sans[@]+"${sans[@]}"}; do san="$san,$extra"; done
if [ ! -f "$dir/server.crt" ] || [ ${#sans[@]} -gt 0 ] || [ ! -f "$dir/server.key" ]; then
  sign server "/CN=localhost" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
authorityKeyIdentifier=keyid
subjectKeyIdentifier=hash"
  echo "gen-certs: server        $dir/server.crt ($san)"
fi

for name in ${clients[@]+"${clients[@]}"}; do
  sign "$name" "/CN=$name" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
authorityKeyIdentifier=keyid
subjectKeyIdentifier=hash"
  echo "gen-certs: client        $dir/$name.crt (CN=$name)"
done
