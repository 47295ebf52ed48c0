"""A faithful mock of Anthropic's Messages API on the raw HTTP/1.1 server (127.0.0.1, random port).

    async with AnthropicMock(api_keys=["sk-ant-test"]) as mock:
        creds = {"anthropic_api_key": "sk-ant-test", "anthropic_api_url": mock.url}
        mock.enqueue(overloaded_in_stream(after_events=4))
        ...
        assert mock.requests[-1].json["max_tokens"] == 1024

Routes: POST /v1/messages (unary and ``stream: true``), POST /v1/messages/count_tokens.
Checks what the real API checks: ``x-api-key`` (401 ``authentication_error``), ``anthropic-version``,
``model`` and ``max_tokens`` present, roles user/assistant starting with user, non-empty text blocks,
every ``tool_use`` answered by a ``tool_result`` in the next turn (and no stray ``tool_result``),
thinking budget (>= 1024, < max_tokens) and no temperature other than 1 while thinking.

Replies are deterministic (see :func:`plan_reply`): "Echo: <last user text>"; with tools, a short
text block then one ``tool_use`` block per tool (at most two, ``stop_reason: tool_use``) whose input
is :func:`expected_tool_input`; after tool results, "Tool results: ..."; with thinking on, a thinking
block (``thinking_delta`` pieces then a ``signature_delta``) before the text; the signature is an
HMAC of the thinking text, and Anthropic's documented test string
(:data:`REDACTED_TRIGGER`) in the user text yields a ``redacted_thinking`` block as well.
Thinking across turns is checked as the API checks it: every ``thinking`` block sent back must
carry the signature issued for exactly its text, every ``redacted_thinking`` block the data
issued, and with thinking on, the assistant turn before a ``tool_result`` must start with one of
them. Prompt caching: ``cache_control`` breakpoints (at most 4; a 1-hour one never after a
5-minute one) are remembered per prefix (tools, system, messages), so a repeated prefix is a
cache read and a new one a write, split by lifetime in ``usage.cache_creation`` (the real API's
1,024-token minimum is not modelled). Every request body is checked against the official
``anthropic`` SDK's request types (400 on a violation), and every reply and stream event against
its response types (violations collect in ``mock.sdk_problems``). Streams send ``ping``
events after ``message_start`` and between blocks, ``input_json_delta`` split into many pieces with
an empty first one, input usage only in ``message_start`` and cumulative output usage in
``message_delta``. Framing is ``StreamStyle.chaotic()`` by default (CRLF, comments, split and
coalesced writes) so every test exercises a real SSE parser.

Per-request scenarios (``mock.enqueue(...)``, FIFO, by path): :func:`overloaded_in_stream` (an
``event: error`` under the 200), :func:`status` (529 overloaded by default; any body),
:func:`rate_limit` (429 + ``retry-after`` + ``anthropic-ratelimit-*``), :func:`request_too_large`
(413 HTML page from the edge), :func:`truncate_after` (no ``message_stop``), :func:`hang`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .httpserver import MockServer, Request, Response, ServerMock
from .specs import anthropic_event_problems, anthropic_message_problems, anthropic_request_problems
from .sse import SSEWriter, StreamStyle, encode_json

API_VERSION = "2023-06-01"
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
REDACTED_TRIGGER = "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253D5E2D82641AC0E52CC2876CB"
REDACTED_DATA = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj"
_SIGNING_KEY = b"mock-anthropic-thinking"


def sign(thinking: str) -> str:
    """The signature the mock issues for a thinking text (and accepts back only for that text)."""
    return "Eq" + base64.b64encode(hmac.new(_SIGNING_KEY, thinking.encode(), hashlib.sha256).digest()).decode()
CHAOTIC = StreamStyle.chaotic()
STRING_SUFFIX = " — café"  # non-ASCII in tool input: split pieces cut through UTF-8 characters


# ---------------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    path: str = "/v1/messages"


def status(code: int = 529, body: Any = "default", content_type: str | None = None,
           headers: dict[str, str] | None = None, path: str = "/v1/messages") -> Scenario:
    """Any status before the stream starts. body "default": Anthropic's error JSON for the code."""
    return Scenario("status", {"code": code, "body": body, "content_type": content_type,
                               "headers": headers or {}}, path)


def rate_limit(retry_after: int | None = 2, path: str = "/v1/messages") -> Scenario:
    return Scenario("rate_limit", {"retry_after": retry_after}, path)


