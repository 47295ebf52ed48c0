"""URLs, query parameters and bearer headers for APIs addressed like OpenAI's.

Driven by :class:`~providers.kit.options.EndpointOptions`; a protocol with another auth scheme
builds its own headers and still takes :func:`url`, :func:`query` and :func:`model_id` here.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import quote

from engine.adapter import CallContext

from . import http
from .options import EndpointOptions


def options(ctx: CallContext) -> EndpointOptions:
    return cast(EndpointOptions, ctx.options)


def model_id(ctx: CallContext) -> str:
    """The model id sent on the wire (a credential for UID/endpoint-addressed servers)."""
    return http.credential(ctx, options(ctx).model_credential) or ctx.model


def has_base_url_override(ctx: CallContext) -> bool:
    """True when the caller gave their own base URL (then absolute endpoint options yield)."""
    return bool(http.credential(ctx, options(ctx).base_url_credential))


def base_url(ctx: CallContext) -> str:
    o = options(ctx)
    return http.base_url(ctx, default=o.base_url, credential_name=o.base_url_credential,
                         by_credential=o.base_url_by_credential, append=o.base_url_append)


def url(ctx: CallContext, path: str) -> str:
    prefix = options(ctx).base_url_path
    if prefix:
        prefix = "/" + prefix.strip("/").replace("{model}", quote(model_id(ctx), safe=""))
    return f"{base_url(ctx)}{prefix}/{path.lstrip('/')}"


def query(ctx: CallContext) -> dict[str, str] | None:
    o = options(ctx)
    out = dict(o.query)
    for param, name in o.query_credentials.items():
        value = ctx.credentials.get(name)
        if value not in (None, ""):
            out[param] = str(value).strip()
    return out or None


def bearer_headers(ctx: CallContext, content_type: str | None = "application/json") -> dict[str, str]:
    """Content type, ``Authorization: Bearer <key>`` when a key is given, and the static headers."""
    out: dict[str, str] = {"content-type": content_type} if content_type else {}
    key = http.credential(ctx, options(ctx).api_key_credential)
    if key:
        out["authorization"] = f"Bearer {key}"
    out.update(options(ctx).headers)
    return out
