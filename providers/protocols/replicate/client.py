"""Reaching Replicate: base URL, Bearer auth, RFC 7807 errors, and model/version metadata.

``runtime:`` options of the provider YAML (all optional; typed in :mod:`.options`):

    base_url             API root, default https://api.replicate.com (``/v1/...`` is appended)
    base_url_credential  credential that overrides it (``replicate_base_url``); a trailing ``/v1``
                         is dropped
    api_key_credential   credential holding the token, sent as ``Authorization: Bearer`` (``replicate_api_token``)
    version_credential   credential holding a version id (``model_version``; empty: the latest)
    metadata_ttl         seconds a model's input schema is cached (300)

Models are named ``{owner}/{name}``. Their version's OpenAPI schema
(``openapi_schema.components.schemas.Input.properties``) says which inputs they take: whether
there is a ``system_prompt``, what the token limit is called, whether ``stop_sequences`` exists,
and for embedding models whether texts go in ``text``, ``texts`` or ``inputs``. It is fetched as
Dify does (``GET /v1/models/{owner}/{name}``, plus ``.../versions/{id}`` for a pinned version)
and cached per model, version and token.

Errors are RFC 7807 ``{"type", "title", "status", "detail"}`` (older ones only ``{"detail"}``):
401 bad token, 402 out of credit, 404 unknown model or version, 422 invalid input, 429 throttled
with ``retry-after``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote, urlsplit

from engine._http.response import UpstreamResponse
from engine._http.status import error_for_status
from engine.adapter import CallContext
from engine.errors import InvokeError, bad_request
from providers.kit import http
from providers.kit.http import dumps, loads

from .options import ReplicateOptions

__all__ = ["ModelInfo", "api", "base_url", "check_status", "dumps", "get_json", "headers", "loads", "model_info",
           "model_path", "options", "read_json", "split_model", "token", "trusted", "version"]

_MAX_MESSAGE = 500
_CACHE_SIZE = 512


def options(ctx: CallContext) -> ReplicateOptions:
    return cast(ReplicateOptions, ctx.options)


def base_url(ctx: CallContext) -> str:
    o = options(ctx)
    root = http.base_url(ctx, default=o.base_url, credential_name=o.base_url_credential)
    return root.removesuffix("/v1")


def api(ctx: CallContext, path: str) -> str:
    return f"{base_url(ctx)}/v1/{path}"


def token(ctx: CallContext) -> str:
    return http.credential(ctx, options(ctx).api_key_credential)


def version(ctx: CallContext) -> str:
    return http.credential(ctx, options(ctx).version_credential)


def headers(ctx: CallContext, *, accept: str = "application/json", wait: int | None = None) -> dict[str, str]:
    out = {"content-type": "application/json", "accept": accept}
    key = token(ctx)
    if key:
        out["authorization"] = f"Bearer {key}"
    if wait:
        out["prefer"] = f"wait={wait}"
    return out


def trusted(ctx: CallContext, url: str) -> bool:
    """Whether a URL Replicate handed us may receive the token (its API host or *.replicate.com)."""
    host = (urlsplit(url).hostname or "").lower()
    own = (urlsplit(base_url(ctx)).hostname or "").lower()
    return host == own or host == "replicate.com" or host.endswith(".replicate.com")


def split_model(model: str) -> tuple[str, str]:
    owner, sep, name = model.strip().partition("/")
    if not sep or not owner or not name or "/" in name:
        raise bad_request("target.model", "Replicate models are named {owner}/{name}")
    return owner, name


def model_path(model: str) -> str:
    owner, name = split_model(model)
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def error_message(response: UpstreamResponse) -> str:
    body = loads(response.content) if response.content else None
    if isinstance(body, dict):
        message = body.get("detail") or body.get("title") or body.get("error")
        if isinstance(message, dict):
            message = message.get("detail") or message.get("message")
        return str(message or "").strip()[:_MAX_MESSAGE]
    ctype = response.headers.get("content-type", "")
    return response.text[:200] if "text/plain" in ctype else ""


async def check_status(response: UpstreamResponse) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    raise error_for_status(response.status_code, error_message(response), response.headers)


async def read_json(response: UpstreamResponse) -> dict[str, Any]:
    await check_status(response)
    body = loads(await response.aread())
    if not isinstance(body, dict):
        raise InvokeError("Replicate returned a response that is not a JSON object")
    return body


async def get_json(ctx: CallContext, url: str) -> dict[str, Any]:
    async with ctx.http.stream("GET", url, headers=headers(ctx), deadline=ctx.deadline) as response:
        return await read_json(response)


# ---- model metadata --------------------------------------------------------------------------


@dataclass(slots=True)
class ModelInfo:
    version_id: str  # "" when the model has no listed version (official models: use the model route)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # Input properties in x-order
    description: str = ""

    @property
    def known(self) -> bool:
        return bool(self.inputs)


def input_properties(version_obj: Any) -> dict[str, dict[str, Any]]:
    schema = version_obj.get("openapi_schema") if isinstance(version_obj, dict) else None
    try:
        props = schema["components"]["schemas"]["Input"]["properties"]  # type: ignore[index]
    except (KeyError, TypeError):
        return {}
    if not isinstance(props, dict):
        return {}
    items = [(k, v) for k, v in props.items() if isinstance(v, dict)]
    items.sort(key=lambda kv: kv[1].get("x-order", 0) if isinstance(kv[1].get("x-order"), int | float) else 0)
    return dict(items)


_cache: dict[tuple[str, ...], tuple[float, ModelInfo]] = {}


async def model_info(ctx: CallContext, *, fresh: bool = False) -> ModelInfo:
    """The model's version and input schema (cached unless ``fresh``)."""
    path = model_path(ctx.model)
    pinned = version(ctx)
    key = (base_url(ctx), path, pinned, hashlib.sha256(token(ctx).encode()).hexdigest()[:16])
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now and not fresh:
        return hit[1]
    model = await get_json(ctx, api(ctx, f"models/{path}"))
    if pinned:
        chosen: Any = await get_json(ctx, api(ctx, f"models/{path}/versions/{quote(pinned, safe='')}"))
    else:
        chosen = model.get("latest_version")
    info = ModelInfo(
        version_id=str(chosen.get("id") or "") if isinstance(chosen, dict) else "",
        inputs=input_properties(chosen),
        description=str(model.get("description") or ""),
    )
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    ttl = options(ctx).metadata_ttl
    _cache[key] = (now + ttl, info)
    return info
