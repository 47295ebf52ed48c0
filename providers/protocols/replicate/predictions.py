"""Replicate predictions: create, wait, poll, stream, and cancel what we abandon.

* **create**: ``POST /v1/predictions {"version", "input", "stream"?}``, or for a model without a
  listed version ``POST /v1/models/{owner}/{name}/predictions`` (no ``version``). Unary calls send
  ``Prefer: wait=N`` (sync mode: the answer comes when the prediction finishes or after N seconds,
  whichever is first); N is ``runtime.prefer_wait`` (default 10, at most 60) capped by the caller's
  deadline. The reply (201) is the prediction: ``{"id", "status", "output", "error", "metrics",
  "urls": {"get", "cancel", "stream"}, ...}``, terminal or still ``starting``/``processing``.
* **poll**: ``GET /v1/predictions/{id}`` until ``succeeded``, ``failed`` or ``canceled``; the
  interval grows from 0.1 s to ``runtime.poll_interval`` (default 1 s). An LLM's ``output`` is a
  list of text tokens that grows while it runs (a cumulative string is accepted too).
* **stream**: ``GET urls.stream`` (``Accept: text/event-stream``, ``Cache-Control: no-store``),
  events ``output`` (data is raw text, not JSON: leading spaces are part of the token),
  ``logs`` (ignored), ``error`` (``{"detail"}``) and ``done`` (``{}`` or ``{"reason": "canceled"}``).
  A stream that ends without ``done`` is truncated: InvokeConnectionError. The token goes only to a
  stream URL on Replicate's own hosts (or the configured API host). The stream runs on the kit's
  driver (:func:`providers.kit.stream.drive`); the caller's assembler reads the events
  (:func:`read_event` tells it what each one means).
* **cancel**: ``POST /v1/predictions/{id}/cancel``, best effort and in the background, whenever a
  prediction is left before it is terminal: the caller cancelled (gRPC cancel), the deadline
  passed, the stream broke, or a stop word was reached (as Dify does). The caller's deadline also
  bounds polling: past it the prediction is cancelled and the call fails with DEADLINE_EXCEEDED.

A ``failed`` prediction is InvokeBadRequestError with its ``error`` text (Dify maps Replicate's
ModelError there); one ``canceled`` by someone else is InvokeServerUnavailableError, never a
silently short answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from engine._http.sse import SSEEvent, aiter_sse
from engine.adapter import CallContext
from engine.errors import (
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    InvokeServerUnavailableError,
    RuntimeFault,
)
from engine.messages import LLMChunk
from providers.kit.stream import Assembler, drive, one_event_each

from . import client
from .client import ModelInfo

log = logging.getLogger("modelruntime.replicate")

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
FIRST_POLL = 0.1
CANCEL_TIMEOUT = 5.0
_background: set[asyncio.Task[None]] = set()


def prefer_wait(ctx: CallContext) -> int | None:
    """Seconds for ``Prefer: wait`` (1-60), capped by the caller's deadline; None: do not wait."""
    wait = min(client.options(ctx).prefer_wait, 60)
    if ctx.deadline is not None:
        wait = min(wait, int(ctx.deadline - asyncio.get_running_loop().time()) - 1)
    return wait if wait >= 1 else None


def deadline_error() -> InvokeConnectionError:
    return InvokeConnectionError("The prediction did not finish before the caller's deadline",
                                 deadline_exceeded=True)


def output_text(output: Any) -> str:
    if output is None:
        return ""
    if isinstance(output, list):
        return "".join(str(item) for item in output if item is not None)
    return str(output)


# SSE events one at a time: each ``output`` event is passed on as its own delta, exactly as
#     Replicate sent it (one token per chunk).
one_per_event = one_event_each(aiter_sse)


