"""Request checks and deterministic replies of the Cohere mock (v2 chat, embed, rerank).

What the real API checks and the mock reproduces: unknown top-level fields are rejected
(``invalid request: unknown field: parameter top_p is not a valid field``); ``p`` in
[0.01, 0.99], ``k`` in [0, 500]; message roles and shapes; every tool call answered by a tool
message with its ``tool_call_id`` before the next turn; ``tool_choice`` only with tools;
``thinking`` only on reasoning models; ``input_type`` required for embeddings of v3+ models;
at most 96 texts per embed; ``output_dimension`` only on Embed v4.

Reply rules (chat): "Echo: <last user text>"; with tools (and ``tool_choice`` not NONE), a
``tool_plan`` sentence then one call per tool (at most two) whose arguments are
:func:`expected_tool_input`, finish ``TOOL_CALL``; after tool results, "Tool results: ...";
on a reasoning model with thinking on, a thinking part first; ``max_tokens`` counts words.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

STRING_SUFFIX = " — café"  # non-ASCII in tool arguments: fragments cut through UTF-8 characters

CHAT_FIELDS = {
    "model", "messages", "stream", "tools", "documents", "citation_options", "response_format", "safety_mode",
    "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty", "presence_penalty", "k", "p",
    "return_prompt", "logprobs", "tool_choice", "strict_tools", "thinking", "priority",
}
EMBED_FIELDS = {"model", "texts", "images", "inputs", "input_type", "embedding_types", "output_dimension",
                "max_tokens", "truncate", "priority"}
RERANK_FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority"}


@dataclass(frozen=True)
class EmbedModel:
    name: str
    dims: int
    needs_input_type: bool = True
    dimensions: tuple[int, ...] = ()


EMBED_MODELS = {m.name: m for m in (
    EmbedModel("embed-v4.0", 1536, dimensions=(256, 512, 1024, 1536)),
    EmbedModel("embed-english-v3.0", 1024), EmbedModel("embed-multilingual-v3.0", 1024),
    EmbedModel("embed-english-light-v3.0", 384), EmbedModel("embed-multilingual-light-v3.0", 384),
    EmbedModel("embed-english-v2.0", 4096, needs_input_type=False),
)}
RERANK_MODELS = {"rerank-v3.5", "rerank-english-v3.0", "rerank-multilingual-v3.0", "rerank-v4.0-pro",
                 "rerank-v4.0-fast"}
REASONING_MODELS = {"command-a-reasoning-08-2025"}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def invalid(message: str) -> ApiError:
    return ApiError(400, f"invalid request: {message}")


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def prompt_tokens(body: dict[str, Any]) -> int:
    """Billed input tokens of a chat request (the mock's own count)."""
    payload = {"messages": body.get("messages"), "tools": body.get("tools")}
    return 2 + approx_tokens(json.dumps(payload, sort_keys=True, ensure_ascii=False))


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
        else:
            out[name] = [] if kind == "array" else {}
    return out


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [p.get("text", "") for p in content or () if isinstance(p, dict) and p.get("type") == "text"]


# ---------------------------------------------------------------------------------- chat


def _check_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise invalid(f"unknown field: parameter {key} is not a valid field")


def _check_content(i: int, role: str, content: Any) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(f"messages[{i}].content must be a string or a list of content blocks")
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image_url" and role == "user":
            url = (part.get("image_url") or {}).get("url") or ""
            if not url.startswith(("data:image/", "http://", "https://")):
                raise invalid(f"messages[{i}]: image_url must be a data URL or an http(s) URL")
        elif kind not in ("text", "document", "thinking"):
            raise invalid(f"messages[{i}]: unsupported content type {kind!r}")


def validate_chat(body: dict[str, Any]) -> None:
    _check_unknown(body, CHAT_FIELDS)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must contain at least one message")
    pending: set[str] = set()
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "user", "assistant", "tool"):
            raise invalid(f"messages[{i}].role must be one of system, user, assistant, tool")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if call_id not in pending:
                raise invalid(f"messages[{i}]: tool_call_id {call_id!r} does not match a tool call of the "
                              "previous assistant message")
            pending.discard(call_id)
            continue
        if pending:
            raise invalid(f"messages[{i}]: tool calls {sorted(pending)} have no tool results")
        if role == "assistant":
            calls = m.get("tool_calls") or []
            if not calls and not m.get("content"):
                raise invalid(f"messages[{i}]: an assistant message needs content or tool_calls")
            for call in calls:
                fn = call.get("function") or {}
                if not call.get("id") or not fn.get("name") or not isinstance(fn.get("arguments"), str):
                    raise invalid(f"messages[{i}].tool_calls: id, function.name and string arguments are required")
                json.loads(fn["arguments"])
                pending.add(call["id"])
        if "content" in m:
            _check_content(i, role, m["content"])
    if pending:
        raise invalid(f"tool calls {sorted(pending)} have no tool results")
    if messages[-1]["role"] not in ("user", "tool"):
        raise invalid("the last message must be a user or a tool message")
    p, k = body.get("p"), body.get("k")
    if p is not None and not 0.01 <= p <= 0.99:
        raise invalid("p must be between 0.01 and 0.99")
    if k is not None and (not isinstance(k, int) or not 0 <= k <= 500):
        raise invalid("k must be an integer between 0 and 500")
    if "max_tokens" in body and (not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1):
        raise invalid("max_tokens must be a positive integer")
    choice = body.get("tool_choice")
    if choice is not None:
        if choice not in ("REQUIRED", "NONE"):
            raise invalid("tool_choice must be REQUIRED or NONE")
        if not body.get("tools"):
            raise invalid("tool_choice requires tools")
    for tool in body.get("tools") or ():
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            raise invalid("tools must be function tools with a name")
    thinking = body.get("thinking")
    if thinking is not None:
        if body["model"] not in REASONING_MODELS:
            raise invalid(f"thinking is not supported for model {body['model']}")
        if thinking.get("type") not in ("enabled", "disabled"):
            raise invalid("thinking.type must be enabled or disabled")
    fmt = body.get("response_format")
    if fmt is not None and fmt.get("type") not in ("text", "json_object"):
        raise invalid("response_format.type must be text or json_object")