def request_too_large(path: str = "/v1/messages") -> Scenario:
    """413 from the edge: an HTML page, not JSON."""
    page = ("<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
            "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
            "</body>\r\n</html>\r\n")
    return status(413, page, "text/html", path=path)


def overloaded_in_stream(after_events: int = 4, error_type: str = "overloaded_error",
                         message: str = "Overloaded") -> Scenario:
    """``event: error`` after `after_events` events of a 200 stream, then the stream ends."""
    return Scenario("stream_error", {"after": after_events, "type": error_type, "message": message})


def truncate_after(events: int = 5, abort: bool = False) -> Scenario:
    """End the stream after `events` events with no message_stop (abort: cut the connection)."""
    return Scenario("truncate", {"after": events, "abort": abort})


def hang(send_headers: bool = True, max_seconds: float = 30.0) -> Scenario:
    """Answer nothing (or only the 200 headers) until the client goes away."""
    return Scenario("hang", {"send_headers": send_headers, "max_seconds": max_seconds})


# ---------------------------------------------------------------------------------- replies


class ApiError(Exception):
    def __init__(self, status: int, type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type, message


def bad(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def count_input_tokens(body: dict[str, Any]) -> int:
    """The mock's input count; /v1/messages and /v1/messages/count_tokens agree on it."""
    payload = {"system": body.get("system"), "messages": body.get("messages"), "tools": body.get("tools")}
    return 3 + approx_tokens(json.dumps(payload, sort_keys=True, ensure_ascii=False))


def expected_tool_input(schema: dict[str, Any], text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if prop.get("enum"):
            out[name] = prop["enum"][0]
        elif kind == "string":
            out[name] = text + STRING_SUFFIX
        elif kind == "integer":
            out[name] = 3
        elif kind == "number":
            out[name] = 1.5
        elif kind == "boolean":
            out[name] = True
        elif kind == "array":
            out[name] = []
        else:
            out[name] = {}
    return out


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"]


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or () if isinstance(b, dict)]


def plan_reply(body: dict[str, Any], template: str) -> tuple[list[dict[str, Any]], str, str | None]:
    """(content blocks, stop_reason, stop_sequence) for a validated request."""
    last = body["messages"][-1]
    blocks_in = _blocks(last["content"]) if last["role"] == "user" else []
    results = [b for b in blocks_in if b.get("type") == "tool_result"]
    user_text = " ".join(t for t in _texts(last["content"]) if t) if last["role"] == "user" else ""
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    out: list[dict[str, Any]] = []
    thinking = body.get("thinking") or {}
    if thinking.get("type") in ("enabled", "adaptive"):
        shown = thinking.get("type") == "enabled" or thinking.get("display") == "summarized"
        thought = f"The user wrote: {user_text}. Reply." if shown else ""
        out.append({"type": "thinking", "thinking": thought, "signature": sign(thought)})
        if REDACTED_TRIGGER in user_text:
            out.append({"type": "redacted_thinking", "data": REDACTED_DATA})
    if results:
        said = []
        for r in results:
            c = r.get("content")
            said.append(c if isinstance(c, str) else " ".join(_texts(c)))
        out.append({"type": "text", "text": "Tool results: " + "; ".join(said)})
        return out, "end_turn", None
    if tools and choice.get("type") != "none":
        chosen = [t for t in tools if t["name"] == choice.get("name")] if choice.get("type") == "tool" else tools[:2]
        if choice.get("type") == "auto":
            out.append({"type": "text", "text": "Let me check that."})
        for tool in chosen:
            out.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": tool["name"],
                        "input": expected_tool_input(tool.get("input_schema") or {}, user_text)})
        return out, "tool_use", None
    text = template.format(text=user_text)
    for stop in body.get("stop_sequences") or ():
        if stop and stop in text:
            out.append({"type": "text", "text": text[:text.index(stop)]})
            return out, "stop_sequence", stop
    words = text.split(" ")
    if len(words) > body["max_tokens"]:
        out.append({"type": "text", "text": " ".join(words[:body["max_tokens"]])})
        return out, "max_tokens", None
    out.append({"type": "text", "text": text})
    return out, "end_turn", None


def output_tokens(blocks: list[dict[str, Any]]) -> int:
    total = 0
    for b in blocks:
        if b["type"] == "text":
            total += len(b["text"].split())
        elif b["type"] == "thinking":
            total += len(b["thinking"].split()) + 8
        elif b["type"] == "redacted_thinking":
            total += 16
        else:
            total += 1 + approx_tokens(json.dumps(b["input"]))
    return total


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


