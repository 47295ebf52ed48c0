"""Who to call and how to authenticate, for every provider that speaks OpenAI's HTTP API.

Everything that varies between OpenAI-compatible providers is data: the provider YAML's
``runtime:`` block, typed as :class:`.options.OpenAIOptions` and checked at start-up. URLs,
query parameters and the model id come from the kit (:mod:`providers.kit.endpoint`); what is
OpenAI's own is the choice of auth header (bearer, Azure's ``api-key``, none, a Zhipu JWT) and
the shapes of its error bodies.
"""

from __future__ import annotations

from typing import cast

from engine.adapter import CallContext
from providers.kit.endpoint import base_url, has_base_url_override, model_id, query, url
from providers.kit.http import credential, dumps, error_message

from .options import OpenAIOptions

__all__ = ["api_key", "base_url", "dumps", "error_message", "has_base_url_override", "headers", "model_id",
           "options", "query", "url"]


def options(ctx: CallContext) -> OpenAIOptions:
    return cast(OpenAIOptions, ctx.options)


def api_key(ctx: CallContext) -> str:
    key = credential(ctx, options(ctx).api_key_credential)
    if key and options(ctx).api_key_format == "zhipu_jwt":
        from .auth import zhipu_token

        key = zhipu_token(key)
    return key


def _auth_style(ctx: CallContext) -> str:
    o = options(ctx)
    choice = credential(ctx, o.auth_header_credential)
    return o.auth_header_values.get(choice) or o.auth_header if choice else o.auth_header


def headers(ctx: CallContext, content_type: str | None = "application/json") -> dict[str, str]:
    o = options(ctx)
    out: dict[str, str] = {"content-type": content_type} if content_type else {}
    key = api_key(ctx)
    style = _auth_style(ctx)
    if key:
        if style == "api-key":
            out["api-key"] = key
        elif style == "bearer":
            out["authorization"] = f"Bearer {key}"
    organization = credential(ctx, o.organization_credential)
    if organization:
        out["openai-organization"] = organization
    out.update(o.headers)
    return out




