"""Who to call and how to authenticate, for every provider that speaks OpenAI's HTTP API.

Everything that varies between OpenAI-compatible providers is data in the provider YAML's
``runtime:`` block (read once per provider):

    base_url               default base URL (already including /v1 or the provider's prefix)
    base_url_credential    credential variable that overrides the base URL
    base_url_append        appended to a caller-given base URL (OpenAI's own form omits /v1)
    api_key_credential     credential variable holding the key
    auth_header            "bearer" (default) | "api-key" (Azure) | "none"
    organization_credential  credential sent as OpenAI-Organization
    query                  static query parameters (e.g. Azure api-version)
    stream_usage           send stream_options.include_usage (default true)
    embedding_encoding     "base64" (compact, fast to decode) or "float"
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from ...base import CallContext
from ...errors import FieldViolation, InvokeBadRequestError


def _credential(ctx: CallContext, option: str) -> str:
    name = ctx.options.get(option)
    if not name:
        return ""
    value = ctx.credentials.get(name)
    return str(value).strip() if value else ""


def base_url(ctx: CallContext) -> str:
    custom = _credential(ctx, "base_url_credential")
    if custom:
        if not custom.startswith(("http://", "https://")):
            field = ctx.options.get("base_url_credential")
            raise InvokeBadRequestError(
                "base URL must start with http:// or https://",
                field_violations=(FieldViolation(f"credentials.{field}", "must be an http(s) URL"),),
            )
        custom = custom.rstrip("/")
        append = ctx.options.get("base_url_append", "")
        if append and not custom.endswith(append):
            custom += append
        return custom
    default = ctx.options.get("base_url")
    if not default:
        field = ctx.options.get("base_url_credential", "base_url")
        raise InvokeBadRequestError(
            "this provider needs a base URL",
            field_violations=(FieldViolation(f"credentials.{field}", "required"),),
        )
    return str(default).rstrip("/")


def headers(ctx: CallContext, content_type: str | None = "application/json") -> dict[str, str]:
    out: dict[str, str] = {}
    if content_type:
        out["content-type"] = content_type
    key = _credential(ctx, "api_key_credential")
    style = ctx.options.get("auth_header", "bearer")
    if key:
        if style == "api-key":
            out["api-key"] = key
        elif style == "bearer":
            out["authorization"] = f"Bearer {key}"
    organization = _credential(ctx, "organization_credential")
    if organization:
        out["openai-organization"] = organization
    for name, value in (ctx.options.get("headers") or {}).items():
        out[str(name)] = str(value)
    return out


def url(ctx: CallContext, path: str) -> str:
    return f"{base_url(ctx)}/{path.lstrip('/')}"


def query(ctx: CallContext) -> dict[str, str] | None:
    q = ctx.options.get("query")
    return {str(k): str(v) for k, v in q.items()} if q else None


def dumps(body: Any) -> bytes:
    return orjson.dumps(body)


def error_message(response: httpx.Response) -> str:
    """OpenAI-style ``{"error": {"message"}}``, plus the variants compatible servers use."""
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
