"""Merging of ``StreamGenerate`` chunks into one ``GenerateResponse``.

Tool calls arrive as ``ToolCallDelta`` fragments: ``id`` and ``name`` come with
the first fragment of each call, ``arguments`` fragments are concatenated per
``index``; fragments of several calls may be interleaved. Reasoning parts arrive
as ``ReasoningDelta`` fragments the same way (text concatenated per index; the
signature, encrypted data, id and origin kept as sent), and provider state (of
the turn or of a call) whole: all of it is kept, so the accumulated response can
be sent back as history (:func:`~modelruntime.assistant_reply`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass

from .v1 import common_pb2, llm_service_pb2

__all__ = ["ReasoningAccumulator", "StreamAccumulator", "ToolCallAccumulator", "aaccumulate", "accumulate"]


@dataclass
class _PartialCall:
    id: str = ""
    type: str = ""
    name: str = ""
    arguments: str = ""
    state: llm_service_pb2.ProviderState | None = None


class ToolCallAccumulator:
    """Merges streamed ``ToolCallDelta`` fragments, by index, into complete ``ToolCall``s."""

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}

    def add(self, delta: llm_service_pb2.ToolCallDelta | Iterable[llm_service_pb2.ToolCallDelta]) -> None:
        """Add one fragment, or every fragment of an iterable (e.g. ``chunk.delta.tool_calls``)."""
        if not isinstance(delta, llm_service_pb2.ToolCallDelta):
            for d in delta:
                self.add(d)
            return
        call = self._calls.get(delta.index)
        if call is None:
            call = self._calls[delta.index] = _PartialCall()
        if delta.id:
            call.id = delta.id
        if delta.type:
            call.type = delta.type
        if delta.name:
            call.name = delta.name
        if delta.HasField("provider_state"):
            call.state = delta.provider_state
        call.arguments += delta.arguments

    def __len__(self) -> int:
        return len(self._calls)

    def __bool__(self) -> bool:
        return bool(self._calls)

    @property
    def tool_calls(self) -> list[llm_service_pb2.ToolCall]:
        """The calls so far, ordered by index (``type`` defaults to "function")."""
        return [
            llm_service_pb2.ToolCall(id=c.id, type=c.type or "function", name=c.name, arguments=c.arguments,
                                     provider_state=c.state)
            for _, c in sorted(self._calls.items())
        ]


class ReasoningAccumulator:
    """Merges streamed ``ReasoningDelta`` fragments, by index, into ``ReasoningPart``s."""

    def __init__(self) -> None:
        self._parts: dict[int, llm_service_pb2.ReasoningPart] = {}

    def add(self, deltas: Iterable[llm_service_pb2.ReasoningDelta]) -> None:
        for d in deltas:
            part = self._parts.setdefault(d.index, llm_service_pb2.ReasoningPart())
            part.text += d.text
            for name in ("signature", "encrypted", "id", "origin"):
                value = getattr(d, name)
                if value:
                    setattr(part, name, value)

    @property
    def parts(self) -> list[llm_service_pb2.ReasoningPart]:
        return [p for _, p in sorted(self._parts.items())]


class StreamAccumulator:
    """Folds ``StreamGenerateResponse`` chunks into a ``GenerateResponse``.

    Content, reasoning and refusal text are concatenated; tool calls are merged by
    :class:`ToolCallAccumulator`; id, model and system fingerprint keep the last
    non-empty value; finish reason and usage come from the chunk that set them
    (the final one).
    """

    def __init__(self) -> None:
        self.tool_calls = ToolCallAccumulator()
        self.reasoning = ReasoningAccumulator()
        self._state: llm_service_pb2.ProviderState | None = None
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._id = ""
        self._model = ""
        self._fingerprint = ""
        self._finish_reason = 0
        self._provider_finish_reason = ""
        self._usage: common_pb2.LLMUsage | None = None
        self.chunks = 0

    def add(self, chunk: llm_service_pb2.StreamGenerateResponse) -> None:
        self.chunks += 1
        if chunk.id:
            self._id = chunk.id
        if chunk.model:
            self._model = chunk.model
        if chunk.system_fingerprint:
            self._fingerprint = chunk.system_fingerprint
        if chunk.HasField("delta"):
            d = chunk.delta
            if d.content:
                self._content.append(d.content)
            if d.reasoning_content:
                self._reasoning.append(d.reasoning_content)
            if d.refusal:
                self._refusal.append(d.refusal)
            if d.tool_calls:
                self.tool_calls.add(d.tool_calls)
            if d.reasoning:
                self.reasoning.add(d.reasoning)
            if d.HasField("provider_state"):
                self._state = d.provider_state
        if chunk.finish_reason:
            self._finish_reason = chunk.finish_reason
        if chunk.provider_finish_reason:
            self._provider_finish_reason = chunk.provider_finish_reason
        if chunk.HasField("usage"):
            self._usage = chunk.usage

    @property
    def content(self) -> str:
        return "".join(self._content)

    def result(self) -> llm_service_pb2.GenerateResponse:
        resp = llm_service_pb2.GenerateResponse(
            id=self._id,
            model=self._model,
            finish_reason=self._finish_reason,  # type: ignore[arg-type]
            provider_finish_reason=self._provider_finish_reason,
            system_fingerprint=self._fingerprint,
        )
        msg = resp.message
        msg.content = self.content
        msg.reasoning_content = "".join(self._reasoning)
        msg.refusal = "".join(self._refusal)
        msg.tool_calls.extend(self.tool_calls.tool_calls)
        msg.reasoning.extend(self.reasoning.parts)
        if self._state is not None:
            msg.provider_state.CopyFrom(self._state)
        if self._usage is not None:
            resp.usage.CopyFrom(self._usage)
        return resp


def accumulate(chunks: Iterable[llm_service_pb2.StreamGenerateResponse]) -> llm_service_pb2.GenerateResponse:
    """Consume ``chunks`` and return the equivalent ``GenerateResponse``."""
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.result()


async def aaccumulate(
    chunks: AsyncIterable[llm_service_pb2.StreamGenerateResponse],
) -> llm_service_pb2.GenerateResponse:
    """Async :func:`accumulate`."""
    acc = StreamAccumulator()
    async for chunk in chunks:
        acc.add(chunk)
    return acc.result()
