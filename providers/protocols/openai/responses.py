"""OpenAI's Responses API over HTTP (``POST {base}/responses``): unary and streaming.

Which models use it is data: ``model_properties.endpoint: responses`` in the model's YAML
(:class:`.options.ModelEndpoint`, checked at start-up); :class:`.chat.OpenAIChat` hands those
calls here. Azure OpenAI serves the API beside its deployments, not under them
(``responses_base_path: /openai``, the deployment name as ``model``).

Streams run on the kit's driver with :class:`_Assembler` over the typed SSE events: output
items are announced (``response.output_item.added``), filled by deltas (text, refusal, function
arguments, reasoning summary text) and closed (``response.output_item.done``, which carries a
reasoning item's ``encrypted_content``); ``response.completed``/``response.incomplete`` end the
answer with the usage; ``response.failed`` and ``error`` raise the mapped error after the content
before them; a body that ends before either is truncated (InvokeConnectionError).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from engine._http.sse import SSEEvent, aiter_sse
from engine._http.status import raise_for_status
from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import LLMChunk, LLMResult, ProviderState, ReasoningDelta, ToolCallDelta
from providers.kit.stream import one_event_each, stream_chunks

from . import client
from .chat import stream_error
from .responses_transform import (
    ORIGIN,
    build_responses_body,
    counts_from_usage,
    finish,
    parse_response,
)

_DECODE = one_event_each(aiter_sse)


def url(ctx: CallContext) -> str:
    o = client.options(ctx)
    if o.responses_base_path is not None:  # Azure: beside the deployments, not under one
        prefix = "/" + o.responses_base_path.strip("/") if o.responses_base_path.strip("/") else ""
        return f"{client.base_url(ctx)}{prefix}/{o.responses_path.lstrip('/')}"
    return client.url(ctx, o.responses_path)


def _reasons(ctx: CallContext) -> bool:
    """A reasoning model: its encrypted reasoning is asked for, so the caller can send it back."""
    return ctx.schema is not None and any(r.name == "reasoning_effort" for r in ctx.schema.parameter_rules)


def _body(ctx: CallContext, request: LLMRequest, stream: bool) -> bytes:
    return client.dumps(build_responses_body(client.model_id(ctx), request, stream=stream, reasoning=_reasons(ctx)))


def _failure(obj: dict[str, Any]) -> InvokeError:
    """``error`` events and failed responses as the mapped runtime error."""
    if obj.get("type") == "error":
        err: Any = {"message": obj.get("message"), "type": obj.get("code") or "server_error"}
    else:
        response = obj.get("response") if isinstance(obj.get("response"), dict) else obj
        given = response.get("error") if isinstance(response, dict) else None
        err = {"message": (given or {}).get("message"), "type": (given or {}).get("code") or "server_error"} \
            if isinstance(given, dict) else {"message": "the response failed", "type": "server_error"}
    return stream_error({"error": err})


class OpenAIResponses:
    """The Responses API behind the LLM contract (called by :class:`.chat.OpenAIChat`)."""

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        async with ctx.http.stream("POST", url(ctx), headers=client.headers(ctx), content=_body(ctx, request, False),
                                   params=client.query(ctx), deadline=ctx.deadline) as response:
            await raise_for_status(response, client.error_message)
            raw = await response.aread()
        try:
            parsed = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise InvokeError("The provider returned a response that is not JSON") from None
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        if parsed.get("status") == "failed" or (parsed.get("error") and not parsed.get("output")):
            raise _failure(parsed)
        return parse_response(parsed, ctx.model)

    def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        return stream_chunks(ctx, url(ctx), body=_body(ctx, request, True), headers=client.headers(ctx),
                             params=client.query(ctx), errors=client.error_message, assembler=_Assembler(ctx.model),
                             decode=_DECODE)


class _Assembler:
    """Responses SSE events → deltas; the closing chunk has the derived finish reason and usage."""

    __slots__ = ("_args_seen", "_calls", "_final", "_reasoning", "_summary", "done", "status")

    def __init__(self, model: str) -> None:
        self._final = LLMChunk(model=model)
        self._calls: dict[int, int] = {}  # output_index -> tool-call index
        self._reasoning: dict[int, int] = {}  # output_index -> reasoning part index
        self._summary: dict[int, int] = {}  # output_index -> last summary_index seen
        self._args_seen: set[int] = set()
        self.status = ""
        self.done = False

    @property
    def complete(self) -> bool:
        return self.done

    def _chunk(self, **kw: Any) -> LLMChunk:
        return LLMChunk(model=self._final.model, id=self._final.id, **kw)

    def feed(self, event: SSEEvent) -> LLMChunk | None:
        if not event.data or event.data == "[DONE]":
            return None
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise InvokeConnectionError("The provider's stream broke off mid-event") from None
        if not isinstance(obj, dict):
            return None
        kind = str(obj.get("type") or event.event or "")
        if kind in ("error", "response.failed"):
            raise _failure(obj)
        if kind in ("response.created", "response.in_progress", "response.completed", "response.incomplete"):
            self._response(kind, obj.get("response") or {})
            return None
        position = int(obj.get("output_index") or 0)
        if kind == "response.output_item.added":
            return self._item(position, obj.get("item") or {}, added=True)
        if kind == "response.output_item.done":
            return self._item(position, obj.get("item") or {}, added=False)
        delta = obj.get("delta")
        if not isinstance(delta, str) or not delta:
            return None
        if kind == "response.output_text.delta":
            return self._chunk(content=delta)
        if kind == "response.refusal.delta":
            return self._chunk(refusal=delta)
        if kind == "response.function_call_arguments.delta" and position in self._calls:
            self._args_seen.add(position)
            return self._chunk(tool_calls=[ToolCallDelta(index=self._calls[position], arguments=delta)])
        if kind == "response.reasoning_summary_text.delta":
            summary = int(obj.get("summary_index") or 0)
            if self._summary.get(position, summary) != summary:
                delta = "\n\n" + delta  # a new summary part: joined as the unary answer joins them
            self._summary[position] = summary
            index = self._reasoning.setdefault(position, len(self._reasoning))
            return self._chunk(reasoning_content=delta, reasoning=[ReasoningDelta(index=index, text=delta)])
        return None

    def _response(self, kind: str, response: dict[str, Any]) -> None:
        final = self._final
        final.id = str(response.get("id") or final.id)
        final.model = str(response.get("model") or final.model)
        if kind in ("response.completed", "response.incomplete"):
            self.status = str(response.get("status") or kind.rsplit(".", 1)[-1])
            counts = counts_from_usage(response.get("usage"))
            if counts is not None:
                final.counts = counts
            final.finish_reason, final.provider_finish_reason = finish(
                self.status, response.get("incomplete_details"), bool(self._calls))
            self.done = True

    def _item(self, position: int, item: dict[str, Any], added: bool) -> LLMChunk | None:
        kind = item.get("type")
        item_id = str(item.get("id") or "")
        if kind == "function_call":
            if added:
                index = self._calls.setdefault(position, len(self._calls))
                return self._chunk(tool_calls=[ToolCallDelta(
                    index=index, id=str(item.get("call_id") or item_id), name=str(item.get("name") or ""),
                    type="function", arguments=str(item.get("arguments") or ""),
                    state=ProviderState(ORIGIN, item_id) if item_id else None)])
            if position in self._calls and position not in self._args_seen and item.get("arguments"):
                return self._chunk(tool_calls=[ToolCallDelta(index=self._calls[position],
                                                             arguments=str(item["arguments"]))])
            return None
        if kind == "reasoning":
            first = position not in self._reasoning
            index = self._reasoning.setdefault(position, len(self._reasoning))
            encrypted = "" if added else str(item.get("encrypted_content") or "")
            if not (first or encrypted):
                return None
            return self._chunk(reasoning=[ReasoningDelta(index=index, id=item_id if first else "",
                                                         origin=ORIGIN if first else "", encrypted=encrypted)])
        if kind == "message" and added and item_id:
            return self._chunk(state=ProviderState(ORIGIN, item_id))
        return None

    def final(self) -> LLMChunk:
        return self._final