# ---------------------------------------------------------------------------------- validation


def _check_content(i: int, content: Any) -> None:
    if isinstance(content, str):
        if not content:
            raise bad(f"messages.{i}: all messages must have non-empty content except for the optional "
                      "final assistant message")
        return
    if not isinstance(content, list) or not content:
        raise bad(f"messages.{i}.content: Input should be a valid list or string with at least one block")
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"messages.{i}.content.{j}"
        if kind == "text" and not block.get("text"):
            raise bad("messages: text content blocks must be non-empty")
        if kind in ("image", "document"):
            source = block.get("source") or {}
            if source.get("type") == "base64":
                allowed = IMAGE_TYPES if kind == "image" else {"application/pdf"}
                if source.get("media_type") not in allowed:
                    raise bad(f"{where}.{kind}.source.base64.media_type: Input should be one of {sorted(allowed)}")
                try:
                    base64.b64decode(source.get("data") or "", validate=True)
                except binascii.Error:
                    raise bad(f"{where}.{kind}.source.base64.data: invalid base64 data") from None
            elif source.get("type") not in ("url", "text"):
                raise bad(f"{where}.{kind}.source: Input tag does not match any of the expected tags")
        elif kind not in ("text", "tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document"):
            raise bad(f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags")


def validate_messages(body: dict[str, Any], count_only: bool = False) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad("model: Field required")
    if count_only:
        for name in ("max_tokens", "stream"):
            if name in body:
                raise bad(f"{name}: Extra inputs are not permitted")
    elif not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        raise bad("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages: Field required")
    pending: set[str] = set()  # tool_use ids of the previous assistant turn
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            raise bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise bad('messages: first message must use the "user" role')
        _check_content(i, m.get("content"))
        blocks = _blocks(m["content"])
        if role == "user":
            answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
            stray = answered - pending
            if stray:
                raise bad(f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                          f"{min(stray)}. Each `tool_result` block must have a corresponding `tool_use` "
                          "block in the previous message.")
            if pending - answered:
                raise bad(f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                          f"after: {min(pending - answered)}")
            pending = set()
        else:
            if any(b.get("type") == "tool_result" for b in blocks):
                raise bad(f"messages.{i}: `tool_result` blocks can only be in user messages")
            pending = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
            _check_thinking(i, blocks)
    if pending and not count_only:
        raise bad(f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks "
                  f"immediately after: {min(pending)}")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive") and not count_only:
        _check_thinking_turn(messages)
    if isinstance(thinking, dict) and thinking.get("type") == "enabled" and not count_only:
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= body["max_tokens"]:
            raise bad("`max_tokens` must be greater than `thinking.budget_tokens`")
        if body.get("temperature", 1) != 1:
            raise bad("`temperature` may only be set to 1 when thinking is enabled")
        if "top_k" in body:
            raise bad("`top_k` is not supported when thinking is enabled")


def _check_thinking(i: int, blocks: list[dict[str, Any]]) -> None:
    """Thinking blocks sent back must be exactly as issued (text and signature, or redacted data)."""
    for j, b in enumerate(blocks):
        if b.get("type") == "thinking" and not hmac.compare_digest(str(b.get("signature")), sign(str(b.get("thinking")))):
            raise bad(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
        if b.get("type") == "redacted_thinking" and b.get("data") != REDACTED_DATA:
            raise bad(f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block")


def _check_thinking_turn(messages: list[dict[str, Any]]) -> None:
    """With thinking on, a tool loop's assistant turn must start with its thinking."""
    last = messages[-1]
    if last["role"] != "user" or len(messages) < 2:
        return
    if not any(b.get("type") == "tool_result" for b in _blocks(last["content"])):
        return
    i = len(messages) - 2
    first = _blocks(messages[i]["content"])[0]
    if first.get("type") not in ("thinking", "redacted_thinking"):
        raise bad(f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                  f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must start with "
                  "a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                  "recommend you include thinking blocks from previous turns. To avoid this requirement, disable "
                  "`thinking`. Please consult our documentation at "
                  "https://docs.claude.com/en/docs/build-with-claude/extended-thinking")


def _breakpoints(body: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(prefix key, prefix tokens, ttl) of each cache_control breakpoint, in prompt order."""
    seen: list[Any] = []
    out: list[tuple[str, int, str]] = []
    system = body.get("system")
    blocks = list(body.get("tools") or []) + (system if isinstance(system, list) else [])
    for m in body.get("messages") or ():
        blocks += _blocks(m.get("content"))
    for b in blocks:
        plain = {k: v for k, v in b.items() if k != "cache_control"}
        seen.append(plain)
        control = b.get("cache_control")
        if isinstance(control, dict):
            text = json.dumps(seen, sort_keys=True, ensure_ascii=False)
            out.append((hashlib.sha256(text.encode()).hexdigest(), approx_tokens(text), control.get("ttl", "5m")))
    if len(out) > 4:
        raise bad(f"A maximum of 4 blocks with cache_control may be provided. Found {len(out)}.")
    for (_, _, before), (_, _, after) in itertools.pairwise(out):
        if before == "5m" and after == "1h":
            raise bad("a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. Note "
                      "that blocks are processed in the following order: `tools`, `system`, `messages`.")
    return out


def cache_usage(body: dict[str, Any], cache: dict[str, str]) -> tuple[int, int, int]:
    """(read, 5m written, 1h written) prompt tokens; new prefixes are remembered in ``cache``."""
    points = _breakpoints(body)
    read = 0
    start = 0
    for n in range(len(points) - 1, -1, -1):
        if points[n][0] in cache:
            read, start = points[n][1], n + 1
            break
    written = {"5m": 0, "1h": 0}
    before = read
    for key, tokens, ttl in points[start:]:
        written[ttl] += max(tokens - before, 0)
        before = tokens
        cache[key] = ttl
    return read, written["5m"], written["1h"]


# ---------------------------------------------------------------------------------- the mock


class AnthropicMock(ServerMock):
    """Anthropic API mock. api_keys: accepted x-api-key values (None accepts any non-empty key)."""

    def __init__(self, api_keys: tuple[str, ...] | list[str] | None = ("sk-ant-test",),
                 stream_style: StreamStyle = CHAOTIC, reply_template: str = "Echo: {text}") -> None:
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.stream_style = stream_style
        self.reply_template = reply_template
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []
        self.cache: dict[str, str] = {}  # prompt-cache prefixes written so far -> ttl
        self.sdk_problems: list[str] = []  # replies and events the SDK's types do not accept

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

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        return {"content-type": content_type, "request-id": "req_" + uuid.uuid4().hex[:24],
                "anthropic-organization-id": "00000000-0000-4000-8000-000000000000"}

    async def _error(self, resp: Response, err: ApiError, headers: dict[str, str] | None = None) -> None:
        body = {"type": "error", "error": {"type": err.type, "message": err.message},
                "request_id": "req_" + uuid.uuid4().hex[:24]}
        await resp.send(err.status, {**self._headers(), **(headers or {})}, encode_json(body))

    async def _handle(self, req: Request, resp: Response) -> None:
        if req.method != "POST" or req.path not in ("/v1/messages", "/v1/messages/count_tokens"):
            await self._error(resp, ApiError(404, "not_found_error", f"Not Found: {req.method} {req.path}"))
            return
        sc = self._take(req.path)
        if sc is not None and sc.kind in ("status", "rate_limit", "hang"):
            await self._scenario_response(req, resp, sc)
            return
        try:
            self._check_headers(req)
            body = req.json
            if not isinstance(body, dict):
                raise bad("There was an error parsing the body of your request as JSON")
            count_only = req.path.endswith("/count_tokens")
            if not count_only:
                problems = anthropic_request_problems(body)
                if problems:
                    raise bad("; ".join(problems[:5]))
            validate_messages(body, count_only)
            if not body["model"].startswith("claude-"):
                raise ApiError(404, "not_found_error", f"model: {body['model']}")
            if count_only:
                await resp.send(200, self._headers(), encode_json({"input_tokens": count_input_tokens(body)}))
                return
            blocks, stop_reason, stop_sequence = plan_reply(body, self.reply_template)
            read, five, hour = cache_usage(body, self.cache)
        except ApiError as err:
            await self._error(resp, err)
            return
        message = {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
                   "model": body["model"], "content": blocks, "stop_reason": stop_reason,
                   "stop_sequence": stop_sequence,
                   "usage": {"input_tokens": max(count_input_tokens(body) - read - five - hour, 1),
                             "cache_creation_input_tokens": five + hour, "cache_read_input_tokens": read,
                             "cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour},
                             "output_tokens": output_tokens(blocks), "service_tier": "standard"}}
        self.sdk_problems += anthropic_message_problems(message)
        if body.get("stream"):
            await self._stream(resp, message, sc)
        else:
            await resp.send(200, self._headers(), encode_json(message))

    def _check_headers(self, req: Request) -> None:
        key = req.headers.get("x-api-key", "")
        if not key:
            raise ApiError(401, "authentication_error", "x-api-key header is required")
        if self.api_keys is not None and key not in self.api_keys:
            raise ApiError(401, "authentication_error", "invalid x-api-key")
        if not req.headers.get("anthropic-version"):
            raise bad("anthropic-version: header is required")

    async def _scenario_response(self, req: Request, resp: Response, sc: Scenario) -> None:
        p = sc.params
        if sc.kind == "rate_limit":
            h = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                 "anthropic-ratelimit-requests-reset": "2026-11-02T10:00:02Z",
                 "anthropic-ratelimit-tokens-limit": "40000", "anthropic-ratelimit-tokens-remaining": "0",
                 "anthropic-ratelimit-tokens-reset": "2026-11-02T10:00:02Z",
                 "anthropic-ratelimit-input-tokens-limit": "30000",
                 "anthropic-ratelimit-output-tokens-limit": "8000"}
            if p["retry_after"] is not None:
                h["retry-after"] = str(p["retry_after"])
            await self._error(resp, ApiError(
                429, "rate_limit_error", "This request would exceed the rate limit for your organization of "
                "50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."), h)
        elif sc.kind == "status":
            code, body = p["code"], p["body"]
            if body == "default":
                kind = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                        403: "permission_error", 404: "not_found_error", 500: "api_error",
                        504: "timeout_error"}.get(code, "overloaded_error" if code == 529 else "api_error")
                message = "Overloaded" if kind == "overloaded_error" else f"mock {kind}"
                await self._error(resp, ApiError(code, kind, message), p["headers"])
                return
            payload = encode_json(body) if isinstance(body, (dict, list)) else body or b""
            ctype = p["content_type"] or ("application/json" if isinstance(body, (dict, list)) else "text/plain")
            await resp.send(code, {**self._headers(ctype), **p["headers"]}, payload)
        else:  # hang
            if p["send_headers"]:
                await resp.start(200, self._headers("text/event-stream; charset=utf-8"))
            await resp.wait_disconnected(p["max_seconds"])
            await resp.abort()

    def _events(self, message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**message["usage"], "output_tokens": 1}}
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start}),
                                                    ("ping", {"type": "ping"})]
        for i, block in enumerate(message["content"]):
            kind = block["type"]
            if kind == "text":
                first, deltas = {"type": "text", "text": ""}, [
                    {"type": "text_delta", "text": piece} for piece in _word_pieces(block["text"])]
            elif kind == "thinking":
                first = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [{"type": "thinking_delta", "thinking": p} for p in _word_pieces(block["thinking"])]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif kind == "redacted_thinking":  # arrives whole in its start event
                first, deltas = block, []
            else:
                first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                text = json.dumps(block["input"], ensure_ascii=False)
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *_pieces(text, 5)]]
            events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": first}))
            events += [("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d}) for d in deltas]
            events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
            events.append(("ping", {"type": "ping"}))
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": message["stop_reason"],
                                                   "stop_sequence": message["stop_sequence"]},
                                         "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
        events.append(("message_stop", {"type": "message_stop"}))
        for _, data in events:
            if data["type"] != "ping":
                self.sdk_problems += anthropic_event_problems(data)
        return events

    async def _stream(self, resp: Response, message: dict[str, Any], sc: Scenario | None) -> None:
        h = self._headers("text/event-stream; charset=utf-8")
        h["cache-control"] = "no-cache"
        await resp.start(200, h)
        sse = SSEWriter(resp, self.stream_style)
        for n, (name, data) in enumerate(self._events(message)):
            if sc is not None and n == sc.params["after"]:
                if sc.kind == "stream_error":
                    await sse.event({"type": "error", "error": {"type": sc.params["type"],
                                                                 "message": sc.params["message"]}}, event="error")
                    break
                if sc.kind == "truncate":
                    await sse.flush()
                    if sc.params["abort"]:
                        await resp.abort()
                        return
                    break
            await sse.event(data, event=name)
        await sse.close()


def _word_pieces(text: str) -> list[str]:
    """Split text into word-sized deltas that join back to the exact text."""
    return re.findall(r"\s*\S+|\s+$", text)
