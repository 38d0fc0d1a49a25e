#!/bin/sh
# Send one request signed with portcullis worker-v1 (DESIGN section 4.3) using openssl, date and curl.
#
# usage:  DISTRIBUTED_WORKER_SECRET=... [WORKER_ID=worker-1] [METHOD=POST] ./sign_worker_v1.sh URL [BODY]
#
#   URL                        e.g. http://127.0.0.1:8080/v2/nodes/n1/heartbeat (a route that accepts worker-v1)
#   BODY                       optional; sent as a POST (worker-v1 does not sign the body)
#   DISTRIBUTED_WORKER_SECRET  the scheme's shared secret, used as its text (a hex secret is NOT decoded)
#   WORKER_ID                  sent as x-worker-id (default worker-1)
#   METHOD                     the method (default: POST with a BODY, GET without)
#
# Prints the response body; exits 0 on a 2xx answer, 1 otherwise.
# Note: `openssl -hmac` takes the secret as an argument, briefly visible in the process list of this host.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: DISTRIBUTED_WORKER_SECRET=... [WORKER_ID=worker-1] [METHOD=POST] $0 URL [BODY]" >&2
  exit 2
fi
: "${DISTRIBUTED_WORKER_SECRET:?set DISTRIBUTED_WORKER_SECRET}"
url=$1
id=${WORKER_ID:-worker-1}
if [ $# -eq 2 ]; then method=${METHOD:-POST}; else method=${METHOD:-GET}; fi

# Unix MILLISECONDS. GNU date has them (%3N); where date lacks %N (BSD, busybox) whole seconds are used,
# and a second request in the same second is the same signature: the gateway refuses it as a replay.
ts=$(date +%s%3N)
case $ts in *[!0-9]*) ts="$(date +%s)000" ;; esac
sig=$(printf '%s:%s' "$id" "$ts" | openssl dgst -sha256 -hmac "$DISTRIBUTED_WORKER_SECRET" -r | cut -d' ' -f1)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ $# -eq 2 ]; then
  set -- --data-binary "$2" -H 'content-type: application/json'
else
  set --
fi
status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$@" \
  -H "x-worker-id: $id" \
  -H "x-worker-timestamp: $ts" \
  -H "x-worker-signature: $sig" \
  "$url") || status=000
cat "$out"; echo
echo "HTTP $status" >&2
case $status in
  2??) exit 0 ;;
  *) exit 1 ;;
esac
