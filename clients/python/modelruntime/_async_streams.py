"""Stream wrappers of the async client: error conversion and accumulation while iterating.

Written by hand, like ``_sync_streams.py``: see ``_stream_common.py`` for why and for the shared part.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

from ._accumulate import StreamAccumulator
from ._stream_common import StreamState, audio_format_name
from .v1 import (
    llm_service_pb2,
)

__all__ = ["AsyncLLMStream", "AsyncStream", "AsyncTTSStream"]

T = TypeVar("T")


class AsyncStream(StreamState[T]):
    """An async iterator over a server stream whose gRPC errors surface as ``ModelRuntimeError``.

    The call starts on the first ``__anext__``. Use ``async with`` (or call
    :meth:`close`) to cancel it when not iterating to the end; after
    :meth:`close`, iteration simply stops.
    """

    def __init__(self, start: Callable[[], Any]) -> None:
        super().__init__()
        self._start = start
        self._call: Any = None

    def _ensure_call(self) -> Any:
        if self._call is None:
            self._call = self._start()
        return self._call

    def __aiter__(self) -> AsyncStream[T]:
        return self

    async def _read(self) -> T:
        if self._done:
            raise StopAsyncIteration
        call = self._ensure_call()
        try:
            item = await call.read()
        except grpc.RpcError as err:
            self._read_failed(err, StopAsyncIteration)
        except asyncio.CancelledError:
            if self._closed:
                self._done = True
                raise StopAsyncIteration from None
            raise
        if item is grpc.aio.EOF:
            self._done = True
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    async def __anext__(self) -> T:
        item = await self._read()
        self._on_item(item)
        return item

    def cancel(self) -> None:
        """Cancel the call if it is still running."""
        if not self._done:
            self._closed = True
            self._done = True
            if self._call is not None:
                self._call.cancel()

    async def close(self) -> None:
        self.cancel()

    aclose = close

    async def __aenter__(self: _S) -> _S:  # noqa: PYI019 - typing.Self needs 3.11
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    async def initial_metadata(self) -> Any:
        return await self._ensure_call().initial_metadata()

    async def trailing_metadata(self) -> Any:
        return await self._ensure_call().trailing_metadata()


_S = TypeVar("_S", bound=AsyncStream[Any])


class AsyncLLMStream(AsyncStream[llm_service_pb2.StreamGenerateResponse]):
    """The chunks of ``llm.stream``; also folds them into a ``GenerateResponse`` as they pass."""

    def __init__(self, start: Callable[[], Any]) -> None:
        super().__init__(start)
        self.accumulator = StreamAccumulator()

    def _on_item(self, item: llm_service_pb2.StreamGenerateResponse) -> None:
        self.accumulator.add(item)

    async def text_deltas(self) -> AsyncIterator[str]:
        """Iterate the remaining chunks, yielding only non-empty content deltas."""
        async for chunk in self:
            if chunk.delta.content:
                yield chunk.delta.content

    async def final_response(self) -> llm_service_pb2.GenerateResponse:
        """Consume the rest of the stream; return every chunk (seen or not) merged."""
        async for _ in self:
            pass
        return self.accumulator.result()


class AsyncTTSStream(AsyncStream[bytes]):
    """Audio chunks of ``tts.stream`` as ``bytes``.

    ``encoding`` (an ``AudioEncoding`` value), ``mime_type`` and ``sample_rate_hz``
    are set from the first chunk; ``await stream.peek()`` fetches it (it is still
    yielded by the iteration) when they are needed before iterating.
    """

    def __init__(self, start: Callable[[], Any]) -> None:
        super().__init__(start)
        self._pending: list[bytes] = []
        self._first: Any = None
        self.encoding: int = 0
        self.mime_type: str = ""
        self.sample_rate_hz: int = 0

    def _note(self, resp: Any) -> None:
        if self._first is None:
            self._first = resp
        if resp.encoding:
            self.encoding = resp.encoding
        if resp.mime_type:
            self.mime_type = resp.mime_type
        if resp.sample_rate_hz:
            self.sample_rate_hz = resp.sample_rate_hz

    async def __anext__(self) -> bytes:
        if self._pending:
            return self._pending.pop(0)
        while True:
            resp: Any = await self._read()
            self._note(resp)
            if resp.audio:
                return resp.audio  # type: ignore[no-any-return]

    async def peek(self) -> AsyncTTSStream:
        """Fetch the first chunk (buffered) so the format attributes are known."""
        if self._first is None and not self._done:
            try:
                resp: Any = await self._read()
            except StopAsyncIteration:
                return self
            self._note(resp)
            if resp.audio:
                self._pending.append(resp.audio)
        return self

    @property
    def format(self) -> str:
        """Short encoding name ("mp3", "wav", "pcm", ...); "" before the first chunk."""
        return audio_format_name(self.encoding)

    async def read(self) -> bytes:
        """All remaining audio, joined."""
        return b"".join([chunk async for chunk in self])
