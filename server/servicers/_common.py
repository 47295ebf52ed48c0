"""Shared servicer plumbing: the runtime handle, targets, deadlines and the single error exit.

A request may name a route instead of a model target; the servicer only resolves it into a
``Target(route=...)`` (:meth:`Servicer.target`), the engine's router does the rest. Which deployment
served the call and how many attempts it took leave as trailing metadata (``x-modelruntime-*``),
on success and on error alike.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import grpc

from engine.errors import RuntimeFault
from engine.runtime import ModelRuntime, Target

from .. import convert
from ..errors import to_status
from ..observability.calls import current_scope

log = logging.getLogger("modelruntime.server")
_ROUTED: ContextVar[Target | None] = ContextVar("modelruntime_routed", default=None)


def routing_metadata(target: Target | None) -> tuple[tuple[str, str], ...]:
    served = target.served if target is not None else None
    if served is None:
        return ()
    # Provider and model are the response's own (and the error's ErrorInfo metadata).
    return (("x-modelruntime-route", served.route), ("x-modelruntime-deployment", served.deployment),
            ("x-modelruntime-attempts", str(served.attempts)), ("x-modelruntime-fallbacks", str(served.fallbacks)))


class Servicer:
    """Base of every servicer: the runtime it calls and the request limits it converts under."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self.limits = runtime.limits

    def target(self, request: Any) -> Target:
        """The request's model target, or the route it names (``route`` beside ``target``)."""
        target = convert.target(request.target, self.limits, getattr(request, "route", ""))
        if target.route:
            _ROUTED.set(target)
        return target


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
        status = to_status(exc)
        extra = routing_metadata(_ROUTED.get())
        if scope is not None:  # no response headers went out: the request id travels in the trailers
            extra = (*extra, ("x-request-id", scope.request_id))
        if extra:
            status = status._replace(trailing_metadata=(*status.trailing_metadata, *extra))
        await context.abort_with_status(status)
    log.error("unhandled %s in handler", type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})")


def rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map domain errors of a unary or server-streaming handler to a gRPC status."""
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):
            _ROUTED.set(None)
            try:
                async for item in fn(self, request, context):
                    yield item
            except (RuntimeFault, ValueError, KeyError, TypeError) as exc:
                await _abort(context, exc)
            _trailers(context)

        return stream_wrapper

    @functools.wraps(fn)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):
        _ROUTED.set(None)
        try:
            response = await fn(self, request, context)
        except (RuntimeFault, ValueError, KeyError, TypeError) as exc:
            await _abort(context, exc)
        _trailers(context)
        return response

    return unary_wrapper


def _trailers(context: grpc.aio.ServicerContext) -> None:
    routed = routing_metadata(_ROUTED.get())
    if routed:
        context.set_trailing_metadata(routed)