def plan_reply(body: dict[str, Any], template: str) -> dict[str, Any]:
    """``{"thinking", "text", "tool_plan", "tool_calls", "finish_reason"}`` for a valid request."""
    messages = body["messages"]
    last_user = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
    user_text = " ".join(t for t in _texts(last_user.get("content")) if t)
    out: dict[str, Any] = {"thinking": "", "text": "", "tool_plan": "", "tool_calls": [], "finish_reason": "COMPLETE"}
    thinking = body.get("thinking") or {}
    if body["model"] in REASONING_MODELS and thinking.get("type", "enabled") == "enabled":
        out["thinking"] = f"The user wrote: {user_text}. Reply."
    if messages[-1]["role"] == "tool":
        results = []
        for m in reversed(messages):
            if m["role"] != "tool":
                break
            c = m.get("content")
            results.insert(0, c if isinstance(c, str) else " ".join(_texts(c)))
        out["text"] = "Tool results: " + "; ".join(results)
        return out
    tools = body.get("tools") or []
    if tools and body.get("tool_choice") != "NONE":
        chosen = tools[:2]
        out["tool_plan"] = "I will call " + " and ".join(t["function"]["name"] for t in chosen) + "."
        for n, tool in enumerate(chosen):
            fn = tool["function"]
            out["tool_calls"].append({
                "id": f"{fn['name']}_{hashlib.sha1(f'{user_text}{n}'.encode()).hexdigest()[:8]}", "type": "function",
                "function": {"name": fn["name"], "arguments": json.dumps(
                    expected_tool_input(fn.get("parameters") or {}, user_text), ensure_ascii=False)}})
        out["finish_reason"] = "TOOL_CALL"
        return out
    text = template.format(text=user_text)
    if (body.get("response_format") or {}).get("type") == "json_object":
        text = json.dumps({"answer": text}, ensure_ascii=False)
    for stop in body.get("stop_sequences") or ():
        if stop and stop in text:
            out.update(text=text[:text.index(stop)], finish_reason="STOP_SEQUENCE")
            return out
    words = text.split(" ")
    if "max_tokens" in body and len(words) > body["max_tokens"]:
        out.update(text=" ".join(words[:body["max_tokens"]]), finish_reason="MAX_TOKENS")
        return out
    out["text"] = text
    return out


def output_tokens(reply: dict[str, Any]) -> int:
    total = len(reply["text"].split()) + len(reply["tool_plan"].split()) + len(reply["thinking"].split())
    return total + sum(1 + approx_tokens(c["function"]["arguments"]) for c in reply["tool_calls"])


