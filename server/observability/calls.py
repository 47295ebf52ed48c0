"""Request scope, request ids and the one structured log line per call.

Why a scope: a front door (server/door.py, the HTTP app) opens one :class:`RequestScope` per
request in a context variable; the runtime's observer, running in the same task, leaves the
call record there, so the front door can write one line joining what only it knows (request id,
gRPC or HTTP status) with what only the runtime knows (provider, tokens, cost, first token).

Request ids: the caller's ``x-request-id`` (gRPC metadata or HTTP header) is kept when it is a
short token of safe characters, else a new one is made; either way it goes back to the caller.
The line carries names, counts and times only: no credentials or URLs, and prompts and
completions only when the operator turned ``capture_content`` on (as ``input`` / ``output``,
JSON text scrubbed of credential values, see :mod:`.content`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextvars import ContextVar
from typing import Any

import orjson

log = logging.getLogger("modelruntime.calls")

_SAFE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id(given: str | None) -> str:
    if given and _SAFE_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()


class RequestScope:
    __slots__ = ("error_class", "front_door", "method", "record", "request_id", "started", "traceparent",
                 "tracestate")

    def __init__(self, front_door: str, method: str, rid: str) -> None:
        self.front_door = front_door
        self.method = method
        self.request_id = rid
        self.started = time.perf_counter()
        self.traceparent: str | None = None
        self.tracestate: str | None = None
        self.record: Any = None  # the runtime's CallRecord, once the call ended
        self.error_class = ""


current_scope: ContextVar[RequestScope | None] = ContextVar("modelruntime_request_scope", default=None)


class CallLog:
    """Writes the per-call line (``text``: key=value pairs; ``json``: one JSON object)."""

    def __init__(self, fmt: str = "text") -> None:
        self.json = fmt == "json"
        if self.json and not any(getattr(h, "_modelruntime_json", False) for h in log.handlers):
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._modelruntime_json = True  # type: ignore[attr-defined]
            log.addHandler(handler)
            log.propagate = False  # the line is pure JSON, without the text log's prefix

    def write(self, scope: RequestScope, status: str) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        fields = line_fields(scope, status)
        if self.json:
            log.info(orjson.dumps(fields).decode())
        else:
            log.info("call " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != ""))


def line_fields(scope: RequestScope, status: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": scope.request_id, "front_door": scope.front_door, "method": scope.method,
        "status": status, "error_class": scope.error_class,
        "latency_ms": round((time.perf_counter() - scope.started) * 1000, 3),
    }
    record = scope.record
    if record is not None:
        fields.update({
            "provider": record.provider, "model": record.model, "model_type": record.model_type.value,
            "outcome": record.status, "error_class": scope.error_class or record.error_type,
            "input_tokens": record.input_tokens, "output_tokens": record.output_tokens,
            "cost_usd": record.cost,
            "ttft_ms": None if record.time_to_first_token is None else round(record.time_to_first_token * 1000, 3),
            "attempts": record.attempts,
        })
        if record.usage_estimated:
            fields["usage_estimated"] = True
        if record.capture:
            fields["input"], fields["output"] = record.input, record.output
    return fields
