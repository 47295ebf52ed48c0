"""Bedrock Converse and ConverseStream.

Stream rules (the contract every adapter keeps):
- nothing is yielded until Bedrock answered 2xx (an error status raises the mapped error);
- the 200 body is ``application/vnd.amazon.eventstream``: binary messages decoded by
  :class:`~.eventstream.EventStreamDecoder` whatever the TCP segmentation; a checksum or
  framing fault raises InvokeConnectionError;
- ``:message-type: event`` messages carry one ConverseStream event (``:event-type``) with a JSON
  payload (its ``"p"`` padding field is ignored); ``:message-type: exception`` messages
  (``:exception-type`` throttlingException, modelStreamErrorException, validationException,
  serviceUnavailableException, internalServerException, ...) raise the mapped error, even after
  content has been yielded; ``:message-type: error`` (``:error-code``) likewise;
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

import orjson

from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool
from engine.tokenizers import get_encoding

from . import client
from .eventstream import EventMessage, EventStreamDecoder
from .transform import ModelTraits, StreamAssembler, build_converse_body, parse_converse

EVENTSTREAM = "application/vnd.amazon.eventstream"
_MESSAGE_OVERHEAD = 4  # role and separators, per message


def _payload(message: EventMessage) -> dict[str, Any]:
    if not message.payload:
        return {}
    try:
        value = orjson.loads(message.payload)
    except orjson.JSONDecodeError:
        raise InvokeConnectionError("The provider's stream carried an event that is not JSON") from None
    return value if isinstance(value, dict) else {}


def stream_error(message: EventMessage) -> InvokeError:
    """An ``exception`` or ``error`` message inside a 200 stream, as the mapped runtime error."""
    payload: dict[str, Any] = {}
    if message.message_type == "exception":
        kind = message.exception_type or message.event_type
        try:
            parsed = orjson.loads(message.payload) if message.payload else {}
        except orjson.JSONDecodeError:  # a plain-text exception body is still the exception
            parsed = {"message": message.payload.decode("utf-8", "replace")}
        payload = parsed if isinstance(parsed, dict) else {}
        text = str(payload.get("message") or payload.get("Message") or "")
    else:
        kind = str(message.headers.get(":error-code") or "")
        text = str(message.headers.get(":error-message") or "")
    return client.error_from(kind, text, None, payload)


class BedrockChat:
    """LLMModel for Bedrock's Converse API."""

    def _request(self, ctx: CallContext, request: LLMRequest, operation: str, accept: str):
        traits = ModelTraits.from_schema(ctx.model, ctx.schema)
        body = orjson.dumps(build_converse_body(request, traits))
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
        result.id = str(response.headers.get("x-amzn-requestid") or "")
        return result

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        url, headers, body = self._request(ctx, request, "converse-stream", EVENTSTREAM)
        assembler = StreamAssembler(ctx.model)
        decoder = EventStreamDecoder()
        async with ctx.http.stream("POST", url, headers=headers, content=body, deadline=ctx.deadline) as response:
            await client.raise_for_status(response)
            assembler.id = str(response.headers.get("x-amzn-requestid") or "")
            async for data in response.aiter_bytes():
                for message in decoder.feed(data):
                    if message.message_type != "event":
                        if message.message_type in ("exception", "error"):
                            raise stream_error(message)
                        continue
                    chunk = assembler.feed(message.event_type, _payload(message))
                    if chunk is not None:
                        yield chunk
                    if assembler.done:
                        break
                if assembler.done:
                    break
            if not assembler.stopped:
                raise InvokeConnectionError("The provider's stream ended before the response was complete")
        yield assembler.final()

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        encoding = get_encoding("cl100k_base")
        total = 0
        for message in messages:
            text = message.text()
            for call in message.tool_calls:
                text += call.name + call.arguments
            total += _MESSAGE_OVERHEAD + len(encoding.encode(text, disallowed_special=()))
        for tool in tools:
            spec = orjson.dumps({"name": tool.name, "description": tool.description, "schema": tool.parameters})
            total += len(encoding.encode(spec.decode(), disallowed_special=()))
        return total