def usage(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    billed_in, billed_out = prompt_tokens(body), output_tokens(reply)
    return {"billed_units": {"input_tokens": billed_in, "output_tokens": billed_out},
            "tokens": {"input_tokens": billed_in + 7, "output_tokens": billed_out + 1}, "cached_tokens": 0}


def chat_message(reply: dict[str, Any]) -> dict[str, Any]:
    content = []
    if reply["thinking"]:
        content.append({"type": "thinking", "thinking": reply["thinking"]})
    if reply["text"]:
        content.append({"type": "text", "text": reply["text"]})
    message: dict[str, Any] = {"role": "assistant"}
    if content:
        message["content"] = content
    if reply["tool_plan"]:
        message["tool_plan"] = reply["tool_plan"]
    if reply["tool_calls"]:
        message["tool_calls"] = reply["tool_calls"]
    return message


def word_pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


def pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


# ---------------------------------------------------------------------------------- embed / rerank


def expected_embedding(model: str, input_type: str, text: str, dims: int | None = None) -> list[float]:
    """The mock's unit vector for one text (depends on model, input_type and text)."""
    info = EMBED_MODELS[model]
    n = dims or info.dims
    seed = hashlib.sha256(f"{model}|{input_type}|{text}".encode()).digest()
    raw = [((seed[i % 32] ^ (i * 31 % 251)) - 127.5) / 127.5 for i in range(n)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def encode_embedding(vector: list[float], kind: str) -> Any:
    if kind == "float":
        return vector
    if kind == "int8":
        return [max(-128, min(127, round(x * 127))) for x in vector]
    if kind == "uint8":
        return [max(0, min(255, round((x + 1) * 127.5))) for x in vector]
    if kind in ("binary", "ubinary"):
        bits = [1 if x > 0 else 0 for x in vector]
        packed = [int("".join(map(str, bits[i:i + 8])).ljust(8, "0"), 2) for i in range(0, len(bits), 8)]
        return [b - 128 for b in packed] if kind == "binary" else packed
    if kind == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    raise invalid(f"embedding_types: unknown type {kind!r}")


def embed_reply(body: dict[str, Any]) -> dict[str, Any]:
    _check_unknown(body, EMBED_FIELDS)
    model = body.get("model")
    if model not in EMBED_MODELS:
        raise ApiError(404, f"model '{model}' not found, make sure the correct model ID was used and that you have "
                            "access to the model.")
    info = EMBED_MODELS[model]
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise invalid("texts must be a non-empty list of strings")
    if len(texts) > 96:
        raise invalid(f"too many texts: {len(texts)} (the maximum is 96)")
    input_type = body.get("input_type")
    if info.needs_input_type and input_type not in ("search_document", "search_query", "classification",
                                                    "clustering"):
        raise invalid("valid input_type must be provided with the provided model")
    dims = body.get("output_dimension")
    if dims is not None and dims not in info.dimensions:
        raise invalid(f"output_dimension {dims} is not supported by {model}")
    kinds = body.get("embedding_types") or ["float"]
    vectors = [expected_embedding(model, input_type or "", t, dims) for t in texts]
    return {
        "id": hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest(),
        "embeddings": {kind: [encode_embedding(v, kind) for v in vectors] for kind in kinds},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": sum(approx_tokens(t) for t in texts)}},
        "response_type": "embeddings_by_type",
    }


def relevance(query: str, doc: str) -> float:
    q = set(re.findall(r"\w+", query.lower()))
    d = set(re.findall(r"\w+", doc.lower()))
    overlap = len(q & d) / (len(q) or 1)
    tiebreak = int(hashlib.sha1(doc.encode()).hexdigest()[:4], 16) / 65536 / 100
    return round(min(0.999, 0.02 + 0.9 * overlap + tiebreak), 6)


def rerank_reply(body: dict[str, Any]) -> dict[str, Any]:
    _check_unknown(body, RERANK_FIELDS)
    model = body.get("model")
    if model not in RERANK_MODELS:
        raise ApiError(404, f"model '{model}' not found, make sure the correct model ID was used and that you have "
                            "access to the model.")
    query, docs = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not query:
        raise invalid("query must be a non-empty string")
    if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
        raise invalid("documents must be a non-empty list of strings")
    top_n = body.get("top_n", len(docs))
    if not isinstance(top_n, int) or top_n < 1:
        raise invalid("top_n must be a positive integer")
    scored = sorted(((relevance(query, d), i) for i, d in enumerate(docs)), key=lambda s: (-s[0], s[1]))
    return {
        "id": hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest(),
        "results": [{"index": i, "relevance_score": s} for s, i in scored[:top_n]],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }
