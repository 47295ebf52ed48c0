"""The HTTP front door's side: request ids, trace context, status counts and the call log line.

Why a wrapper around ASGI ``send``: the response status and the bytes sent are only visible
there, whichever handler (JSON, SSE, audio) wrote them. One :class:`HttpRequest` per routed
request; the app calls :meth:`HttpRequest.end` when the handler is done or the client left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .calls import RequestScope, current_scope, request_id

if TYPE_CHECKING:
    from . import Observability

_RID, _TP, _TS = b"x-request-id", b"traceparent", b"tracestate"


class HttpRequest:
    __slots__ = ("_send", "obs", "scope", "send", "sent", "status")

    def __init__(self, obs: Observability, asgi_scope: dict[str, Any], send: Any, route: str) -> None:
        self.obs = obs
        given = traceparent = tracestate = None
        for key, value in asgi_scope["headers"]:
            if key == _RID:
                given = value.decode("latin-1")
            elif key == _TP:
                traceparent = value.decode("latin-1")
            elif key == _TS:
                tracestate = value.decode("latin-1")
        self.scope = RequestScope("http", route, request_id(given))
        if obs.tracing is not None:
            self.scope.traceparent, self.scope.tracestate = traceparent, tracestate
        current_scope.set(self.scope)
        self.status = 0
        self.sent = 0
        self._send = send
        self.send = self._counting_send

    @property
    def header(self) -> tuple[bytes, bytes]:
        return (_RID, self.scope.request_id.encode())

    async def _counting_send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.sent += len(message.get("body", b""))
        await self._send(message)

    def end(self, received: int, error_class: str = "", client_left: bool = False) -> None:
        scope = self.scope
        if error_class:
            scope.error_class = error_class
        # 499 (the client closed the request), as nginx logs it, when the client left first.
        code = "499" if client_left else str(self.status or 500)
        metrics = self.obs.metrics
        if metrics is not None:
            record_error = scope.record.error_type if scope.record is not None else ""
            metrics.requests.labels("http", scope.method, code, scope.error_class or record_error).inc()
            bytes_in, bytes_out = metrics.door_bytes["http"]
            bytes_in.value += received
            bytes_out.value += self.sent
        if self.obs.calls is not None:
            self.obs.calls.write(scope, code)
        current_scope.set(None)


def observability_of(runtime: Any) -> Observability | None:
    """The :class:`Observability` attached to a runtime (None when nothing is observed)."""
    return getattr(runtime.observer, "observability", None)
