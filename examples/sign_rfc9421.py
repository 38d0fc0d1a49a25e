#!/usr/bin/env python3
"""Send one request signed with RFC 9421 HTTP Message Signatures, hmac-sha256, as portcullis expects
(DESIGN section 4.4). Python 3 standard library only.

usage:  SIGNING_KEY=... [SIGNING_KEY_ID=worker-7] python3 sign_rfc9421.py URL [BODY]
   or:  WORKER_MASTER_KEY=... SIGNING_KEY_ID=worker-42 python3 sign_rfc9421.py URL [BODY]

  URL                 e.g. http://127.0.0.1:8080/pools/1/preload?x=1 (a route that accepts the rfc9421 scheme)
  BODY                optional; sent as a POST with a Content-Digest that the signature covers
  SIGNING_KEY_ID      the keyid (default worker-7)
  SIGNING_KEY         the key for that keyid, used as its UTF-8 text (a hex key is NOT decoded)
  WORKER_MASTER_KEY   used only when SIGNING_KEY is unset: the key is derived like the gateway's `derive`

Prints the status and the response body; exits 0 on a 2xx answer, 1 otherwise.
"""
import base64
import hashlib
import hmac
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def derive_key(master: str, key_id: str) -> str:
    """HKDF-SHA256(ikm=master, salt="portcullis", info="worker-key:"+keyid, 32 bytes), as lowercase hex text."""
    prk = hmac.new(b"portcullis", master.encode("utf-8"), hashlib.sha256).digest()  # RFC 5869 extract
    okm = hmac.new(prk, b"worker-key:" + key_id.encode("utf-8") + b"\x01", hashlib.sha256).digest()  # expand, 1 block
    return okm.hex()


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def rfc9421_headers(method: str, url: str, key_id: str, key: str, body: bytes = None) -> dict:
    parts = urllib.parse.urlsplit(url)
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    authority = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
    path = parts.path or "/"
    query = "?" + parts.query if parts.query else "?"  # an absent query is signed as a lone "?"

    headers = {"Host": authority}
    components = [("@method", method), ("@authority", authority), ("@path", path), ("@query", query)]
    if body:
        headers["Content-Digest"] = content_digest(body)
        components.append(("content-digest", headers["Content-Digest"]))

    # keyid and nonce are sf-strings: no '"' or '\' in them (base64url nonces are safe).
    covered = " ".join(f'"{name}"' for name, _ in components)
    params = f'({covered});created={int(time.time())};keyid="{key_id}";nonce="{secrets.token_urlsafe(16)}"'
    lines = [f'"{name}": {value}' for name, value in components]
    lines.append(f'"@signature-params": {params}')
    base = "\n".join(lines)  # no trailing newline

    mac = hmac.new(key.encode("utf-8"), base.encode("ascii"), hashlib.sha256).digest()
    headers["Signature-Input"] = f"sig1={params}"
    headers["Signature"] = "sig1=:" + base64.b64encode(mac).decode("ascii") + ":"  # standard base64, padded
    return headers


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    key_id = os.environ.get("SIGNING_KEY_ID", "worker-7")
    key = os.environ.get("SIGNING_KEY")
    if not key and os.environ.get("WORKER_MASTER_KEY"):
        key = derive_key(os.environ["WORKER_MASTER_KEY"], key_id)
    if not key:
        print("set SIGNING_KEY (or WORKER_MASTER_KEY to derive it)", file=sys.stderr)
        return 2
    url = sys.argv[1]
    body = sys.argv[2].encode("utf-8") if len(sys.argv) == 3 else None
    method = "POST" if body is not None else "GET"
    headers = rfc9421_headers(method, url, key_id, key, body)
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
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
