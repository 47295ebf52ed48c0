"""Reaching a retrieval specialist: the typed options, the wire model id, one JSON POST.

Embeddings and rerank send the same way: ``POST {base}/{path}`` with a bearer key and the
kit's query parameters; a non-2xx status raises the mapped error (the kit's error-body reader
knows ``{"detail"}``, ``{"message"}`` and OpenAI's shape), and so does an error a 200 body carries
(``runtime.status_envelope``, MiniMax's ``base_resp``).
"""

from __future__ import annotations

from typing import Any, cast

from engine._http.status import raise_for_status
from engine.adapter import CallContext
from providers.kit import endpoint
from providers.kit.http import dumps, error_message, read_json

from .options import RetrievalOptions


def options(ctx: CallContext) -> RetrievalOptions:
    return cast(RetrievalOptions, ctx.options)


def wire_model(ctx: CallContext) -> str:
    """The model id sent on the wire: the model name, with the provider's prefix if it has one."""
    model = endpoint.model_id(ctx)
    prefix = options(ctx).model_prefix
    return model if not prefix or model.startswith(prefix) else prefix + model


async def post(ctx: CallContext, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` to ``path``; the parsed 2xx reply, or the mapped error."""
    response = await ctx.http.request(
        "POST", endpoint.url(ctx, path), headers=endpoint.bearer_headers(ctx), content=dumps(body),
        params=endpoint.query(ctx), deadline=ctx.deadline,
    )
    await raise_for_status(response, error_message)
    parsed = read_json(response)
    envelope = options(ctx).status_envelope
    error = envelope.body_error(parsed) if envelope is not None else None
    if error is not None:
        raise error
    return parsed
