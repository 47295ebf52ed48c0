"""A faithful mock of Cohere's v2 API on the raw HTTP/1.1 server (127.0.0.1, random port).

    async with CohereMock(api_keys=["co-test"]) as mock:
        creds = {"api_key": "co-test", "base_url": mock.url}
        mock.enqueue(trial_rate_limit())
        ...
        assert mock.requests[-1].json["p"] == 0.5

Routes: POST /v2/chat (unary and ``stream: true``), /v2/embed, /v2/rerank. Auth is
``Authorization: Bearer <key>``: a missing or unknown key is 401 ``{"id", "message"}``; a key in
``revoked_keys`` is 498 (Cohere's "invalid token"). Request checks and replies: cohere_replies.

Streams are SSE with ``event:`` names and the type repeated in the data, no ``[DONE]``:
``message-start``; for a reasoning model a ``thinking`` content block; ``tool-plan-delta``
pieces before the first ``tool-call-start``; each call's arguments spread over several
``tool-call-delta`` events (cut through UTF-8 characters); ``content-start``/``-delta``/``-end``
for text; ``message-end`` with ``finish_reason`` (``TOOL_CALL``, ``MAX_TOKENS``...) and usage
(billed units and raw tokens). Framing is chaotic by default (CRLF, comments, split and
coalesced writes). Embed replies key their vectors by type; rerank results come sorted by score,
not in input order.

Per-request scenarios (``mock.enqueue(...)``, FIFO, by path): :func:`status` (any status and
body), :func:`trial_rate_limit` (429 with the trial-key message), :func:`truncate_after` (no
``message-end``; optionally cut mid-event or abort the connection), :func:`finish_error`
(``message-end`` with ``finish_reason: ERROR``), :func:`hang`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from .cohere_replies import (
    ApiError,
    chat_message,
    embed_reply,
    invalid,
    pieces,
    plan_reply,
    rerank_reply,
    usage,
    validate_chat,
    word_pieces,
)
from .httpserver import MockServer, Request, Response, ServerMock
from .sse import SSEWriter, StreamStyle, encode_json

CHAOTIC = StreamStyle.chaotic()
TRIAL_MESSAGE = ("You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the "
                 "Trial key for free or upgrade to a Production key with higher rate limits at "
                 "'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us "
                 "at support@cohere.com with any questions")
ROUTES = ("/v2/chat", "/v2/embed", "/v2/rerank")


@dataclass
class Scenario:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    path: str = "/v2/chat"


def status(code: int, message: str | None = "default", path: str = "/v2/chat", content_type: str | None = None,
           body: bytes | None = None, headers: dict[str, str] | None = None) -> Scenario:
    """Any status before the answer: ``{"id", "message"}`` (or a raw ``body``)."""
    return Scenario("status", {"code": code, "message": message, "body": body, "content_type": content_type,
                               "headers": headers or {}}, path)


def trial_rate_limit(path: str = "/v2/chat") -> Scenario:
    return status(429, TRIAL_MESSAGE, path)


def truncate_after(events: int, mid_event: bool = False, abort: bool = False) -> Scenario:
    """Stop the stream after ``events`` events without ``message-end`` (optionally half an event more)."""
    return Scenario("truncate", {"after": events, "mid_event": mid_event, "abort": abort})


def finish_error(after: int = 4) -> Scenario:
    """``message-end`` with ``finish_reason: ERROR`` after ``after`` events."""
    return Scenario("finish_error", {"after": after})


def hang(send_headers: bool = True, max_seconds: float = 30.0, path: str = "/v2/chat") -> Scenario:
    return Scenario("hang", {"send_headers": send_headers, "max_seconds": max_seconds}, path)


class CohereMock(ServerMock):
    """Cohere v2 mock. api_keys: accepted Bearer keys (None accepts any non-empty key)."""

    def __init__(self, api_keys: list[str] | tuple[str, ...] | None = ("co-test",),
                 revoked_keys: list[str] | tuple[str, ...] = (), stream_style: StreamStyle = CHAOTIC,
                 reply_template: str = "Echo: {text}") -> None:
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.revoked_keys = set(revoked_keys)
        self.stream_style = stream_style
        self.reply_template = reply_template
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []

    def expected_reply(self, text: str) -> str:
        return self.reply_template.format(text=text)

    def enqueue(self, *scenarios: Scenario) -> None:
        self.pending.extend(scenarios)

    def _take(self, path: str) -> Scenario | None:
        for i, sc in enumerate(self.pending):
            if sc.path == path:
                return self.pending.pop(i)
        return None

    # ------------------------------------------------------------------ handling

    @staticmethod
    def _headers(content_type: str = "application/json") -> dict[str, str]:
        return {"content-type": content_type, "x-request-id": uuid.uuid4().hex, "num_chars": "0",
                "x-api-warning": "", "x-debug-trace-id": uuid.uuid4().hex}

    async def _error(self, resp: Response, err: ApiError, headers: dict[str, str] | None = None) -> None:
        body = {"id": str(uuid.uuid4()), "message": err.message}
        await resp.send(err.status, {**self._headers(), **(headers or {})}, encode_json(body))

    def _check_auth(self, req: Request) -> None:
        auth = req.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            raise ApiError(401, "no api key supplied")
        if key in self.revoked_keys:
            raise ApiError(498, "invalid api token")
        if self.api_keys is not None and key not in self.api_keys:
            raise ApiError(401, "invalid api token")

    async def _handle(self, req: Request, resp: Response) -> None:
        if req.method != "POST" or req.path not in ROUTES:
            await self._error(resp, ApiError(404, f"path {req.path} not found"))
            return
        sc = self._take(req.path)
        if sc is not None and sc.kind in ("status", "hang"):
            await self._scenario_response(resp, sc)
            return
        try:
            self._check_auth(req)
            body = req.json
            if not isinstance(body, dict):
                raise invalid("the request body is not valid JSON")
            if req.path == "/v2/embed":
                await resp.send(200, self._headers(), encode_json(embed_reply(body)))
                return
            if req.path == "/v2/rerank":
                await resp.send(200, self._headers(), encode_json(rerank_reply(body)))
                return
            validate_chat(body)
            if not body["model"].startswith(("command", "c4ai")):
                raise ApiError(404, f"model '{body['model']}' not found, make sure the correct model ID was used "
                                    "and that you have access to the model.")
            reply = plan_reply(body, self.reply_template)
        except ApiError as err:
            await self._error(resp, err)
            return
        except ValueError as exc:  # e.g. tool-call arguments that are not JSON
            await self._error(resp, invalid(str(exc)))
            return
        if body.get("stream"):
            await self._stream(resp, body, reply, sc)
            return
        answer = {"id": str(uuid.uuid4()), "finish_reason": reply["finish_reason"], "message": chat_message(reply),
                  "usage": usage(body, reply)}
        await resp.send(200, self._headers(), encode_json(answer))

    async def _scenario_response(self, resp: Response, sc: Scenario) -> None:
        p = sc.params
        if sc.kind == "hang":
            if p["send_headers"]:
                await resp.start(200, self._headers("text/event-stream"))
            await resp.wait_disconnected(p["max_seconds"])
            await resp.abort()
            return
        if p["body"] is not None:
            await resp.send(p["code"], {**self._headers(p["content_type"] or "text/plain"), **p["headers"]}, p["body"])
            return
        message = p["message"] if p["message"] != "default" else f"mock error {p['code']}"
        await self._error(resp, ApiError(p["code"], message), p["headers"])

    def _events(self, body: dict[str, Any], reply: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [{"id": str(uuid.uuid4()), "type": "message-start", "delta": {"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}]
        index = 0
        if reply["thinking"]:
            events.append({"type": "content-start", "index": index,
                           "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}})
            events += [{"type": "content-delta", "index": index, "delta": {"message": {"content": {"thinking": w}}}}
                       for w in word_pieces(reply["thinking"])]
            events.append({"type": "content-end", "index": index})
            index += 1
        events += [{"type": "tool-plan-delta", "delta": {"message": {"tool_plan": w}}}
                   for w in word_pieces(reply["tool_plan"])]
        for n, call in enumerate(reply["tool_calls"]):
            events.append({"type": "tool-call-start", "index": n, "delta": {"message": {"tool_calls": {
                "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}}}})
            events += [{"type": "tool-call-delta", "index": n,
                        "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}}
                       for piece in pieces(call["function"]["arguments"], 6)]
            events.append({"type": "tool-call-end", "index": n})
        if reply["text"]:
            events.append({"type": "content-start", "index": index,
                           "delta": {"message": {"content": {"type": "text", "text": ""}}}})
            events += [{"type": "content-delta", "index": index, "delta": {"message": {"content": {"text": w}}}}
                       for w in word_pieces(reply["text"])]
            events.append({"type": "content-end", "index": index})
        events.append({"type": "message-end", "delta": {"finish_reason": reply["finish_reason"],
                                                        "usage": usage(body, reply)}})
        return events

    async def _stream(self, resp: Response, body: dict[str, Any], reply: dict[str, Any], sc: Scenario | None) -> None:
        await resp.start(200, {**self._headers("text/event-stream"), "cache-control": "no-cache"})
        sse = SSEWriter(resp, self.stream_style)
        for n, event in enumerate(self._events(body, reply)):
            if sc is not None and n == sc.params.get("after"):
                if sc.kind == "finish_error":
                    end = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal model error",
                                                            "usage": usage(body, reply)}}
                    await sse.event(end, event="message-end")
                    break
                if sc.kind == "truncate":
                    if sc.params["mid_event"]:
                        raw = json.dumps(event).encode()
                        await sse.raw(b"event: " + event["type"].encode() + b"\ndata: " + raw[: len(raw) // 2]
                                      + b"\n\n")
                    await sse.flush()
                    if sc.params["abort"]:
                        await resp.abort()
                        return
                    break
            await sse.event(event, event=event["type"])
            await asyncio.sleep(0.001)  # an event per generated token, paced as a real server sends them
        await sse.close()
