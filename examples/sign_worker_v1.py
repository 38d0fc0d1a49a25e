#!/usr/bin/env python3
"""Send one request signed with portcullis worker-v1 (DESIGN section 4.3). Python 3 standard library only.

usage:  DISTRIBUTED_WORKER_SECRET=... [WORKER_ID=worker-1] python3 sign_worker_v1.py URL [BODY]

  URL                        e.g. http://127.0.0.1:8080/v2/nodes/n1/heartbeat (a route that accepts the worker-v1 scheme)
  BODY                       optional; sent as a POST (worker-v1 does not sign the body)
  DISTRIBUTED_WORKER_SECRET  the scheme's shared secret, used as its UTF-8 text (a hex secret is NOT decoded)
  WORKER_ID                  sent as x-worker-id; the gateway's identity becomes <scheme>:<id>, e.g. workers:worker-1 (default worker-1)

Prints the status and the response body; exits 0 on a 2xx answer, 1 otherwise.
"""
import hashlib
import hmac
import os
import sys
import time
import urllib.error
import urllib.request


def worker_v1_headers(worker_id: str, secret: str) -> dict:
    timestamp = str(int(time.time() * 1000))  # Unix MILLISECONDS, digits only
    message = f"{worker_id}:{timestamp}".encode("utf-8")
    signature = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()  # lowercase hex
    return {"x-worker-id": worker_id, "x-worker-timestamp": timestamp, "x-worker-signature": signature}


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    secret = os.environ.get("DISTRIBUTED_WORKER_SECRET")
    if not secret:
        print("set DISTRIBUTED_WORKER_SECRET", file=sys.stderr)
        return 2
    url = sys.argv[1]
    body = sys.argv[2].encode("utf-8") if len(sys.argv) == 3 else None
    headers = worker_v1_headers(os.environ.get("WORKER_ID", "worker-1"), secret)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    print(status)
    sys.stdout.write(payload.decode("utf-8", "replace") + "\n")
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
