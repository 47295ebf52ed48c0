"""Text in, numbers out: POST /v1/embeddings, /v1/rerank and /v1/moderations.

* embeddings: ``input`` is a string or an array of strings (token arrays are refused: the
  runtime takes text). ``encoding_format`` ``float`` (the default) or ``base64``: the
  little-endian float32 bytes the official SDK asks for by default. ``dimensions``, ``user``
  and the extension ``input_type`` (``query`` | ``document``) reach the runtime.
* rerank: the Jina/Cohere shape ``{model, query, documents: [str | {"text"}], top_n,
  return_documents (default true), score_threshold?}`` → ``{id, model, results: [{index,
  relevance_score, document?: {text}}]}``.
* moderations: ``input`` is a string, an array of strings, or an array of text parts; one
  runtime call per string, run concurrently. Categories keep the provider's names.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from array import array
from collections.abc import Awaitable
from typing import Any, TypeVar

from engine.entities import ModelType

from .call import Call, new_id, text_field
from .openai_errors import bad_request

T = TypeVar("T")

_EMBED_FIELDS = {"texts": "input", "dimensions": "dimensions"}
_RERANK_FIELDS = {"docs": "documents", "top_n": "top_n"}
_MODERATION_FIELDS = {"text": "input"}


def _float32_base64(vector: list[float]) -> str:
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _texts(raw: Any, field: str) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        return raw
    if isinstance(raw, list) and raw and all(isinstance(x, (int, list)) for x in raw):
        raise bad_request(f"'{field}' as token arrays is not supported; send text", param=field)
    raise bad_request(f"'{field}' must be a non-empty string or array of strings", param=field)


async def create_embeddings(call: Call) -> None:
    body = call.json()
    target = call.target(body.get("model"))
    call.fields = _EMBED_FIELDS
    texts = _texts(body.get("input"), "input")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise bad_request(f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
                          param="encoding_format", code="invalid_value")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise bad_request("dimensions must be a positive integer", param="dimensions")
    input_type = "query" if body.get("input_type") == "query" else "document"
    user = text_field(body, "user")
    result = await call.runtime.embed(target, texts, input_type, dimensions, user)
    encode = _float32_base64 if fmt == "base64" else None
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
        for i, v in enumerate(result.embeddings)
    ]
    usage = result.usage
    tokens = usage.tokens if usage is not None else result.tokens
    out_usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
    if usage is not None:
        out_usage["cost"], out_usage["currency"] = float(usage.total_price), usage.currency
    await call.send_json({"object": "list", "data": data, "model": call.public_model(target.provider, result.model),
                          "usage": out_usage})


def _documents(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        raise bad_request("documents must be an array of strings or {\"text\"} objects", param="documents")
    docs = []
    for i, d in enumerate(raw):
        if isinstance(d, dict):
            d = d.get("text")
        if not isinstance(d, str):
            raise bad_request(f"documents[{i}] must be a string or an object with text", param=f"documents[{i}]")
        docs.append(d)
    return docs


async def rerank(call: Call) -> None:
    body = call.json()
    target = call.target(body.get("model"))
    call.fields = _RERANK_FIELDS
    query = body.get("query")
    if not isinstance(query, str) or not query:
        raise bad_request("query must be a non-empty string", param="query")
    docs = _documents(body.get("documents"))
    top_n = body.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool)):
        raise bad_request("top_n must be an integer", param="top_n")
    threshold = body.get("score_threshold")
    if threshold is not None and not isinstance(threshold, (int, float)):
        raise bad_request("score_threshold must be a number", param="score_threshold")
    user = text_field(body, "user")
    result = await call.runtime.rerank(target, query, docs, threshold, top_n, user)
    with_docs = body.get("return_documents", True) is not False
    results = []
    for d in result.docs:
        item: dict[str, Any] = {"index": d.index, "relevance_score": d.score}
        if with_docs:
            item["document"] = {"text": d.text}
        results.append(item)
    await call.send_json({"id": new_id("rerank-"), "model": call.public_model(target.provider, result.model),
                          "results": results})


async def gather_cancelling(aws: list[Awaitable[T]]) -> list[T]:
    """gather() that cancels the rest on the first failure (no orphaned upstream calls)."""
    if len(aws) == 1:
        return [await aws[0]]
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _moderation_inputs(raw: Any) -> list[str]:
    if isinstance(raw, list) and raw and all(isinstance(x, dict) for x in raw):
        texts = []
        for i, part in enumerate(raw):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request(f"input[{i}]: only text parts can be moderated here", param=f"input[{i}]")
            texts.append(part["text"])
        return [" ".join(texts)]
    return _texts(raw, "input")


async def _default_moderation_model(call: Call) -> str:
    if call.provider is None:
        raise bad_request("you must provide a model parameter ('<provider>/<model>')", param="model")
    models = await call.runtime.list_models(call.provider, ModelType.MODERATION)
    if not models:
        raise bad_request(f"provider '{call.provider}' has no moderation model", param="model")
    return models[0].model


async def moderations(call: Call) -> None:
    body = call.json()
    model = body.get("model") or await _default_moderation_model(call)
    target = call.target(model)
    call.fields = _MODERATION_FIELDS
    texts = _moderation_inputs(body.get("input"))
    user = text_field(body, "user")
    results = await gather_cancelling([call.runtime.moderate(target, text, user) for text in texts])
    model_name = results[0].model if results else target.model
    await call.send_json({
        "id": new_id("modr-"),
        "model": call.public_model(target.provider, model_name),
        "results": [
            {"flagged": r.flagged,
             "categories": {c.name: c.flagged for c in r.categories},
             "category_scores": {c.name: c.score for c in r.categories}}
            for r in results
        ],
    })
