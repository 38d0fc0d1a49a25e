#!/usr/bin/env python3
"""Join a portcullis gateway (DESIGN section 4.7): trade the join PSK for this worker's own key.
Needs the `cryptography` package (X25519, HKDF, AES-GCM): pip install cryptography.

usage:  JOIN_PSK=... python3 join.py BASE_URL KEY_ID [JOIN_PATH]

  BASE_URL   the gateway, e.g. http://127.0.0.1:8080
  KEY_ID     this worker's id; afterwards it signs RFC 9421 requests with keyid=KEY_ID
  JOIN_PATH  the gateway's join.path (default /_portcullis/join)

Prints the worker's key (64 hex characters) and exits 0, or prints the refusal and exits 1.
"""
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_headers(url: str, psk: str, body: bytes) -> dict:
    """RFC 9421, hmac-sha256, keyid "join", the PSK as key (same as examples/sign_rfc9421.py)."""
    parts = urllib.parse.urlsplit(url)
    default_port = {"http": 80, "https": 443}[parts.scheme]
    authority = parts.hostname if parts.port in (None, default_port) else f"{parts.hostname}:{parts.port}"
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"
    components = [("@method", "POST"), ("@authority", authority), ("@path", parts.path),
                  ("@query", "?" + parts.query if parts.query else "?"), ("content-digest", digest)]
    covered = " ".join(f'"{name}"' for name, _ in components)
    params = f'({covered});created={int(time.time())};keyid="join";nonce="{secrets.token_urlsafe(16)}"'
    base = "\n".join([f'"{name}": {value}' for name, value in components] + [f'"@signature-params": {params}'])
    mac = hmac.new(psk.encode("utf-8"), base.encode("ascii"), hashlib.sha256).digest()
    return {"Host": authority, "Content-Type": "application/json", "Content-Digest": digest,
            "Signature-Input": f"sig1={params}", "Signature": "sig1=:" + base64.b64encode(mac).decode("ascii") + ":"}


def join(base_url: str, key_id: str, psk: str, path: str = "/_portcullis/join") -> str:
    url = base_url.rstrip("/") + path
    private = X25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    body = json.dumps({"keyid": key_id, "publicKey": b64url(public_raw)}).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers=signed_headers(url, psk, body), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if answer["keyid"] != key_id:
        raise ValueError("answer is for another key id")
    shared = private.exchange(X25519PublicKey.from_public_bytes(unb64url(answer["serverPublicKey"])))
    aes_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=unb64url(answer["nonce"]),
                   info=b"portcullis-join:" + key_id.encode("utf-8")).derive(shared)
    wrapped = unb64url(answer["wrappedKey"])  # 12-byte IV || ciphertext || 16-byte tag
    key = AESGCM(aes_key).decrypt(wrapped[:12], wrapped[12:], key_id.encode("utf-8"))  # AAD = keyid
    return key.decode("ascii")


def main() -> int:
    if len(sys.argv) not in (3, 4) or not os.environ.get("JOIN_PSK"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(join(sys.argv[1], sys.argv[2], os.environ["JOIN_PSK"], *sys.argv[3:]))
        return 0
    except urllib.error.HTTPError as error:
        print(f"join refused: {error.code} {error.read().decode('utf-8', 'replace')}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
