"""Stream wrappers of the sync client: error conversion and accumulation while iterating.

Written by hand, unlike ``_sync.py``: see ``_stream_common.py`` for why and for the shared part.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import grpc

from ._accumulate import StreamAccumulator
from ._stream_common import StreamState, audio_format_name
from .v1 import (
    llm_service_pb2,
    tts_service_pb2,
)

__all__ = ["LLMStream", "Stream", "TTSStream"]

T = TypeVar("T")


class Stream(StreamState[T]):
    """An iterator over a server stream whose gRPC errors surface as ``ModelRuntimeError``.

    Use as a context manager (or call :meth:`close`) to cancel the call when not
    iterating to the end. After :meth:`close`, iteration simply stops.
    """

    def __init__(self, call: Any) -> None:
        super().__init__()
        self._call = call

    def __iter__(self) -> Stream[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            item: T = next(self._call)
        except StopIteration:
            self._done = True
            raise
        except grpc.RpcError as err:
            self._read_failed(err, StopIteration)
        self._on_item(item)
        return item

    def close(self) -> None:
        """Cancel the call if it is still running."""
        if not self._done:
            self._closed = True
            self._call.cancel()
            self._done = True

    cancel = close

    def __enter__(self: _S) -> _S:  # noqa: PYI019 - typing.Self needs 3.11
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # e.g. at interpreter shutdown
            self.close()

    def initial_metadata(self) -> Any:
        return self._call.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._call.trailing_metadata()


_S = TypeVar("_S", bound=Stream[Any])


class LLMStream(Stream[llm_service_pb2.StreamGenerateResponse]):
    """The chunks of ``llm.stream``; also folds them into a ``GenerateResponse`` as they pass."""

    def __init__(self, call: Any) -> None:
        super().__init__(call)
        self.accumulator = StreamAccumulator()

    def _on_item(self, item: llm_service_pb2.StreamGenerateResponse) -> None:
        self.accumulator.add(item)

    def text_deltas(self) -> Iterator[str]:
        """Iterate the remaining chunks, yielding only non-empty content deltas."""
        for chunk in self:
            if chunk.delta.content:
                yield chunk.delta.content

    def final_response(self) -> llm_service_pb2.GenerateResponse:
        """Consume the rest of the stream; return every chunk (seen or not) merged."""
        for _ in self:
            pass
        return self.accumulator.result()


class TTSStream(Stream[bytes]):
    """Audio chunks of ``tts.stream`` as ``bytes``.

    ``encoding`` (an ``AudioEncoding`` value), ``format``, ``mime_type`` and
    ``sample_rate_hz`` come from the first chunk; reading them before iterating
    fetches that chunk (it is still yielded by the iteration).
    """

    def __init__(self, call: Any) -> None:
        super().__init__(call)
        self._pending: list[bytes] = []
        self._first: tts_service_pb2.StreamSynthesizeResponse | None = None
        self._encoding: int = 0
        self._mime_type: str = ""
        self._sample_rate_hz: int = 0

    def _next_response(self) -> tts_service_pb2.StreamSynthesizeResponse:
        resp = super().__next__()
        return resp  # type: ignore[return-value]

    def __next__(self) -> bytes:
        if self._pending:
            return self._pending.pop(0)
        while True:
            resp = self._next_response()
            self._note(resp)
            if resp.audio:
                return resp.audio

    def _note(self, resp: Any) -> None:
        if self._first is None:
            self._first = resp
        if resp.encoding:
            self._encoding = resp.encoding
        if resp.mime_type:
            self._mime_type = resp.mime_type
        if resp.sample_rate_hz:
            self._sample_rate_hz = resp.sample_rate_hz

    @property
    def encoding(self) -> int:
        """The ``AudioEncoding`` of the audio (0 if the stream ended without a chunk)."""
        self.peek()
        return self._encoding

    @property
    def mime_type(self) -> str:
        """IANA type of the audio, e.g. "audio/mpeg"."""
        self.peek()
        return self._mime_type

    @property
    def sample_rate_hz(self) -> int:
        """Samples per second, for PCM (0 otherwise)."""
        self.peek()
        return self._sample_rate_hz

    def _on_item(self, item: Any) -> None:
        pass

    def peek(self) -> TTSStream:
        """Fetch the first chunk (buffered) so the format attributes are known."""
        if self._first is None and not self._done:
            try:
                resp = self._next_response()
            except StopIteration:
                return self
            self._note(resp)
            if resp.audio:
                self._pending.append(resp.audio)
        return self

    @property
    def format(self) -> str:
        """Short encoding name ("mp3", "wav", "pcm", ...); fetches the first chunk if needed."""
        return audio_format_name(self.encoding)

    def read(self) -> bytes:
        """All remaining audio, joined."""
        return b"".join(self)
