"""POST /v1/chat/completions and POST /v1/completions for OpenAIMock.

Default (deterministic, request-dependent) behaviour:
- reply content = ``mock.reply_template.format(text=<last user/tool message text>)``;
- with ``tools`` and the last message from the user (or tool_choice "required"/a named function), a
  tool call to the first (or named) tool with arguments built from its JSON schema
  (see ``expected_tool_arguments``); with ``parallel_tool_calls: true`` and 2+ tools, two calls;
- ``response_format`` json_object / json_schema → a JSON object string;
- ``stop``, ``max_tokens`` / ``max_completion_tokens`` (4 characters per token), ``n``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .openai_common import ApiError, Ctx, ModelInfo, approx_tokens, new_id, now

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_ARG_SUFFIX = " café"  # appended to the first string argument so arguments carry a \u00e9 escape


@dataclass
class Planned:
    content: str | None = None
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # {"id","name","arguments"}
    finish_reason: str = "stop"
    refusal: str | None = None
    reasoning: str | None = None


# ----------------------------------------------------------------------------------------- helpers


def message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def _count_parts(content: Any, kind: str) -> int:
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") == kind) if isinstance(content, list) else 0


def fragments(text: str) -> list[str]:
    """Token-like pieces: words (split further every 5 characters) with their leading whitespace."""
    return re.findall(r"\s*\S{1,5}|\s+", text)


def argument_fragments(args: str) -> list[str]:
    """Split tool-call arguments every few characters, and right after the first `\\u00` escape start."""
    if not args:
        return []
    cuts = set(range(4, len(args), 4))
    esc = args.find("\\u")
    if esc >= 0:
        cuts -= set(range(esc + 1, esc + 7))
        cuts.add(esc + 4)  # "...\u00" | "e9..."
    cuts = sorted(c for c in cuts if 0 < c < len(args))
    return [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)])]


def sample_from_schema(schema: Any, text: str, state: dict[str, bool] | None = None) -> Any:
    """A value conforming to (a practical subset of) a JSON schema, derived from `text`. With a
    `state` dict, the first string produced gets TOOL_ARG_SUFFIX appended."""
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return sample_from_schema(schema[key][0], text, state)
    typ = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ == "object":
        return {k: sample_from_schema(v, text, state) for k, v in (schema.get("properties") or {}).items()}
    if typ == "array":
        return [sample_from_schema(schema.get("items", {}), text, state)]
    if typ == "integer":
        return len(text)
    if typ == "number":
        return len(text) + 0.5
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    if state is not None and not state.get("suffixed"):
        state["suffixed"] = True
        return text + TOOL_ARG_SUFFIX
    return text


def expected_tool_arguments(parameters: dict[str, Any] | None, text: str) -> dict[str, Any]:
    """The arguments (parsed) the mock generates for a tool with this `parameters` schema when the
    last user message is `text`."""
    return sample_from_schema(parameters or {"type": "object", "properties": {}}, text, {})


def tool_arguments_json(parameters: dict[str, Any] | None, text: str) -> str:
    return json.dumps(expected_tool_arguments(parameters, text), ensure_ascii=True, separators=(",", ":"))


def _call_id(seed: str, k: int) -> str:
    return "call_" + hashlib.sha256(f"{seed}:{k}".encode()).hexdigest()[:24]


def _usage(prompt: int, completion: int, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _apply_stop_and_limit(text: str, body: dict[str, Any], limit_key_order: tuple[str, ...],
                          default_limit: int | None = None) -> tuple[str, str]:
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in (stop or []) if s]
    cut = min((text.find(s) for s in stops if s in text), default=-1)
    if cut >= 0:
        return text[:cut], "stop"
    limit = next((body[k] for k in limit_key_order if body.get(k) is not None), default_limit)
    if isinstance(limit, int) and len(text) > limit * 4:
        return text[: limit * 4], "length"
    return text, "stop"


def _halve(text: str) -> str:
    return text[: max(1, len(text) // 2)] if text else text


def _check_model(ctx: Ctx, body: dict[str, Any]) -> ModelInfo:
    if not body.get("model"):
        raise ApiError(400, "you must provide a model parameter")
    return ctx.mock.lookup_model(body["model"])


# ----------------------------------------------------------------------------------------- validation


def _validate_chat(ctx: Ctx, body: dict[str, Any]) -> ModelInfo:
    if "messages" not in body:
        raise ApiError(400, "Missing required parameter: 'messages'.", param="messages",
                       code="missing_required_parameter")
    msgs = body["messages"]
    if not isinstance(msgs, list):
        raise ApiError(400, "Invalid type for 'messages': expected an array, but got a "
                       f"{type(msgs).__name__} instead.", param="messages", code="invalid_type")
    if not msgs:
        raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                       "but got an empty array instead.", param="messages", code="empty_array")
    model = _check_model(ctx, body)
    if model.kind != "chat":
        raise ApiError(404, "This is not a chat model and thus not supported in the v1/chat/completions "
                       "endpoint. Did you mean to use v1/completions?", param="model")
    pending: set[str] | None = None
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"Invalid value: '{m.get('role') if isinstance(m, dict) else m}'. Supported "
                           "values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                           param=f"messages[{i}].role", code="invalid_value")
        role = m["role"]
        if role == "tool":
            if pending is None:
                raise ApiError(400, "Invalid parameter: messages with role 'tool' must be a response to a "
                               "preceeding message with 'tool_calls'.", param=f"messages.[{i}].role")
            if m.get("tool_call_id") not in pending:
                raise ApiError(400, f"Invalid parameter: 'tool_call_id' of '{m.get('tool_call_id')}' not found "
                               "in 'tool_calls' of previous message.", param=f"messages.[{i}].tool_call_id")
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            raise ApiError(400, "An assistant message with 'tool_calls' must be followed by tool messages "
                           "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                           f"response messages: {', '.join(sorted(pending))}", param=f"messages.[{i - 1}].role")
        pending = None
        if role == "assistant" and m.get("tool_calls"):
            pending = {call.get("id") for call in m["tool_calls"]}
        elif role != "assistant" and "content" not in m:
            raise ApiError(400, f"Missing required parameter: 'messages[{i}].content'.",
                           param=f"messages[{i}].content", code="missing_required_parameter")
    if pending:
        raise ApiError(400, "An assistant message with 'tool_calls' must be followed by tool messages "
                       "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                       f"response messages: {', '.join(sorted(pending))}", param=f"messages.[{len(msgs) - 1}].role")
    tools = body.get("tools")
    for i, t in enumerate(tools or []):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or t.get("type") != "function":
            raise ApiError(400, f"Missing required parameter: 'tools[{i}].function'.", param=f"tools[{i}].function",
                           code="missing_required_parameter")
        if not _NAME_RE.match(str(fn.get("name", ""))):
            raise ApiError(400, f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a "
                           "string that matches the pattern '^[a-zA-Z0-9_-]+$'.", param=f"tools[{i}].function.name",
                           code="invalid_value")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise ApiError(400, f"Invalid type for 'tools[{i}].function.parameters': expected an object, but got "
                           f"a {type(params).__name__} instead.", param=f"tools[{i}].function.parameters",
                           code="invalid_type")
        if params is not None and params.get("type") != "object":
            raise ApiError(400, f"Invalid schema for function '{fn['name']}': schema must be a JSON Schema of "
                           f"'type: \"object\"', got 'type: \"{params.get('type')}\"'.",
                           param=f"tools[{i}].function.parameters", code="invalid_function_parameters")
    tc = body.get("tool_choice")
    if tc is not None and not tools:
        raise ApiError(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                       "specified.", param="tool_choice")
    if isinstance(tc, dict):
        name = (tc.get("function") or {}).get("name")
        if name not in [t["function"]["name"] for t in tools]:
            raise ApiError(400, f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
                           param="tool_choice")
    rf = body.get("response_format")
    if rf is not None:
        kind = rf.get("type") if isinstance(rf, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise ApiError(400, f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', "
                           "and 'text'.", param="response_format.type", code="invalid_value")
        if kind == "json_schema":
            js = rf.get("json_schema")
            for key, path in ((js, "response_format.json_schema"),
                              (js and js.get("name"), "response_format.json_schema.name"),
                              (js and js.get("schema"), "response_format.json_schema.schema")):
                if not key:
                    raise ApiError(400, f"Missing required parameter: '{path}'.", param=path,
                                   code="missing_required_parameter")
        if kind == "json_object" and "json" not in json.dumps(msgs).lower():
            raise ApiError(400, "'messages' must contain the word 'json' in some form, to use 'response_format' "
                           "of type 'json_object'.", param="messages")
    _validate_common(body, model)
    return model


def _validate_common(body: dict[str, Any], model: ModelInfo) -> None:
    if body.get("stream_options") is not None and not body.get("stream"):
        raise ApiError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                       param="stream_options")
    if model.reasoning and body.get("max_tokens") is not None:
        raise ApiError(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                       "'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
    for key, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1), ("n", 1, 128), ("presence_penalty", -2, 2),
                        ("frequency_penalty", -2, 2)):
        v = body.get(key)
        if v is not None and not (isinstance(v, (int, float)) and lo <= v <= hi):
            raise ApiError(400, f"Invalid '{key}': expected a value between {lo} and {hi}, but got {v} instead.",
                           param=key, code="invalid_value" if key != "n" else "integer_above_max_value")


# ----------------------------------------------------------------------------------------- planning


def _plan_chat(ctx: Ctx, body: dict[str, Any], seed: str) -> Planned:
    msgs = body["messages"]
    last = msgs[-1]
    text = message_text(last.get("content"))
    images, audios = _count_parts(last.get("content"), "image_url"), _count_parts(last.get("content"), "input_audio")
    if images:
        text += f" [images: {images}]"
    if audios:
        text += f" [audio: {audios}]"
    sc = ctx.sc.get("reply")
    if sc is not None:
        p = Planned(content=sc["content"], refusal=sc["refusal"], reasoning=sc["reasoning_content"])
        for k, call in enumerate(sc["tool_calls"] or []):
            args = call.get("arguments", "{}")
            args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=True, separators=(",", ":"))
            p.tool_calls.append({"id": call.get("id") or _call_id(seed, k), "name": call["name"], "arguments": args})
        p.finish_reason = sc["finish_reason"] or ("tool_calls" if p.tool_calls else "stop")
        return p
    tools = body.get("tools") or []
    tc = body.get("tool_choice")
    wants_call = tools and tc != "none" and (last["role"] == "user" or tc == "required" or isinstance(tc, dict))
    if wants_call:
        chosen = [t["function"] for t in tools]
        if isinstance(tc, dict):
            chosen = [f for f in chosen if f["name"] == tc["function"]["name"]]
        elif not body.get("parallel_tool_calls"):
            chosen = chosen[:1]
        p = Planned(finish_reason="tool_calls")
        for k, fn in enumerate(chosen[:2]):
            p.tool_calls.append({"id": _call_id(seed, k), "name": fn["name"],
                                 "arguments": tool_arguments_json(fn.get("parameters"), text)})
        return p
    if last["role"] == "tool":
        text = f"Tool result received: {text}"
    elif last["role"] != "user":
        text = "Hello! How can I help you today?"
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        content = json.dumps(sample_from_schema(rf["json_schema"]["schema"], text), ensure_ascii=False)
    elif rf.get("type") == "json_object":
        content = json.dumps({"reply": ctx.mock.reply_template.format(text=text)}, ensure_ascii=False)
    else:
        content = ctx.mock.reply_template.format(text=text) if last["role"] == "user" else text
    content, finish = _apply_stop_and_limit(content, body, ("max_completion_tokens", "max_tokens"))
    return Planned(content=content, finish_reason=finish)


def _apply_finish_scenarios(ctx: Ctx, p: Planned) -> None:
    if "finish_length" in ctx.sc:
        if p.tool_calls:
            last = p.tool_calls[-1]
            last["arguments"] = _halve(last["arguments"])
        else:
            p.content = _halve(p.content or "")
        p.finish_reason = "length"
    if "content_filter" in ctx.sc:
        p.content, p.tool_calls, p.finish_reason = _halve(p.content or ""), [], "content_filter"


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 3
    for m in body["messages"]:
        total += 4 + approx_tokens(message_text(m.get("content"))) + 85 * _count_parts(m.get("content"), "image_url")
        for tc in m.get("tool_calls") or []:
            total += approx_tokens(json.dumps(tc.get("function", {})))
    if body.get("tools"):
        total += approx_tokens(json.dumps(body["tools"]))
    return total


def _completion_tokens(p: Planned) -> int:
    n = approx_tokens(p.content or "") + approx_tokens(p.refusal or "") + approx_tokens(p.reasoning or "")
    n += sum(approx_tokens(c["name"] + c["arguments"]) + 3 for c in p.tool_calls)
    return max(n, 1)


def _logprobs(frag: str, body: dict[str, Any]) -> dict[str, Any]:
    top = [{"token": frag, "logprob": -0.01, "bytes": list(frag.encode())}] * int(body.get("top_logprobs") or 0)
    return {"token": frag, "logprob": -0.01, "bytes": list(frag.encode()), "top_logprobs": top}


def _choice_deltas(p: Planned, body: dict[str, Any]) -> list[tuple[dict[str, Any], str | None, Any]]:
    """(delta, finish_reason, logprobs) for one choice, in stream order."""
    want_lp = bool(body.get("logprobs"))
    out: list[tuple[dict[str, Any], str | None, Any]] = [
        ({"role": "assistant", "content": "" if p.content is not None else None, "refusal": None}, None, None)]
    for frag in fragments(p.reasoning or ""):
        out.append(({"reasoning_content": frag}, None, None))
    for frag in fragments(p.content or ""):
        out.append(({"content": frag}, None, {"content": [_logprobs(frag, body)], "refusal": None} if want_lp else None))
    for frag in fragments(p.refusal or ""):
        out.append(({"refusal": frag}, None, None))
    per_call = []
    for k, c in enumerate(p.tool_calls):
        head = {"index": k, "id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": ""}}
        per_call.append([head] + [{"index": k, "function": {"arguments": f}} for f in argument_fragments(c["arguments"])])
    for j in range(max((len(x) for x in per_call), default=0)):  # interleave the calls
        for frs in per_call:
            if j < len(frs):
                out.append(({"tool_calls": [frs[j]]}, None, None))
    out.append(({}, p.finish_reason, None))
    return out


# ----------------------------------------------------------------------------------------- handlers


async def chat_completions(ctx: Ctx) -> None:
    body = ctx.req.json
    model = _validate_chat(ctx, body)
    seed = hashlib.sha256(ctx.req.body).hexdigest()
    n = int(body.get("n") or 1)
    plans = []
    for _ in range(n):
        p = _plan_chat(ctx, body, seed)
        _apply_finish_scenarios(ctx, p)
        plans.append(p)
    reasoning = 8 * n if model.reasoning else 0
    usage = _usage(_prompt_tokens(body), sum(_completion_tokens(p) for p in plans) + reasoning, reasoning)
    reply_sc = ctx.sc.get("reply") or {}
    if isinstance(reply_sc.get("usage"), dict):
        usage = reply_sc["usage"]
    omit_usage = reply_sc.get("usage") is False
    cid, created, fp = new_id("chatcmpl-"), now(), "fp_" + seed[:10]
    model_name = model.snapshot or model.id
    if not body.get("stream"):
        choices = []
        for i, p in enumerate(plans):
            msg: dict[str, Any] = {"role": "assistant", "content": p.content, "refusal": p.refusal, "annotations": []}
            if p.reasoning is not None:
                msg["reasoning_content"] = p.reasoning
            if p.tool_calls:
                msg["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["name"], "arguments": c["arguments"]}} for c in p.tool_calls]
            lp = ({"content": [_logprobs(f, body) for f in fragments(p.content or "")], "refusal": None}
                  if body.get("logprobs") else None)
            choices.append({"index": i, "message": msg, "logprobs": lp, "finish_reason": p.finish_reason})
        out = {"id": cid, "object": "chat.completion", "created": created, "model": model_name, "choices": choices,
               "usage": usage, "service_tier": "default", "system_fingerprint": fp}
        if omit_usage:
            del out["usage"]
        await ctx.send_json(out)
        return
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not omit_usage
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_name,
            "service_tier": "default", "system_fingerprint": fp}
    chunks: list[dict[str, Any]] = []
    if "first_chunk_empty_choices" in ctx.sc:
        chunks.append({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                       "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
                           k: {"filtered": False, "severity": "safe"}
                           for k in ("hate", "self_harm", "sexual", "violence")}}]})
    per_choice = [_choice_deltas(p, body) for p in plans]
    for j in range(max(len(x) for x in per_choice)):
        for i, deltas in enumerate(per_choice):
            if j < len(deltas):
                delta, finish, lp = deltas[j]
                chunk = {**base, "choices": [{"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}]}
                if include_usage:
                    chunk["usage"] = None
                chunks.append(chunk)
    if include_usage:
        chunks.append({**base, "choices": [], "usage": usage})
    await ctx.stream(chunks)


async def completions(ctx: Ctx) -> None:
    body = ctx.req.json
    model = _check_model(ctx, body)
    if model.kind != "completion":
        raise ApiError(404, "This is a chat model and not supported in the v1/completions endpoint. Did you mean "
                       "to use v1/chat/completions?", param="model")
    _validate_common(body, model)
    prompt = body.get("prompt", "<|endoftext|>")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif prompt and all(isinstance(x, int) for x in prompt):
        prompts = [" ".join(map(str, prompt))]
    elif prompt and all(isinstance(x, list) for x in prompt):
        prompts = [" ".join(map(str, x)) for x in prompt]
    elif prompt and all(isinstance(x, str) for x in prompt):
        prompts = list(prompt)
    else:
        raise ApiError(400, "Invalid 'prompt': expected a string, an array of strings, or an array of tokens.",
                       param="prompt", code="invalid_value")
    n = int(body.get("n") or 1)
    results: list[tuple[str, str]] = []
    for pr in prompts:
        text, finish = _apply_stop_and_limit(ctx.mock.completion_template.format(prompt=pr), body,
                                             ("max_tokens",), default_limit=16)
        p = Planned(content=text, finish_reason=finish)
        _apply_finish_scenarios(ctx, p)
        results += [((pr if body.get("echo") else "") + (p.content or ""), p.finish_reason)] * n
    usage = {"prompt_tokens": sum(approx_tokens(pr) for pr in prompts),
             "completion_tokens": sum(max(1, approx_tokens(t)) for t, _ in results)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    cid, created, model_name = new_id("cmpl-"), now(), model.snapshot or model.id
    if not body.get("stream"):
        await ctx.send_json({"id": cid, "object": "text_completion", "created": created, "model": model_name,
                             "choices": [{"text": t, "index": i, "logprobs": None, "finish_reason": f}
                                         for i, (t, f) in enumerate(results)], "usage": usage})
        return
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    chunks = []
    for i, (t, f) in enumerate(results):
        for frag, fin in [(x, None) for x in fragments(t)] + [("", f)]:
            chunk = {"id": cid, "object": "text_completion", "created": created, "model": model_name,
                     "choices": [{"text": frag, "index": i, "logprobs": None, "finish_reason": fin}]}
            if include_usage:
                chunk["usage"] = None
            chunks.append(chunk)
    if include_usage:
        chunks.append({"id": cid, "object": "text_completion", "created": created, "model": model_name,
                       "choices": [], "usage": usage})
    await ctx.stream(chunks)
