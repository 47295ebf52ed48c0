"""AWS wire pieces of the Bedrock mock, apart from its replies: the event-stream frame encoder
(prelude, typed headers, CRC32s) and the SigV4 canonical forms the mock's signature check uses."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

# ---------------------------------------------------------------------------------- event stream


def _header(name: str, value: Any, kind: int | None = None) -> bytes:
    """One header; kind defaults to string (7). Types: 0/1 bool, 2 byte, 3 short, 4 int, 5 long,
    6 bytes, 7 string, 8 timestamp (ms), 9 uuid."""
    raw = name.encode()
    if kind is None:
        kind = 7
    out = struct.pack(">B", len(raw)) + raw + struct.pack(">B", kind)
    if kind in (0, 1):
        return out
    if kind == 2:
        return out + struct.pack(">b", value)
    if kind == 3:
        return out + struct.pack(">h", value)
    if kind == 4:
        return out + struct.pack(">i", value)
    if kind in (5, 8):
        return out + struct.pack(">q", value)
    if kind in (6, 7):
        data = value if isinstance(value, bytes) else str(value).encode()
        return out + struct.pack(">H", len(data)) + data
    if kind == 9:
        return out + value.bytes
    raise ValueError(kind)


def encode_frame(headers: list[tuple[str, Any, int | None]], payload: bytes) -> bytes:
    block = b"".join(_header(n, v, k) for n, v, k in headers)
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + block + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _padding(rng: random.Random) -> str:
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[: rng.randint(1, 40)]


def event_frame(event_type: str, payload: dict[str, Any], rng: random.Random) -> bytes:
    data = json.dumps({**payload, "p": _padding(rng)}, ensure_ascii=False).encode()
    return encode_frame([(":event-type", event_type, None), (":content-type", "application/json", None),
                         (":message-type", "event", None)], data)


def exception_frame(exception_type: str, body: dict[str, Any]) -> bytes:
    return encode_frame([(":exception-type", exception_type, None), (":content-type", "application/json", None),
                         (":message-type", "exception", None)], json.dumps(body).encode())


# ---------------------------------------------------------------------------------- SigV4 (verifier)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _canonical_path(raw_path: str) -> str:
    segments: list[str] = []
    for seg in raw_path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segments:
                segments.pop()
        else:
            segments.append(seg)
    path = "/" + "/".join(segments) + ("/" if raw_path.endswith("/") and segments else "")
    return quote(path, safe="/~")  # non-S3: the sent (encoded) path is encoded again


def _canonical_query(raw_query: str) -> str:
    pairs = []
    for item in filter(None, raw_query.split("&")):
        k, _, v = item.partition("=")
        pairs.append((quote(unquote(k), safe="~"), quote(unquote(v), safe="~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


@dataclass
class SignatureCheck:
    key_id: str
    canonical_request: str
    signed_headers: list[str]
