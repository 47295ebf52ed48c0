"""Generate the sync client (``_sync.py``) from the async one (``_async.py``), so only one is written by hand.

    python scripts/gen_sync_client.py          # rewrite clients/python/modelruntime/_sync.py
    python scripts/gen_sync_client.py --check  # exit 1 when _sync.py is out of date

``ModelRuntimeClient`` and ``AsyncModelRuntimeClient`` expose the same resources with the same
arguments, defaults and docstrings; only the calling convention differs. Keeping two hand-made
copies in step was the source of drift, so ``_async.py`` is the one source and this script rewrites it:

- token rules, applied everywhere: ``async def``/``async for``/``async with`` lose ``async``,
  ``await`` is dropped, ``AsyncX``/``_AsyncX`` become ``X``/``_X``, ``grpc.aio.X`` becomes ``grpc.X``,
  ``Awaitable[T]`` becomes ``T``, ``__aenter__``/``__aexit__`` become ``__enter__``/``__exit__``;
- exact replacements (``SPECIAL``) for the few places where the sync client really differs: its
  streams start the call at once (no thunk), it waits for readiness with a future, ``close`` takes no
  ``grace``, and its class docstring is the full one. Each must match the async source exactly once,
  so an edit there that moves one fails here loudly instead of yielding a subtly wrong sync client.

The stream wrappers (``_sync_streams.py``/``_async_streams.py``) are not generated: they differ in
behaviour, not only in syntax (the async call starts lazily and ends on an EOF sentinel, the sync
TTS stream's format properties fetch the first chunk), and share their common part in
``_stream_common.py``. ``tests/test_sync_client_generated.py`` fails until ``_sync.py`` is regenerated.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clients" / "python" / "modelruntime"
SOURCE = PACKAGE / "_async.py"
TARGET = PACKAGE / "_sync.py"
# The admin client (AdminService): ``admin.py`` holds the async one, the sync one is generated beside it
# with the token rules alone (it has none of the main client's special cases).
ADMIN_SOURCE = PACKAGE / "admin.py"
ADMIN_TARGET = PACKAGE / "_admin_sync.py"
ADMIN_HEADER = '''\
# GENERATED from admin.py by scripts/gen_sync_client.py: do not edit; edit admin.py, then run
# `make sync-client` (or `python scripts/gen_sync_client.py`).
"""The synchronous AdminService client: ``AdminClient`` (``from modelruntime.admin import AdminClient``).

Generated from ``AsyncAdminClient`` (``admin.py``): the same methods and arguments, called without await.
"""
'''

HEADER = '''\
# GENERATED from _async.py by scripts/gen_sync_client.py: do not edit; edit _async.py, then run
# `make sync-client` (or `python scripts/gen_sync_client.py`).
"""The synchronous client: ``ModelRuntimeClient``.

Generated from the async client (``_async.py``) by ``scripts/gen_sync_client.py``, which says how.
"""
'''

# (async text, sync text): each async text must occur exactly once in _async.py.
SPECIAL: list[tuple[str, str]] = [
    # A sync stream call is started here; the async one when the stream is first read.
    (
        """\
    ) -> Callable[[], Any]:
        kw = self._client._defaults.call_kwargs(timeout, metadata, True)
        return lambda: method(request, **kw)
""",
        """\
    ) -> Any:
        kw = self._client._defaults.call_kwargs(timeout, metadata, True)
        try:
            return method(request, **kw)
        except grpc.RpcError as err:  # pragma: no cover - calls fail on iteration, not creation
            raise from_rpc_error(err) from err
