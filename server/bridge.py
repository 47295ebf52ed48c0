"""gRPC served by the synchronous ``grpc.server``, its calls run on the runtime's event loop.

Why (issue 15): ``grpc.aio`` hands every completion of a call (request arrived, message sent,
status sent, ...) from its poller thread to the event loop, one wakeup each. Measured on the
bench machine with a handler that makes one upstream HTTP call: 0.46 ms of CPU per call under
``grpc.aio``, 0.26 ms with the synchronous server whose pool thread hands the call to the same
loop once and waits for its result. The loop thread also stops being preempted several times
per call, so the runtime's own Python work gets cheaper too.

What stays the same: the front door (server/door.py), the servicers, health and reflection
are still ``grpc.aio``-style coroutines and async generators; :class:`Context` gives them the
``grpc.aio.ServicerContext`` surface they use, and the pool thread applies what they did
(initial and trailing metadata, abort statuses) to the real call. A client's cancellation or an
expired deadline cancels the task on the loop (``context.add_callback``), so it reaches the
upstream as before; server-streamed messages pass through a small queue whose producer waits
when the caller reads slowly (the upstream is read no faster than the caller takes messages).

``grpc.mode: aio`` in the config serves with ``grpc.aio`` instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn

import grpc

from .door import WrappedGeneric

log = logging.getLogger("modelruntime.server")

AbortError = grpc.aio.AbortError
_HIGH = 32  # streamed messages waiting for the caller before the producer pauses
_LOW = 8  # ... and resumes at this many


class Context:
    """What the aio-style handlers see of a call served by the synchronous server."""

    __slots__ = ("_code", "_ctx", "_details", "_status", "_trailing", "cancelled_flag", "channel", "ended", "initial")

    def __init__(self, ctx: grpc.ServicerContext) -> None:
        self._ctx = ctx
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._status: grpc.Status | None = None
        self._trailing: tuple = ()
        self.initial: tuple | None = None
        self.ended = False  # the call is over (set from grpc's termination callback)
        self.cancelled_flag = False  # ... and it ended before the handler did
        self.channel: _Channel | None = None

    # ---- read from the call ----
    def invocation_metadata(self) -> Any:
        return self._ctx.invocation_metadata()

    def time_remaining(self) -> float | None:
        return self._ctx.time_remaining()

    def peer(self) -> str:
        return self._ctx.peer()

    def peer_identities(self) -> Any:
        return self._ctx.peer_identities()

    def auth_context(self) -> Any:
        return self._ctx.auth_context()

    def cancelled(self) -> bool:
        return self.cancelled_flag

    def done(self) -> bool:
        return self.ended

    # ---- written to the call (applied by the pool thread) ----
    async def send_initial_metadata(self, metadata: Any) -> None:
        self.initial = tuple(metadata)

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._trailing = tuple(metadata)

    def trailing_metadata(self) -> tuple:
        return self._trailing

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self._code, self._details = code, details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        raise AbortError()

    async def abort_with_status(self, status: grpc.Status) -> None:
        self._status, self._code, self._details = status, status.code, status.details
        raise AbortError()

    async def write(self, message: Any) -> None:  # unary-stream handlers written as coroutines
        assert self.channel is not None
        await self.channel.put(message)

    # ---- pool-thread side ----
    def send_initial(self, ctx: grpc.ServicerContext) -> None:
        """The initial metadata the handler set, sent with the next message (or the status)."""
        if self.initial is not None:
            state = getattr(ctx, "_state", None)
            if _FUSED and state is not None and state.initial_metadata_allowed:
                state.modelruntime_initial = self.initial
            else:
                ctx.send_initial_metadata(self.initial)
            self.initial = None

    def apply(self, ctx: grpc.ServicerContext) -> None:
        """Metadata the handler set, sent with the response (call before returning it)."""
        self.send_initial(ctx)
        if self._trailing:
            ctx.set_trailing_metadata(self._trailing)

    def finish(self, ctx: grpc.ServicerContext, exc: BaseException) -> NoReturn:
        """End the call the way the handler's exception says (raises, as ``ctx.abort`` does)."""
        if isinstance(exc, AbortError):
            if self._status is not None:
                ctx.abort_with_status(self._status)
            if self._trailing:
                ctx.set_trailing_metadata(self._trailing)
            ctx.abort(self._code or grpc.StatusCode.UNKNOWN, self._details)
        if isinstance(exc, (asyncio.CancelledError, concurrent.futures.CancelledError)):
            ctx.abort(grpc.StatusCode.CANCELLED, "the call was cancelled")
        log.error("unhandled %s in a gRPC handler", type(exc).__name__)
        ctx.abort(grpc.StatusCode.UNKNOWN, "internal error")
        raise AssertionError("grpc's abort returned")  # it raises


