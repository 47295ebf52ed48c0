"""HTTP/JSON helpers every protocol shares: credentials, base URLs, JSON bodies, status checks.

A protocol keeps only what is its own (its auth header, its error-body shape); reaching the
provider, reading JSON and mapping statuses are written once here.

Credentials are checked before they reach a socket: a value with a control character (a
CR/LF would split an HTTP header) or a base URL that is malformed, carries ``user:pass@``,
has an over-long host, or spells an IPv4 address in a form resolvers disagree on
(``2130706433``, ``0x7f000001``, ``127.1``, ``0177.0.0.1``) is the caller's mistake: a
bad request naming ``credentials.<name>``, never an internal error or a retryable one.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson

from engine._http.response import UpstreamResponse
from engine._http.status import MessageExtractor, error_for_status, raise_for_status
from engine.adapter import CallContext
from engine.errors import FieldViolation, InvokeBadRequestError, InvokeError

from .options import BaseURLByCredential

__all__ = [
    "MessageExtractor",
    "UpstreamResponse",
    "base_url",
    "check_status",
    "credential",
    "dumps",
    "json_body",
    "loads",
    "read_json",
]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE = re.compile(r"\s")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE)
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


def _invalid(name: str, description: str) -> InvokeBadRequestError:
    return InvokeBadRequestError(f"credentials.{name} {description}",
                                 field_violations=(FieldViolation(f"credentials.{name}", description),))


def credential(ctx: CallContext, name: str | None) -> str:
    """The caller's credential called ``name``, stripped ("" when absent or unnamed).

    Kit credentials end up in headers and URLs, so control characters are refused here."""
    if not name:
        return ""
    value = ctx.credentials.get(name)
    text = str(value).strip() if value else ""
    if _CONTROL.search(text):
        raise _invalid(name, "must not contain control characters (CR, LF, NUL, ...)")
    return text


def check_url(url: str, name: str) -> None:
    """Raise a bad request naming ``credentials.<name>`` unless ``url`` is a plain http(s) URL."""
    problem = _url_problem(url) if len(url) <= _CACHED_URL_CHARS else _url_problem.__wrapped__(url)
    if problem:
        raise _invalid(name, problem)


_CACHED_URL_CHARS = 2048  # longer URLs are checked every time rather than kept


@lru_cache(maxsize=256)
def _url_problem(url: str) -> str:
    """What is wrong with ``url`` ("" when nothing). A pure function of the text, cached: every
    call of a deployment repeats the same base URL, and parsing it is not free."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http(s) URL"
    if "@" in parts.netloc:
        return "must not contain user:password@ (send keys as credentials)"
    if _SPACE.search(url):
        return "must not contain spaces"
    host = parts.hostname or ""
    if not host:
        return "has no host"
    if parts.netloc.split(":")[0].startswith("["):
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return "has an invalid IPv6 address"
        return ""
    return _host_problem(host.removesuffix("."))


def _host_problem(host: str) -> str:
    try:
        ipaddress.IPv4Address(host)
        return ""  # canonical dotted quad
    except ValueError:
        pass
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        # URL parsers read a numeric last label as IPv4 (decimal, hex, octal, short forms).
        return "must spell an IPv4 address as four decimal numbers (a.b.c.d)"
    if len(host) > 253:
        return "has a host name longer than 253 characters"
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "has an invalid host name"
    if len(ascii_host) > 253:
        return "has a host name longer than 253 characters"
    if not all(_LABEL.fullmatch(label) for label in ascii_host.split(".")):
        return "has an invalid host name (labels of 1-63 letters, digits or '-')"
    return ""


def base_url(ctx: CallContext, *, default: str | None, credential_name: str | None,
             by_credential: BaseURLByCredential | None = None, append: str = "") -> str:
    """The base URL without a trailing slash: the caller's own (a credential) or the default.

    ``by_credential`` lets a credential (a region, an "international" switch) pick the
    default; ``append`` is added to a caller-given URL that lacks it (OpenAI's form omits /v1).
    """
    custom = credential(ctx, credential_name)
    if custom:
        if not custom.startswith(("http://", "https://")):
            raise InvokeBadRequestError(
                "base URL must start with http:// or https://",
                field_violations=(FieldViolation(f"credentials.{credential_name}", "must be an http(s) URL"),),
            )
        check_url(custom, credential_name or "base_url")
        custom = custom.rstrip("/")
        if append and not custom.endswith(append):
            custom += append
        return custom
    chosen = default or ""
    if by_credential is not None:
        value = ctx.credentials.get(by_credential.credential)
        if value is not None:
            chosen = by_credential.values.get(str(value).lower()) or chosen
    if not chosen:
        raise InvokeBadRequestError(
            "this provider needs a base URL",
            field_violations=(FieldViolation(f"credentials.{credential_name or 'base_url'}", "required"),),
        )
    return chosen.rstrip("/")


def dumps(body: Any) -> bytes:
    return orjson.dumps(body)


def loads(raw: bytes | str) -> Any:
    """Parse JSON; None when it is not JSON (callers decide what that means)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def json_body(raw: bytes) -> Any:
    """A 2xx body that must be JSON (leading blank lines, as DeepSeek pads, are fine)."""
    try:
        return orjson.loads(raw.strip() or b"null")
    except orjson.JSONDecodeError:
        raise InvokeError("The provider returned a response that is not JSON") from None


def read_json(response: UpstreamResponse) -> Any:
    """Parse a read 2xx JSON body; an ``{"error": ...}`` body under 200 raises the mapped error."""
    body = json_body(response.content)
    if isinstance(body, dict) and body.get("error") and not (body.get("data") or body.get("results")):
        err = body["error"]
        message = str(err.get("message") or err) if isinstance(err, dict) else str(err)
        code = err.get("code") if isinstance(err, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        raise error_for_status(status, message, in_body=True)
    return body


def error_message(response: UpstreamResponse) -> str:
    """The error text of the commonest error body shapes: OpenAI-style ``{"error": {"message"}}``, plus the variants compatible servers use:
    ``{"message"}`` (Mistral), ``{"detail"}`` (Xinference, NVIDIA), a bare string error."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, str):
            return err
        if isinstance(err, dict):
            message = err.get("message") or err.get("msg") or err.get("detail") or ""
            if isinstance(message, str):
                return message
            return orjson.dumps(message).decode()[:300]
        detail = body.get("detail")
        if detail:
            return detail if isinstance(detail, str) else orjson.dumps(detail).decode()[:300]
    return ""


async def check_status(response: UpstreamResponse, extract: MessageExtractor) -> None:
    """Raise the mapped runtime error when the response is not 2xx (reads the error body)."""
    await raise_for_status(response, extract)
