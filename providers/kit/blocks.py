"""Content-block stream assembly, shared by Anthropic Messages and Bedrock Converse.

Both APIs stream an answer the same way, under different event names:

- the answer is a sequence of numbered content blocks (text, reasoning, tool use);
- a tool-use block starts with the call's id and name, and its ``input`` then arrives as
  fragments of JSON text addressed by block number. Callers rebuild calls by tool-call index,
  so block numbers become indexes 0, 1, … in the order tool blocks start
  (:class:`~providers.kit.toolcalls.BlockToolIndex`); a fragment for a block that never
  started is a new call;
- usage arrives in halves (Anthropic: input counts in ``message_start``, cumulative output
  counts in ``message_delta``; Bedrock: all of it in ``metadata``): the last value of each
  count wins, and the raw counts are turned into :class:`TokenCounts` with cache reads and
  writes added to the prompt (both APIs leave them out of their input count).

:class:`BlockAssembler` is that common part; each protocol's assembler maps its own events
onto it and says when the answer is complete. :func:`tool_input` and :func:`arguments` are
the request/response twins: our JSON-text arguments ↔ the ``input`` object both APIs use.

Both protocols hand the driver one event per batch (:func:`one_event_each`), so each event is
its own delta: a tool call's input fragments and the reasoning → text boundary reach the
caller as the provider sent them, never merged with their neighbours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from engine.errors import bad_request
from engine.messages import FinishReason, LLMChunk, ReasoningDelta, TokenCounts, ToolCallDelta

from .toolcalls import BlockToolIndex


def arguments(value: Any) -> str:
    """A tool call's ``input`` object as our JSON-text arguments (``{}`` when absent)."""
    return orjson.dumps(value if value is not None else {}).decode()


def tool_input(text: str, path: str) -> dict[str, Any]:
    """Our JSON-text arguments as the ``input`` object; anything but an object is refused."""
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise bad_request(path, "tool call arguments must be a JSON object") from None
    if not isinstance(value, dict):
        raise bad_request(path, "tool call arguments must be a JSON object")
    return value


def usage_counts(usage: Any, *, input: str, cache_read: str, cache_write: str, output: str,
                 write_1h: tuple[str, str] | None = None) -> TokenCounts | None:
    """Raw usage → counts; the prompt count includes cache reads and writes. None when empty.

    ``write_1h`` names the object and key holding the 1-hour share of the writes (Anthropic:
    ``cache_creation.ephemeral_1h_input_tokens``); the rest of the writes are 5-minute ones.
    """
    if not isinstance(usage, dict):
        return None
    base = int(usage.get(input) or 0)
    read = int(usage.get(cache_read) or 0)
    written = int(usage.get(cache_write) or 0)
    out = int(usage.get(output) or 0)
    if not (base or read or written or out):
        return None
    hour = 0
    if write_1h is not None:
        detail = usage.get(write_1h[0])
        hour = min(int(detail.get(write_1h[1]) or 0), written) if isinstance(detail, dict) else 0
    return TokenCounts(prompt_tokens=base + read + written, completion_tokens=out, cached_prompt_tokens=read,
                       cache_write_tokens=written - hour, cache_write_1h_tokens=hour)


class BlockAssembler:
    """The state both block protocols keep while streaming: ids, tool-call indexes, usage.

    A subclass sets ``done`` when nothing more should be read, overrides :attr:`complete`
    when the answer is whole before that, and builds :meth:`final`.
    """

    __slots__ = ("_reasoning", "_tools", "done", "id", "model", "origin", "stop_reason", "usage")

    def __init__(self, model: str, origin: str = "") -> None:
        self.model = model
        self.origin = origin  # the protocol name reasoning parts are tagged with
        self.id = ""
        self.stop_reason = ""
        self.done = False
        self._tools = BlockToolIndex()
        self._reasoning: dict[int, int] = {}  # block number -> reasoning part index
        self.usage: dict[str, Any] = {}  # the raw counts so far

    @property
    def complete(self) -> bool:
        return self.done

    def final(self) -> LLMChunk:
        raise NotImplementedError

    def chunk(self, **kw: Any) -> LLMChunk:
        return LLMChunk(model=self.model, id=self.id, **kw)

    def text(self, text: Any) -> LLMChunk | None:
        return self.chunk(content=text) if isinstance(text, str) and text else None

    def reasoning(self, block: int, text: Any = "", *, signature: Any = "", encrypted: Any = "") -> LLMChunk | None:
        """A piece of reasoning block ``block``: text, its signature or encrypted (redacted) data.
        The part is tagged with :attr:`origin` on its first piece, so the caller can send it back."""
        text = text if isinstance(text, str) else ""
        signature = signature if isinstance(signature, str) else ""
        encrypted = encrypted if isinstance(encrypted, str) else ""
        if not (text or signature or encrypted):
            return None
        index = self._reasoning.get(block)
        first = index is None
        if index is None:
            index = self._reasoning[block] = len(self._reasoning)
        piece = ReasoningDelta(index=index, text=text, signature=signature, encrypted=encrypted,
                               origin=self.origin if first else "")
        return self.chunk(reasoning_content=text, reasoning=[piece])

    def _call(self, block: int) -> int:
        call = self._tools.get(block)
        return self._tools.start(block) if call is None else call

    def tool_start(self, block: int, call_id: str, name: str, initial: str = "") -> LLMChunk:
        """A tool-use block started: the fragment with the call's id and name."""
        return self.chunk(tool_calls=[ToolCallDelta(
            index=self._call(block), id=call_id, name=name, type="function", arguments=initial)])

    def tool_fragment(self, block: int, fragment: Any) -> LLMChunk | None:
        """A piece of a tool call's input JSON (nothing for an empty piece)."""
        if not isinstance(fragment, str) or not fragment:
            return None
        return self.chunk(tool_calls=[ToolCallDelta(index=self._call(block), arguments=fragment)])

    def add_usage(self, usage: Any) -> None:
        """Merge one half of the usage: each count's (or count object's) latest value wins."""
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if isinstance(v, int | dict)})

    def closing(self, finish_reason: FinishReason, counts: TokenCounts | None) -> LLMChunk:
        return self.chunk(finish_reason=finish_reason, provider_finish_reason=self.stop_reason, counts=counts)


class Driven:
    """The stream driver's assembler over a :class:`BlockAssembler`: ``feed`` turns one decoded
    event (an SSE event, an eventstream message) into the block assembler's input, raising the
    event's error; completeness and the closing chunk are the block assembler's."""

    __slots__ = ("_feed", "blocks")

    def __init__(self, blocks: BlockAssembler, feed: Callable[[Any], LLMChunk | None]) -> None:
        self.blocks = blocks
        self._feed = feed

    @property
    def complete(self) -> bool:
        return self.blocks.complete

    @property
    def done(self) -> bool:
        return self.blocks.done

    def feed(self, event: Any) -> LLMChunk | None:
        return self._feed(event)

    def final(self) -> LLMChunk:
        return self.blocks.final()