""",
    ),
    (
        '''\
    """Asynchronous (``grpc.aio``) Model Runtime client.

    >>> async with AsyncModelRuntimeClient("localhost:50051") as client:
    ...     async for chunk in client.llm.stream(provider="openai", model="gpt-4o-mini",
    ...                                          credentials={...}, messages=[user("Hi")]):
    ...         print(chunk.delta.content, end="")

    Arguments as for :class:`ModelRuntimeClient`; ``target`` may be an existing
    ``grpc.aio.Channel``. Create the client inside a running event loop.
    """
''',
        '''\
    """Synchronous Model Runtime client.

    >>> with ModelRuntimeClient("localhost:50051") as client:
    ...     resp = client.llm.generate(provider="openai", model="gpt-4o-mini",
    ...                                credentials={"openai_api_key": "sk-..."},
    ...                                messages=[user("Hello")])

    ``target`` is a "host:port" string (default: ``$MODELRUNTIME_TARGET`` or
    localhost:50051) or an existing ``grpc.Channel`` (also accepted as
    ``channel=``), which the client then does not close. ``channel_credentials``
    makes a TLS channel. ``timeout`` is the default deadline of every call,
    ``generation_timeout`` that of ``llm.generate``/``llm.stream``/``tts.stream``/
    ``speech2text.transcribe``; ``None`` means no deadline. ``metadata`` is sent
    with every call. ``options`` add to or override the channel options.

    ``api_key`` (default ``$MODELRUNTIME_API_KEY``) is the caller key of a server
    with authentication on, sent as ``authorization: Bearer <key>``. Calls that
    address a model take ``credentials_name=`` to use provider credentials stored
    on the server (AdminService.PutCredentials) instead of sending them.
    """
''',
    ),
    (
        '"""Wait until the channel is connected;',
        '"""Block until the channel is connected;',
    ),
    (
        """\
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except asyncio.TimeoutError as err:
""",
        """\
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as err:
""",
    ),
    (
        '''\
    async def close(self, grace: float | None = None) -> None:
        """Close the channel if the client created it (``grace``: seconds to let calls finish)."""
''',
        '''\
    def close(self) -> None:
        """Close the channel if the client created it."""
''',
    ),
    ("await self._channel.close(grace)", "self._channel.close()"),
]

# (pattern, replacement), applied in order to the whole text after SPECIAL.
TOKENS: list[tuple[str, str]] = [
    (r"^import (asyncio|grpc\.aio)\n", ""),
    (r"\bAwaitable, ", ""),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\basync (def|for|with) ", r"\1 "),
    (r"\bawait ", ""),
    (r"__a(enter|exit|iter)__", r"__\1__"),
    (r"__anext__", "__next__"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bgrpc\.aio\.", "grpc."),
    (r"\b_async_streams\b", "_sync_streams"),
    (r"\b_Async([A-Z]\w*)", r"_\1"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\b([Aa])n async iterator\b", r"\1n iterator"),
]

# Nothing of asyncio may survive the rewrite.
LEFTOVER = re.compile(r"\b(async|await|asyncio|aio|Async\w*|_Async\w*)\b")
DOCSTRING = re.compile(r'\A"""(?:.|\n)*?"""\n')


class GenerationError(Exception):
    """The async source no longer has the shape the rewrite expects."""


def _tokens(text: str, target: str) -> str:
    for pattern, replacement in TOKENS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    for number, line in enumerate(text.splitlines(), 1):
        found = LEFTOVER.search(line)
        if found:
            raise GenerationError(f"{target} line {number} still says {found.group()!r}: {line.strip()}")
    return text


def _body(source: str, name: str) -> str:
    match = DOCSTRING.match(source)
    if match is None:
        raise GenerationError(f"{name} must start with its module docstring")
    return source[match.end() :]


def rewrite(source: str) -> str:
    """The sync module for the text of ``_async.py``."""
    text = _body(source, "_async.py")
    for old, new in SPECIAL:
        count = text.count(old)
        if count != 1:
            raise GenerationError(f"expected exactly one occurrence in _async.py, found {count}:\n{old}")
        text = text.replace(old, new)
    return HEADER + _tokens(text, "_sync.py")


def rewrite_admin(source: str) -> str:
    """The sync admin module for the text of ``admin.py`` (its tail, which re-exports the sync
    client, stays out)."""
    text = _body(source, "admin.py").split(ADMIN_TAIL)[0].rstrip() + "\n"
    return ADMIN_HEADER + _tokens(text, "_admin_sync.py")


ADMIN_TAIL = "\n# ---- the sync client, generated from the class above"


def render() -> str:
    return rewrite(SOURCE.read_text(encoding="utf-8"))


def render_admin() -> str:
    return rewrite_admin(ADMIN_SOURCE.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    outputs = [(TARGET, render()), (ADMIN_TARGET, render_admin())]
    if args.check:
        stale = [t for t, text in outputs if t.read_text(encoding="utf-8") != text]
        for target in stale:
            print(f"{target.relative_to(ROOT)} is stale: run `python scripts/gen_sync_client.py`")
        return 1 if stale else 0
    for target, text in outputs:
        target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
