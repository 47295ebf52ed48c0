"""Offline tiktoken encodings.

tiktoken fetches its BPE files from the network on first use. This runtime must count
tokens with no network, so the two files it needs (cl100k_base, o200k_base) ship
gz-compressed in ``_data/``. Before the first encoding is built we place them in a private
tiktoken cache directory under the names tiktoken looks for; tiktoken then loads them
itself and checks its own pinned SHA-256, so the encodings are exactly tiktoken's.

Counting is CPU work: tiktoken takes ~0.1-1 s per MB of text, and on the event loop that
stalls every other call (a 30 MB reply without usage held health checks for 2.6 s). Texts
above :data:`OFFLOAD_CHARS` are counted on a small worker pool instead (tiktoken releases
the GIL while it encodes): :func:`count_text_async` for the runtime's own counts, and
:func:`count_off_loop` for an adapter's ``count_tokens`` (which may need the network; see
there).
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gzip
import hashlib
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import tiktoken

_DATA = Path(__file__).parent / "_data"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_SHIPPED = ("cl100k_base", "o200k_base")
_lock = threading.Lock()
_seeded = False
# Texts at least this long (characters) are counted off the event loop (~1-10 ms inline).
OFFLOAD_CHARS = 64 * 1024
_PIECE = 256 * 1024  # characters encoded per tiktoken call for long texts
# Bounded: a burst of huge counts queues here instead of taking every core.
_pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="tokens")
T = TypeVar("T")


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir(), f"model-runtime-{os.getuid()}")
    return Path(base) / "tiktoken"


def _seed_cache() -> None:
    """Write the shipped files where tiktoken's cache expects them (once per process)."""
    global _seeded
    with _lock:
        if _seeded:
            return
        directory = _cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        for name in _SHIPPED:
            key = hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
            target = directory / key
            if not target.exists():
                tmp = target.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(gzip.decompress((_DATA / f"{name}.tiktoken.gz").read_bytes()))
                tmp.replace(target)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
        _seeded = True


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    if name not in _SHIPPED:
        raise KeyError(f"encoding {name} is not shipped with the runtime")
    _seed_cache()
    encoding = tiktoken.get_encoding(name)
    # tiktoken keeps the Python copy of the rank table only to pickle the encoding; the Rust
    # core has its own. Dropping it saves 28 MB for o200k_base (78 MB loaded → 45 MB after
    # the trim below), which is most of what the first count adds to a server's RSS.
    encoding._mergeable_ranks = {}
    _trim_heap()
    return encoding


def _trim_heap() -> None:
    """Give the C heap's freed pages back to the OS (glibc only; elsewhere nothing to do)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """o200k_base for the GPT-4o/4.1/4.5/5, o-series and omni families; cl100k_base otherwise."""
    m = model.lower()
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss", "omni-")):
        return get_encoding("o200k_base")
    return get_encoding("cl100k_base")


def count_text(text: str, model: str = "") -> int:
    if not text:
        return 0
    encoding = encoding_for_model(model)
    if len(text) <= _PIECE:
        return len(encoding.encode(text, disallowed_special=()))
    # In pieces cut before a space: each encode builds a small token list, so the GIL (held
    # while the list is built) is never taken for long and other threads keep running.
    total, start = 0, 0
    while start < len(text):
        end = start + _PIECE
        if end < len(text):
            cut = text.rfind(" ", start + _PIECE // 2, end)
            end = cut if cut > start else end
        total += len(encoding.encode(text[start:end], disallowed_special=()))
        start = end
    return total


async def count_text_async(text: str, model: str = "") -> int:
    """:func:`count_text`, off the event loop when ``text`` is large."""
    if len(text) < OFFLOAD_CHARS:
        return count_text(text, model)
    return await asyncio.get_running_loop().run_in_executor(_pool, count_text, text, model)


class _NeedsLoop(BaseException):
    """Raised in a worker when a count uses the network (a BaseException: adapters' broad
    ``except Exception`` must not turn it into a failure)."""


class _NoHttp:
    """Stands in for ``ctx.http`` in a worker thread: the egress belongs to the main loop."""

    def __getattr__(self, name: str) -> Any:
        raise _NeedsLoop


def text_size(items: Any) -> int:
    """Characters of text in a list of strings, prompt messages or tools (for the offload choice)."""
    size = 0
    for item in items or ():
        if isinstance(item, str):
            size += len(item)
        elif hasattr(item, "content"):
            size += sum(len(p.text) for p in item.content) + sum(len(c.arguments) for c in item.tool_calls)
        else:
            size += len(getattr(item, "description", ""))
    return size


async def count_off_loop(count: Callable[..., Awaitable[T]], ctx: Any, *args: Any) -> T:
    """Run an adapter's ``count_tokens(ctx, *args)``, in a worker thread when its text is large.

    Local counts (tiktoken) then never stall the loop. A count that needs the network (Gemini,
    Anthropic, Vertex ask the provider) touches ``ctx.http`` in the worker, which stops it
    before any request is sent; it then runs on the loop as before, where it mostly waits.
    """
    if sum(text_size(a) for a in args if isinstance(a, list)) < OFFLOAD_CHARS:
        return await count(ctx, *args)
    offline = dataclasses.replace(ctx, http=_NoHttp())

    def work() -> T:
        return asyncio.run(count(offline, *args))  # type: ignore[arg-type]

    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, work)
    except _NeedsLoop:
        pass
    except Exception as exc:  # a worker-only failure (e.g. a loop-bound lock): retry on the loop
        from .errors import RuntimeFault

        if isinstance(exc, RuntimeFault):
            raise
    return await count(ctx, *args)