class Prediction:
    """One upstream prediction, as last seen."""

    def __init__(self, ctx: CallContext, obj: dict[str, Any]) -> None:
        self.ctx = ctx
        self.obj = obj
        self.id = str(obj.get("id") or "")
        if not self.id:
            raise InvokeError("Replicate returned a prediction without an id")

    @property
    def status(self) -> str:
        return str(self.obj.get("status") or "")

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def output(self) -> Any:
        return self.obj.get("output")

    def stream_url(self) -> str:
        urls = self.obj.get("urls")
        url = urls.get("stream") if isinstance(urls, dict) else None
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""

    def failure(self) -> RuntimeFault | None:
        if self.status == "failed":
            detail = str(self.obj.get("error") or "no error given").strip()
            return InvokeBadRequestError(f"The prediction failed: {detail}"[:500])
        if self.status == "canceled":
            return InvokeServerUnavailableError("The prediction was canceled before it finished")
        return None

    def raise_if_failed(self) -> None:
        failure = self.failure()
        if failure is not None:
            raise failure

    async def refresh(self) -> None:
        obj = await client.get_json(self.ctx, client.api(self.ctx, f"predictions/{self.id}"))
        if obj.get("id") and str(obj["id"]) != self.id:
            raise InvokeError("Replicate returned a different prediction than the one polled")
        self.obj = obj

    async def _polls(self) -> AsyncIterator[None]:
        """Yields now and after every poll until the prediction is terminal (deadline-bounded)."""
        loop = asyncio.get_running_loop()
        cap = client.options(self.ctx).poll_interval
        delay = min(FIRST_POLL, cap)
        while True:
            yield
            if self.terminal:
                return
            if self.ctx.deadline is not None:
                remaining = self.ctx.deadline - loop.time()
                if remaining <= 0:
                    raise deadline_error()
                delay = min(delay, remaining)
            await asyncio.sleep(delay)
            await self.refresh()
            delay = min(delay * 2, cap)

    async def wait(self) -> None:
        """Poll until terminal; raises if the prediction failed or was canceled."""
        async for _ in self._polls():
            pass
        self.raise_if_failed()

    async def poll_output(self) -> AsyncGenerator[str, None]:
        """New output text as polling finds it; ends when the prediction succeeded."""
        sent = 0
        async for _ in self._polls():
            text = output_text(self.output)
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)
        self.raise_if_failed()

    def read_event(self, event: SSEEvent) -> str | None:
        """One stream event: an ``output`` event's raw text; ``""`` once ``done`` ends a succeeded
        prediction; None for events that carry nothing (``logs``). ``error``, or a ``done`` that
        says failed or canceled, raises."""
        if event.event == "output":
            return event.data
        if event.event == "error":
            detail = client.loads(event.data)
            text = detail.get("detail") if isinstance(detail, dict) else event.data
            self.obj = dict(self.obj, status="failed", error=str(text or event.data))
            self.raise_if_failed()
        elif event.event == "done":
            done = client.loads(event.data) if event.data.strip() else {}
            reason = done.get("reason") if isinstance(done, dict) else None
            status = {"canceled": "canceled", "error": "failed"}.get(str(reason), "succeeded")
            self.obj = dict(self.obj, status=status)
            self.raise_if_failed()
            return ""
        return None

    async def stream(self, assembler: Assembler) -> AsyncIterator[LLMChunk]:
        """The deltas of the prediction's SSE stream, read by ``assembler`` (no closing chunk)."""
        url = self.stream_url()
        headers = {"accept": "text/event-stream", "cache-control": "no-store"}
        if client.trusted(self.ctx, url) and client.token(self.ctx):
            headers["authorization"] = f"Bearer {client.token(self.ctx)}"
        async with self.ctx.http.stream("GET", url, headers=headers, deadline=self.ctx.deadline) as response:
            await client.check_status(response)
            async for chunk in drive(response.aiter_bytes(), one_per_event, assembler):
                yield chunk

    def cancel_soon(self) -> None:
        """Best-effort ``POST /v1/predictions/{id}/cancel`` in the background."""
        ctx, url = self.ctx, client.api(self.ctx, f"predictions/{self.id}/cancel")
        self.obj = dict(self.obj, status="canceled")

        async def run() -> None:
            try:
                deadline = asyncio.get_running_loop().time() + CANCEL_TIMEOUT
                await ctx.http.request("POST", url, headers=client.headers(ctx), deadline=deadline)
            except Exception as exc:  # noqa: BLE001 - best effort
                log.debug("cancelling a Replicate prediction failed: %s", type(exc).__name__)

        task = asyncio.get_running_loop().create_task(run())
        _background.add(task)
        task.add_done_callback(_background.discard)


@asynccontextmanager
async def abandon_on_exit(prediction: Prediction) -> AsyncIterator[Prediction]:
    """Cancel the prediction upstream if the block is left before it is terminal."""
    try:
        yield prediction
    finally:
        if not prediction.terminal:
            prediction.cancel_soon()


async def create(ctx: CallContext, info: ModelInfo, inputs: dict[str, Any], *, stream: bool,
                 wait: int | None) -> Prediction:
    body: dict[str, Any] = {"input": inputs}
    if info.version_id:
        url = client.api(ctx, "predictions")
        body["version"] = info.version_id
    else:
        url = client.api(ctx, f"models/{client.model_path(ctx.model)}/predictions")
    if stream:
        body["stream"] = True
    async with ctx.http.stream("POST", url, headers=client.headers(ctx, wait=wait), content=client.dumps(body),
                               deadline=ctx.deadline) as response:
        obj = await client.read_json(response)
    return Prediction(ctx, obj)


async def run(ctx: CallContext, info: ModelInfo, inputs: dict[str, Any]) -> Prediction:
    """Create, then wait until terminal (``client.run`` of the SDK); raises if it failed."""
    prediction = await create(ctx, info, inputs, stream=False, wait=prefer_wait(ctx))
    async with abandon_on_exit(prediction):
        await prediction.wait()
    return prediction
