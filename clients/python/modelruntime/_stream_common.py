"""The part of the stream wrappers that the sync and async clients share.

``_sync.py`` is generated from ``_async.py`` (``scripts/gen_sync_client.py``), but the stream wrappers
are not: their behaviour differs, not only their syntax (the async call starts on the first read and
ends on an EOF sentinel; the sync TTS stream's format properties fetch the first chunk). So
``_sync_streams.py`` and ``_async_streams.py`` are written by hand on top of this common part.
"""

from __future__ import annotations

from typing import Generic, NoReturn, TypeVar

import grpc

from .errors import from_rpc_error
from .v1 import tts_service_pb2

T = TypeVar("T")


class StreamState(Generic[T]):
    """A stream's two flags, its per-item hook and what a gRPC error raised while reading becomes."""

    def __init__(self) -> None:
        self._closed = False  # closed by the caller: a later error only ends the iteration
        self._done = False  # ended, failed or closed: iteration stops

    def _on_item(self, item: T) -> None:
        """Called with every item read (the LLM stream accumulates them)."""

    def _read_failed(self, err: grpc.RpcError, stop: type[Exception]) -> NoReturn:
        """Raise ``stop`` once the caller closed the stream, else ``err`` as a ``ModelRuntimeError``."""
        self._done = True
        if self._closed:
            raise stop from None
        raise from_rpc_error(err) from err


def audio_format_name(encoding: int) -> str:
    """Short name ("mp3", "wav", "pcm", ...) of an ``AudioEncoding`` value; "" for 0."""
    if not encoding:
        return ""
    return tts_service_pb2.AudioEncoding.Name(encoding).removeprefix("AUDIO_ENCODING_").lower()  # type: ignore[arg-type]
