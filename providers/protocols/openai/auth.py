"""Key formats that are not sent as-is (``runtime.api_key_format``).

``zhipu_jwt``: Zhipu AI (BigModel) accepts its raw API key as a Bearer token, and also a
short-lived HS256 JWT built from a key of the form ``<id>.<secret>`` (what its SDK sends with
token caching on, and what older Dify versions always sent):

- header ``{"alg": "HS256", "sign_type": "SIGN"}``;
- payload ``{"api_key": <id>, "exp": <now_ms + ttl_ms>, "timestamp": <now_ms>}`` — both times
  in **milliseconds**;
- signature HMAC-SHA256 over ``b64url(header).b64url(payload)`` with the secret.

Tokens live 3 minutes and are cached for 2.5 (the SDK's numbers), so a busy process signs
once per key every 150 s instead of once per request. A key without exactly one ``.`` is
sent unchanged (the raw-key form).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time

import orjson

TTL_SECONDS = 180
CACHE_SECONDS = 150
_HEADER = {"alg": "HS256", "sign_type": "SIGN"}

_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_zhipu_jwt(key_id: str, secret: str, now: float) -> str:
    """The JWT for ``key_id``/``secret`` at wall-clock time ``now`` (seconds). Pure."""
    now_ms = int(now * 1000)
    payload = {"api_key": key_id, "exp": now_ms + TTL_SECONDS * 1000, "timestamp": now_ms}
    signing_input = (
        _b64url(orjson.dumps(_HEADER)) + "." + _b64url(orjson.dumps(payload))
    ).encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return signing_input.decode() + "." + _b64url(signature)


def zhipu_token(api_key: str) -> str:
    parts = api_key.split(".")
    if len(parts) != 2 or not all(parts):
        return api_key  # a raw key (or already a JWT): sent as-is
    now = time.time()
    with _lock:
        cached = _cache.get(api_key)
        if cached is not None and cached[0] > now:
            return cached[1]
    token = sign_zhipu_jwt(parts[0], parts[1], now)
    with _lock:
        if len(_cache) > 1024:
            _cache.clear()
        _cache[api_key] = (now + CACHE_SECONDS, token)
    return token
