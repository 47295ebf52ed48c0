"""Shared servicer plumbing: the runtime handle, deadlines and the single error exit."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import grpc

from engine.errors import RuntimeFault
from engine.runtime import ModelRuntime

from ..errors import to_status
from ..observability.calls import current_scope

log = logging.getLogger("modelruntime.server")


class Servicer:
    """Base of every servicer: the runtime it calls and the request limits it converts under."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self.limits = runtime.limits


def deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The caller's deadline on the event loop's clock (None: no deadline)."""
    remaining = context.time_remaining()
    if remaining is None or remaining > 1e8:
        return None
    return asyncio.get_running_loop().time() + remaining


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    scope = current_scope.get()
    if scope is not None:  # the call log and modelruntime_requests_total name the error class
        scope.error_class = exc.reason if isinstance(exc, RuntimeFault) else "InternalError"
    if isinstance(exc, RuntimeFault):
        await context.abort_with_status(to_status(exc))
    log.error("unhandled %s in handler", type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})")


def rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map domain errors of a unary or server-streaming handler to a gRPC status."""
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):
            try:
                async for item in fn(self, request, context):
                    yield item
            except (RuntimeFault, ValueError, KeyError, TypeError) as exc:
                await _abort(context, exc)

        return stream_wrapper

    @functools.wraps(fn)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):
        try:
            return await fn(self, request, context)
        except (RuntimeFault, ValueError, KeyError, TypeError) as exc:
            await _abort(context, exc)

    return unary_wrapper
