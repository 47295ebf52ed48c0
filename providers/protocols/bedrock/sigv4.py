"""AWS Signature Version 4, written against the published specification (no boto3/botocore).

The four steps (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html):

1. **Canonical request**::

       METHOD \\n
       canonical URI \\n          the request path URI-encoded *again* (every service but S3),
                                  so a model id sent as ``a%3Ab`` is signed as ``a%253Ab``
       canonical query \\n        name=value pairs, each URI-encoded, sorted by name then value
       canonical headers \\n      ``name:value\\n`` per header: lower-case names, trimmed values
                                  with inner runs of spaces collapsed, sorted by name
       signed headers \\n         the header names joined with ``;``
       hex(SHA-256(payload))

2. **String to sign**: ``AWS4-HMAC-SHA256\\n<x-amz-date>\\n<scope>\\n<hex SHA-256 of step 1>``,
   scope = ``<yyyymmdd>/<region>/<service>/aws4_request``.
3. **Signing key**: ``HMAC("AWS4" + secret, date)`` → region → service → ``"aws4_request"``.
4. **Authorization**: ``AWS4-HMAC-SHA256 Credential=<key id>/<scope>, SignedHeaders=<list>,
   Signature=<hex HMAC(signing key, string to sign)>``.

"URI-encode" is RFC 3986 percent-encoding of everything but ``A-Z a-z 0-9 - _ . ~`` with upper-case
hex digits; ``/`` stays as it is inside paths. :func:`sign_request` signs ``host``,
``x-amz-date``, ``content-type``, ``x-amz-content-sha256`` and ``x-amz-security-token`` (when a
session token is given) and returns the headers to send, ``host`` included, so the value signed
is exactly the value on the wire. Everything here is pure: the clock is a parameter.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SPACES = re.compile(r" +")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Headers that are signed when the caller sends them; others (user-agent, accept, ...) are not,
# since proxies may rewrite them.
SIGNED_HEADER_NAMES = ("content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token")


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"AwsCredentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """RFC 3986 encoding as SigV4 defines it (``~`` unreserved, space as %20, upper-case hex)."""
    return quote(value, safe="/~" if keep_slash else "~")


def _normalize_path(path: str) -> str:
    """RFC 3986 dot-segment removal; empty segments are dropped too (``//`` → ``/``), as AWS
    normalises paths for every service but S3."""
    kept: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if kept:
                kept.pop()
            continue
        kept.append(segment)
    trailing = "/" if path.endswith("/") and kept else ""
    return "/" + "/".join(kept) + trailing


def canonical_uri(path: str, *, double_encode: bool = True) -> str:
    """The canonical URI of a request path as it is sent (already percent-encoded).

    Non-S3 services normalise the path and encode it once more (``%`` → ``%25``); S3 does
    neither, and signs the path encoded once.
    """
    if not path:
        return "/"
    if double_encode:
        return uri_encode(_normalize_path(path), keep_slash=True)
    return uri_encode(unquote(path), keep_slash=True)


def canonical_query(query: str | Iterable[tuple[str, str]]) -> str:
    """Sorted ``name=value`` pairs joined with ``&``; a raw query string is decoded first."""
    if isinstance(query, str):
        pairs = []
        for item in query.split("&"):
            if not item:
                continue
            name, _, value = item.partition("=")
            pairs.append((unquote(name.replace("+", " ")), unquote(value.replace("+", " "))))
    else:
        pairs = list(query)
    encoded = sorted((uri_encode(n), uri_encode(v)) for n, v in pairs)
    return "&".join(f"{n}={v}" for n, v in encoded)


def _header_value(value: str) -> str:
    return _SPACES.sub(" ", value.strip())


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(canonical header block, signed header list) for exactly the headers given."""
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        merged.setdefault(name.lower().strip(), []).append(_header_value(str(value)))
    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    method: str, path: str, query: str | Iterable[tuple[str, str]], headers: Mapping[str, str],
    payload_sha256: str, *, double_encode: bool = True,
) -> tuple[str, str]:
    """(canonical request, signed header list)."""
    block, signed = canonical_headers(headers)
    request = "\n".join([
        method.upper(), canonical_uri(path, double_encode=double_encode), canonical_query(query),
        block, signed, payload_sha256,
    ])
    return request, signed


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(access_key_id: str, scope: str, signed_headers: str, sig: str) -> str:
    return f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={sig}"


def amz_date(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def host_header(url: str) -> str:
    """The Host value for a URL: the host, plus the port unless it is the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    return host


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AwsCredentials,
    region: str,
    service: str,
    *,
    now: datetime | None = None,
    content_sha256_header: bool = True,
) -> dict[str, str]:
    """Headers to send for a signed request: ``headers`` plus host, x-amz-date,
    x-amz-content-sha256 (unless disabled), x-amz-security-token and authorization.

    ``url`` must carry the path exactly as it will be sent (percent-encoded).
    """
    out = {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}
    stamp = amz_date(now)
    payload_hash = hashlib.sha256(body).hexdigest()
    out["host"] = out.get("host") or host_header(url)
    out["x-amz-date"] = stamp
    if content_sha256_header:
        out["x-amz-content-sha256"] = payload_hash
    if credentials.session_token:
        out["x-amz-security-token"] = credentials.session_token
    to_sign = {k: v for k, v in out.items() if k in SIGNED_HEADER_NAMES}
    parts = urlsplit(url)
    canonical, signed = canonical_request(method, parts.path, parts.query, to_sign, payload_hash)
    scope = credential_scope(stamp[:8], region, service)
    key = signing_key(credentials.secret_access_key, stamp[:8], region, service)
    out["authorization"] = authorization(
        credentials.access_key_id, scope, signed, signature(key, string_to_sign(stamp, scope, canonical))
    )
    return out
