"""Bedrock Converse and ConverseStream.

Stream rules (the contract every adapter keeps):
- nothing is yielded until Bedrock answered 2xx (an error status raises the mapped error);
- the stream runs on the kit's driver (:func:`providers.kit.stream.stream_chunks`), one chunk
  per event (:func:`providers.kit.stream.one_event_each`);
- the 200 body is ``application/vnd.amazon.eventstream``: binary messages decoded by
  :mod:`providers.kit.eventstream` whatever the TCP segmentation; a checksum or framing fault
  raises InvokeConnectionError;
- ``:message-type: event`` messages carry one ConverseStream event (``:event-type``) with a JSON
  payload (its ``"p"`` padding field is ignored); ``:message-type: exception`` messages
  (``:exception-type`` throttlingException, modelStreamErrorException, validationException,
  serviceUnavailableException, internalServerException, ...) raise the mapped error
  (:func:`body_error`), even after content has been yielded; ``:message-type: error``
  (``:error-code``) likewise;
- ``metadata`` (usage) comes after ``messageStop``: the final chunk, with the finish reason and
  the raw token counts, is yielded once it arrived (or when the body ends right after
  ``messageStop``: then the runtime counts the tokens);
- a body that ends before ``messageStop`` is truncated: InvokeConnectionError.

Token counting (``count_tokens``) is local: Bedrock's CountTokens operation covers only some
Claude models, so the text of the messages and tool definitions is counted with tiktoken's
``cl100k_base``, an approximation for every Bedrock family.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine._http.response import UpstreamResponse
from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeConnectionError, InvokeError, RuntimeFault
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool
from engine.tokenizers import get_encoding
from providers.kit import http
from providers.kit.blocks import Driven
from providers.kit.eventstream import EventMessage, aiter_eventstream
from providers.kit.stream import one_event_each, stream_chunks

from . import client
from .transform import ModelTraits, StreamAssembler, build_converse_body, parse_converse

EVENTSTREAM = "application/vnd.amazon.eventstream"
REQUEST_ID = "x-amzn-requestid"
_MESSAGE_OVERHEAD = 4  # role and separators, per message
_DECODE = one_event_each(aiter_eventstream)


def _payload(message: EventMessage) -> dict[str, Any]:
    if not message.payload:
        return {}
    value = http.loads(message.payload)
    if value is None:
        raise InvokeConnectionError("The provider's stream carried an event that is not JSON")
    return value if isinstance(value, dict) else {}


def body_error(message: EventMessage) -> RuntimeFault | None:
    """The mapped runtime error of an ``exception`` or ``error`` message inside a 200 stream;
    None for any other message."""
    payload: dict[str, Any] = {}
    if message.message_type == "exception":
        kind = message.exception_type or message.event_type
        parsed = http.loads(message.payload) if message.payload else {}
        if parsed is None:  # a plain-text exception body is still the exception
            parsed = {"message": message.payload.decode("utf-8", "replace")}
        payload = parsed if isinstance(parsed, dict) else {}
        text = str(payload.get("message") or payload.get("Message") or "")
    elif message.message_type == "error":
        kind = str(message.headers.get(":error-code") or "")
        text = str(message.headers.get(":error-message") or "")
    else:
        return None
    return client.error_from(kind, text, None, payload)


def _frames(model: str) -> Driven:
    """The driver's assembler: eventstream messages → :class:`~.transform.StreamAssembler`.
    Complete at ``messageStop``; done (nothing more to read) once the usage after it arrived."""
    blocks = StreamAssembler(model)

    def feed(message: EventMessage) -> LLMChunk | None:
        error = body_error(message)
        if error is not None:
            raise error
        if message.message_type != "event":
            return None
        return blocks.feed(message.event_type, _payload(message))

    return Driven(blocks, feed)


class BedrockChat:
    """LLMModel for Bedrock's Converse API."""

    def _request(self, ctx: CallContext, request: LLMRequest, operation: str,
                 accept: str) -> tuple[str, dict[str, str], bytes]:
        traits = ModelTraits.from_schema(ctx.model, ctx.schema)
        body = http.dumps(build_converse_body(request, traits))
        url = client.model_url(ctx, ctx.model, operation)
        headers = client.auth_headers(ctx, "POST", url, client.json_headers(accept), body)
        return url, headers, body

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        url, headers, body = self._request(ctx, request, "converse", "application/json")
        response = await ctx.http.request("POST", url, headers=headers, content=body, deadline=ctx.deadline)
        await client.raise_for_status(response)
        parsed = client.read_json(response)
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        result = parse_converse(parsed, ctx.model)
        result.id = str(response.headers.get(REQUEST_ID) or "")
        return result

    def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        url, headers, body = self._request(ctx, request, "converse-stream", EVENTSTREAM)
        frames = _frames(ctx.model)

        async def check(response: UpstreamResponse) -> None:
            await client.raise_for_status(response)
            frames.blocks.id = str(response.headers.get(REQUEST_ID) or "")

        return stream_chunks(ctx, url, body=body, headers=headers, errors=client.error_message,
                             assembler=frames, decode=_DECODE, check=check)

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        encoding = get_encoding("cl100k_base")
        total = 0
        for message in messages:
            text = message.text()
            for call in message.tool_calls:
                text += call.name + call.arguments
            total += _MESSAGE_OVERHEAD + len(encoding.encode(text, disallowed_special=()))
        for tool in tools:
            spec = http.dumps({"name": tool.name, "description": tool.description, "schema": tool.parameters})
            total += len(encoding.encode(spec.decode(), disallowed_special=()))
        return total