def _fuse_initial_metadata() -> bool:
    """Let the handler's initial metadata ride in the batch grpc sends the response with.

    Why: ``ServicerContext.send_initial_metadata`` starts a batch of its own in the synchronous
    server: one more completion, handled by grpc's serving thread, per call (~0.04 ms of CPU on
    the echo floor, 10-15 %). The server already puts an initial-metadata operation in the
    response's batch when none was sent; it builds it with ``_get_initial_metadata(state, None)``,
    which this wraps to use what :meth:`Context.send_initial` left on the call's state. That is
    grpcio's private code (pinned in pyproject.toml): when it is not there as expected, nothing is
    wrapped and the separate batch is used.
    """
    from grpc import _server

    original = getattr(_server, "_get_initial_metadata", None)
    if original is None or list(inspect.signature(original).parameters) != ["state", "metadata"]:
        return False
    if getattr(original, "modelruntime_fused", False):
        return True

    def initial_metadata(state: Any, metadata: Any) -> Any:
        if metadata is None:
            metadata = getattr(state, "modelruntime_initial", None)
        return original(state, metadata)

    initial_metadata.modelruntime_fused = True  # type: ignore[attr-defined]
    _server._get_initial_metadata = initial_metadata
    return True


_FUSED = _fuse_initial_metadata()


class _End:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc


class _Channel:
    """Streamed messages from the loop (producer) to the pool thread (consumer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.waiter: asyncio.Future[None] | None = None

    async def put(self, item: Any) -> None:
        self.items.put(item)
        if self.items.qsize() >= _HIGH:
            self.waiter = waiter = self.loop.create_future()
            if self.items.qsize() >= _HIGH:  # the consumer may have drained before the waiter was set
                await waiter
            self.waiter = None

    def taken(self) -> None:
        waiter = self.waiter
        if waiter is not None and self.items.qsize() <= _LOW:
            self.loop.call_soon_threadsafe(_release, waiter)

    async def pump(self, source: Any) -> None:
        try:
            if inspect.isasyncgen(source):
                async for item in source:
                    await self.put(item)
            else:
                await source  # a coroutine that writes through Context.write
        except BaseException as exc:
            self.items.put(_End(exc))
            raise
        self.items.put(_End(None))


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Bridge:
    """Turns aio-style method handlers into synchronous ones that run them on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def handler(self, h: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        options = {"request_deserializer": h.request_deserializer, "response_serializer": h.response_serializer}
        if h.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(h.unary_unary), **options)
        if h.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(self._unary(h.stream_unary, streamed=True), **options)
        if h.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._stream(h.unary_stream), **options)
        return grpc.stream_stream_rpc_method_handler(self._stream(h.stream_stream, streamed=True), **options)

    def _requests(self, requests: Iterator[Any]) -> AsyncIterator[Any]:
        """A client stream's requests for the loop, read by a helper thread (reflection only)."""
        loop, end = self.loop, object()

        async def gen() -> AsyncIterator[Any]:
            while True:
                item = await loop.run_in_executor(None, next, requests, end)
                if item is end:
                    return
                yield item

        return gen()

    def _unary(self, behavior: Callable, streamed: bool = False) -> Callable:
        loop = self.loop

        def call(request: Any, ctx: grpc.ServicerContext) -> Any:
            context = Context(ctx)
            if streamed:
                request = self._requests(request)
            run = _Run(loop, behavior(request, context), context)
            if not ctx.add_callback(run.cancel):
                run.cancel()  # the call already ended (the caller went away before we ran)
            try:
                response = run.wait()
            except BaseException as exc:  # noqa: BLE001 - every ending becomes a status
                context.finish(ctx, exc)
            context.apply(ctx)
            return response

        return call

    def _stream(self, behavior: Callable, streamed: bool = False) -> Callable:
        loop = self.loop

        def call(request: Any, ctx: grpc.ServicerContext) -> Iterator[Any]:
            context = Context(ctx)
            channel = context.channel = _Channel(loop)
            if streamed:
                request = self._requests(request)
            run = _Run(loop, channel.pump(behavior(request, context)), context)
            if not ctx.add_callback(run.cancel):
                run.cancel()  # the call already ended (the caller went away before we ran)
            items = channel.items
            finished = False
            try:
                while True:
                    item = items.get()
                    if type(item) is _End:
                        finished = True
                        if item.exc is not None:
                            context.finish(ctx, item.exc)
                        break
                    context.send_initial(ctx)
                    yield item
                    channel.taken()
                context.apply(ctx)
            finally:
                if not finished:  # the caller went away while the handler still ran
                    run.cancel()

        return call


