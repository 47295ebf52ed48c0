"""What a web browser may do with the endpoint: Content-Type and Origin checks, CORS.

Why: the endpoint spends the operator's configured provider keys and listens on loopback, so any
web page open on the same machine could reach it. A page can send a cross-origin POST without a
CORS preflight when its Content-Type is ``text/plain``, ``multipart/form-data`` or
``application/x-www-form-urlencoded`` (or absent); the endpoint used to parse such bodies as JSON
and answer 200. Two independent checks now stop that:

* every POST route declares the media type it parses (``application/json``, or
  ``multipart/form-data`` for transcriptions); anything else is 415, so a preflight-free browser
  request never reaches a handler;
* browsers put an ``Origin`` header on every cross-origin request and on every POST (also after
  DNS rebinding); a request carrying an Origin that ``http.cors_allowed_origins`` does not list
  is 403. Listed origins get CORS headers and a real preflight answer. SDKs and curl send no
  Origin and are unaffected.
"""

from __future__ import annotations

import re
from typing import Any

from .openai_errors import HttpError

JSON = "application/json"
MULTIPART = "multipart/form-data"
# The media type each POST route parses (the route's sub-path after /v1).
MEDIA_TYPES = {
    "/chat/completions": JSON,
    "/embeddings": JSON,
    "/rerank": JSON,
    "/moderations": JSON,
    "/audio/speech": JSON,
    "/audio/transcriptions": MULTIPART,
}
_TOKEN_LIST = re.compile(rb"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_METHODS = b"GET, POST, OPTIONS"


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def media_type_error(scope: dict[str, Any], sub: str) -> HttpError | None:
    """415 when the request's Content-Type is not the one the route parses."""
    expected = MEDIA_TYPES.get(sub)
    if expected is None or scope["method"] != "POST":
        return None
    raw = header(scope, b"content-type")
    got = raw.split(b";", 1)[0].strip().lower().decode("latin-1") if raw else ""
    if got == expected:
        return None
    return HttpError(415, f"Unsupported Content-Type '{got or '(none)'}': this endpoint accepts {expected}.",
                     param="Content-Type", code="unsupported_media_type")


class OriginPolicy:
    """``http.cors_allowed_origins``: exact origins (``https://app.example.com``); empty = no CORS."""

    def __init__(self, origins: list[str]) -> None:
        self.origins = {o.strip().rstrip("/").lower().encode() for o in origins if o.strip()}

    def check(self, scope: dict[str, Any]) -> tuple[HttpError | None, list[tuple[bytes, bytes]]]:
        """(403 error or None, CORS headers to add to the response)."""
        origin = header(scope, b"origin")
        if origin is None:
            return None, []
        if origin.lower() not in self.origins:
            shown = origin.decode("latin-1")[:200]
            return HttpError(403, f"Requests from origin '{shown}' are not allowed; list it in "
                                  "http.cors_allowed_origins to allow browser access.",
                             type="permission_error", code="origin_not_allowed"), []
        return None, [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]

    def preflight(self, scope: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]]] | None:
        """The answer to a CORS preflight (OPTIONS with Origin), or None when it is not one."""
        if scope["method"] != "OPTIONS" or header(scope, b"origin") is None \
                or header(scope, b"access-control-request-method") is None:
            return None
        err, headers = self.check(scope)
        if err is not None:
            return 403, [(b"vary", b"Origin")]
        requested = header(scope, b"access-control-request-headers")
        headers += [(b"access-control-allow-methods", _METHODS), (b"access-control-max-age", b"600")]
        if requested and _TOKEN_LIST.match(requested.strip()):
            headers.append((b"access-control-allow-headers", requested.strip()))
        return 204, headers
