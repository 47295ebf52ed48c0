"""``POST /v1/responses`` of the OpenAI mock: the Responses API, unary and streaming.

Every request body is validated against ``CreateResponse`` of the official OpenAPI document
(400 ``invalid_request_error`` naming the violations), every reply against ``Response`` and every
stream event against its own event schema (violations collect in ``mock.responses.problems``).

Replies are deterministic: after ``function_call_output`` items "Tool results: <outputs>"; with
tools one ``function_call`` per tool (at most two; ``call_id`` call_…, item id fc_…); with a
``json_schema`` text format a JSON object of its properties; otherwise "Echo: <last user text>".
Reasoning models (``ModelInfo.reasoning``) put a ``reasoning`` item first, with
``encrypted_content`` when the request includes ``reasoning.encrypted_content`` (and a summary
when ``reasoning.summary`` is set). Statelessness is checked as OpenAI checks it with
``store: false``: a reasoning item sent back needs its ``encrypted_content`` exactly as issued,
and a function call the mock issued after a reasoning item must come back preceded by that item.
Usage: ``input_tokens`` with ``cached_tokens`` for the part of the input an earlier request of
the same model began with (the prompt cache), ``output_tokens`` with ``reasoning_tokens``.
Streams are typed SSE events (``event:`` + ``data`` with ``type`` and ``sequence_number``):
response.created/in_progress, output_item.added, deltas, output_item.done, response.completed.
A reply longer than ``max_output_tokens`` is cut and ends ``incomplete`` (reason
``max_output_tokens``); the ``stream_error_after`` and ``truncate_after`` scenarios send an
``error`` event after that many events, or end the body there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .openai_common import ApiError, approx_tokens, new_id
from .specs import openai_problems
from .sse import SSEWriter

if TYPE_CHECKING:
    from .openai_common import Ctx

REASONING_TOKENS = 12
_KEY = b"mock-openai-reasoning"
_EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent", "response.in_progress": "ResponseInProgressEvent",
    "response.completed": "ResponseCompletedEvent", "response.incomplete": "ResponseIncompleteEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent", "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.reasoning_summary_part.added": "ResponseReasoningSummaryPartAddedEvent",
    "response.reasoning_summary_part.done": "ResponseReasoningSummaryPartDoneEvent",
    "response.reasoning_summary_text.delta": "ResponseReasoningSummaryTextDeltaEvent",
    "response.reasoning_summary_text.done": "ResponseReasoningSummaryTextDoneEvent",
}


@dataclass
class ResponsesState:
    """What the mock remembers between requests (OpenAI keeps nothing with store=false; these
    stand for what its encryption and prompt cache do)."""

    follows: dict[str, str] = field(default_factory=dict)  # fc_ id -> the rs_ id issued before it
    prefixes: dict[str, list[str]] = field(default_factory=dict)  # model -> serialized input items seen
    problems: list[str] = field(default_factory=list)


def encrypted(rs_id: str) -> str:
    return "gAAAAB" + base64.urlsafe_b64encode(hmac.new(_KEY, rs_id.encode(), hashlib.sha256).digest()).decode()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(str(p.get("text") or "") for p in content or () if isinstance(p, dict)
                    and p.get("type") in ("input_text", "output_text"))


def _check_state(items: list[dict[str, Any]], state: ResponsesState) -> None:
    given: set[str] = set()
    for n, item in enumerate(items):
        kind = item.get("type")
        if kind == "reasoning":
            rs = str(item.get("id") or "")
            if not item.get("encrypted_content"):
                raise ApiError(404, f"Item with id '{rs}' not found. Items are not persisted when `store` is set "
                               "to false. Try again with `store` set to true, or remove this item from your input.",
                               param="input")
            if not hmac.compare_digest(str(item["encrypted_content"]), encrypted(rs)):
                raise ApiError(400, f"The encrypted content for item {rs} could not be verified.",
                               param=f"input[{n}].encrypted_content", code="invalid_encrypted_content")
            given.add(rs)
        elif kind == "function_call":
            rs = state.follows.get(str(item.get("id") or ""))
            if rs is not None and rs not in given:
                raise ApiError(400, f"Item '{item['id']}' of type 'function_call' was provided without its "
                               f"required 'reasoning' item: '{rs}'.", param="input")


def _plan(body: dict[str, Any], items: list[dict[str, Any]], template: str) -> tuple[str, list[dict[str, Any]]]:
    """(text, function calls) of the reply."""
    outputs = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        outputs.insert(0, str(item.get("output")))
    if outputs:
        return "Tool results: " + "; ".join(outputs), []
    users = [i for i in items if i.get("role") == "user"]
    text = _text(users[-1].get("content")) if users else ""
    tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, dict):
        tools = [t for t in tools if t["name"] == choice.get("name")]
    if tools and choice != "none":
        return "", [{"name": t["name"], "arguments": json.dumps(
            {k: text for k in (t.get("parameters") or {}).get("properties") or {}})} for t in tools[:2]]
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps({k: text for k in (fmt.get("schema") or {}).get("properties") or {}}), []
    return template.format(text=text), []


def _cached(state: ResponsesState, model: str, items: list[dict[str, Any]]) -> int:
    serialized = [json.dumps(i, sort_keys=True) for i in items]
    seen = state.prefixes.get(model, [])
    n = 0
    while n < min(len(seen), len(serialized)) and seen[n] == serialized[n]:
        n += 1
    state.prefixes[model] = serialized
    return approx_tokens("".join(serialized[:n])) if n else 0


async def responses(ctx: Ctx) -> None:
    body = ctx.req.json
    problems = openai_problems(body, "CreateResponse")
    if problems:
        raise ApiError(400, "Invalid request: " + "; ".join(problems[:3]), param="body")
    info = ctx.mock.lookup_model(str(body["model"]))
    state: ResponsesState = ctx.mock.responses
    raw = body.get("input")
    items = [{"type": "message", "role": "user", "content": raw}] if isinstance(raw, str) else list(raw or [])
    items = [{"type": "message", **i} if "role" in i and "type" not in i else i for i in items]
    if body.get("store") is False:
        _check_state(items, state)
    text, calls = _plan(body, items, ctx.mock.reply_template)
    output: list[dict[str, Any]] = []
    rs_id = ""
    if info.reasoning:
        rs_id = new_id("rs_", 40)
        item: dict[str, Any] = {"type": "reasoning", "id": rs_id, "summary": []}
        if (body.get("reasoning") or {}).get("summary"):
            item["summary"] = [{"type": "summary_text", "text": "**Planning** I will answer the user."}]
        if "reasoning.encrypted_content" in (body.get("include") or ()):
            item["encrypted_content"] = encrypted(rs_id)
        output.append(item)
    if text:
        output.append({"type": "message", "id": new_id("msg_", 40), "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
    for call in calls:
        fc = new_id("fc_", 40)
        output.append({"type": "function_call", "id": fc, "call_id": new_id("call_", 24), "name": call["name"],
                       "arguments": call["arguments"], "status": "completed"})
        if rs_id:
            state.follows[fc] = rs_id
    prompt = approx_tokens(json.dumps([body.get("instructions"), items, body.get("tools")]))
    produced = approx_tokens(text) + sum(approx_tokens(c["arguments"]) for c in calls)
    reasoning = REASONING_TOKENS if info.reasoning else 0
    status, incomplete = "completed", None
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and produced + reasoning > limit and text:
        kept = text[:max((limit - reasoning) * 4, 0)]
        output[-1]["content"][0]["text"], produced = kept, approx_tokens(kept)
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    response = {
        "id": new_id("resp_", 40), "object": "response", "created_at": int(time.time()), "status": status,
        "error": None, "incomplete_details": incomplete, "instructions": body.get("instructions"),
        "model": info.snapshot or info.id, "output": output, "parallel_tool_calls": True, "metadata": {},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0), "store": body.get("store"),
        "usage": {"input_tokens": prompt, "input_tokens_details": {
                      "cached_tokens": _cached(state, body["model"], items), "cache_write_tokens": 0},
                  "output_tokens": produced + reasoning, "output_tokens_details": {"reasoning_tokens": reasoning},
                  "total_tokens": prompt + produced + reasoning},
    }
    state.problems += [f"Response: {p}" for p in openai_problems(response, "Response")]
    if body.get("stream"):
        await _stream(ctx, response)
    else:
        await ctx.send_json(response)


def _events(response: dict[str, Any]) -> list[dict[str, Any]]:
    shell = {**{k: v for k, v in response.items() if k != "usage"}, "status": "in_progress", "output": []}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": shell},
                                    {"type": "response.in_progress", "response": shell}]
    for n, item in enumerate(response["output"]):
        kind = item["type"]
        where = {"item_id": item["id"], "output_index": n}
        if kind == "reasoning":
            events.append({"type": "response.output_item.added", "output_index": n,
                           "item": {"type": "reasoning", "id": item["id"], "summary": []}})
            for s, part in enumerate(item["summary"]):
                events.append({"type": "response.reasoning_summary_part.added", **where, "summary_index": s,
                               "part": {"type": "summary_text", "text": ""}})
                for piece in _pieces(part["text"]):
                    events.append({"type": "response.reasoning_summary_text.delta", **where, "summary_index": s,
                                   "delta": piece})
                events.append({"type": "response.reasoning_summary_text.done", **where, "summary_index": s,
                               "text": part["text"]})
                events.append({"type": "response.reasoning_summary_part.done", **where, "summary_index": s,
                               "part": part})
        elif kind == "message":
            text = item["content"][0]["text"]
            events.append({"type": "response.output_item.added", "output_index": n,
                           "item": {**item, "status": "in_progress", "content": []}})
            events.append({"type": "response.content_part.added", **where, "content_index": 0,
                           "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
            for piece in _pieces(text):
                events.append({"type": "response.output_text.delta", **where, "content_index": 0, "delta": piece,
                               "logprobs": []})
            events.append({"type": "response.output_text.done", **where, "content_index": 0, "text": text,
                           "logprobs": []})
            events.append({"type": "response.content_part.done", **where, "content_index": 0,
                           "part": item["content"][0]})
        else:
            events.append({"type": "response.output_item.added", "output_index": n,
                           "item": {**item, "arguments": "", "status": "in_progress"}})
            for piece in _pieces(item["arguments"], 6):
                events.append({"type": "response.function_call_arguments.delta", **where, "delta": piece})
            events.append({"type": "response.function_call_arguments.done", **where, "name": item["name"],
                           "arguments": item["arguments"]})
        events.append({"type": "response.output_item.done", "output_index": n, "item": item})
    events.append({"type": f"response.{response['status']}", "response": response})
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
    return events


def _pieces(text: str, size: int = 4) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


async def _stream(ctx: Ctx, response: dict[str, Any]) -> None:
    h = ctx.base_headers("text/event-stream; charset=utf-8")
    await ctx.resp.start(200, h)
    sse = SSEWriter(ctx.resp, ctx.style())
    state: ResponsesState = ctx.mock.responses
    err, cut = ctx.sc.get("stream_error_after"), ctx.sc.get("truncate_after")
    for n, event in enumerate(_events(response)):
        if err is not None and n == err["n"]:
            event = {"type": "error", "code": err["code"] or err["type"], "message": err["message"], "param": None,
                     "sequence_number": n}
            state.problems += [f"error: {p}" for p in openai_problems(event, "ResponseErrorEvent")]
            await sse.event(event, event="error")
            break
        if cut is not None and n == cut["n"]:
            break
        state.problems += [f"{event['type']}: {p}" for p in openai_problems(event, _EVENT_SCHEMAS[event["type"]])]
        await sse.event(event, event=event["type"])
    await sse.close()