class _Run:
    """One handler coroutine run on the loop for a pool thread that waits for its outcome.

    Why not ``run_coroutine_threadsafe``: its chained futures cost a pool thread and the loop
    ~55 µs per call on one core, this ~30 µs (a task, one done callback, a lock released once).
    ``cancel`` comes from grpc's termination callback (any thread, also after a normal end, when
    it must not wake the loop) or from the pool thread.
    """

    __slots__ = ("_coro", "_done", "_exc", "_loop", "_result", "_task", "context")

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Any, context: Context) -> None:
        self._loop, self._coro, self.context = loop, coro, context
        self._task: asyncio.Task | None = None
        self._result: Any = None
        self._exc: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()  # released once the outcome is known
        loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:  # on the loop
        self._task = self._loop.create_task(self._coro)
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:  # on the loop
        if task.cancelled():
            self._exc = asyncio.CancelledError()
        else:
            self._exc = task.exception()
            if self._exc is None:
                self._result = task.result()
        self._coro = None
        self._done.release()

    def wait(self) -> Any:
        """The coroutine's result (raises what it raised) — called once, by the pool thread."""
        self._done.acquire()
        if self._exc is not None:
            raise self._exc
        return self._result

    def cancel(self) -> None:
        """The call ended: the handler is cancelled if it still runs (a no-op once it finished)."""
        context = self.context
        context.ended = True
        if self._coro is None:  # finished: nothing to stop, and no loop wakeup
            return
        context.cancelled_flag = True
        try:
            self._loop.call_soon_threadsafe(self._stop)
        except RuntimeError:  # the loop is closed (shutdown): nothing runs there any more
            pass
        if context.channel is not None:  # wake a consumer whose producer may never have started
            context.channel.items.put(_End(concurrent.futures.CancelledError()))

    def _stop(self) -> None:  # on the loop, always after _start (both queued in order)
        if self._task is not None:
            self._task.cancel()  # before its first step, the handler's body never runs


class ThreadedServer:
    """The surface of ``grpc.aio.Server`` the bootstrap uses, over a synchronous ``grpc.server``
    whose handlers run on ``loop`` through :class:`Bridge`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, maximum_concurrent_rpcs: int,
                 options: list[tuple[str, Any]]) -> None:
        self.bridge = Bridge(loop)
        # One pool thread per call in flight (it waits while the loop works); created on demand.
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=maximum_concurrent_rpcs,
                                                          thread_name_prefix="grpc-call")
        self.server = grpc.server(self.pool, options=options, maximum_concurrent_rpcs=maximum_concurrent_rpcs)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.server.add_registered_method_handlers(
            service, {name: self.bridge.handler(h) for name, h in handlers.items()})

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self.server.add_generic_rpc_handlers(tuple(WrappedGeneric(h, self._bridged) for h in handlers))

    def _bridged(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return self.bridge.handler(handler)

    def add_insecure_port(self, address: str) -> int:
        return self.server.add_insecure_port(address)

    def add_secure_port(self, address: str, credentials: grpc.ServerCredentials) -> int:
        return self.server.add_secure_port(address, credentials)

    async def start(self) -> None:
        self.server.start()

    async def stop(self, grace: float | None) -> None:
        stopped = self.server.stop(grace)
        await asyncio.to_thread(stopped.wait)
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.server.wait_for_termination, timeout)
