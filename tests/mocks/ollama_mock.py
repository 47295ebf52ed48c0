"""A faithful mock of an Ollama server's native API on the raw HTTP/1.1 server (127.0.0.1).

    async with OllamaMock() as mock:
        creds = {"base_url": mock.url, "mode": "chat", "context_size": "4096", "max_tokens": "4096"}
        mock.enqueue(stream_error_after(3))
        ...
        assert mock.requests[-1].json["options"]["num_predict"] == 5

Routes: POST /api/chat, /api/generate (both stream by default, as Ollama does), /api/embed,
/api/show; GET /api/tags, /api/version. No auth unless ``api_key`` is set (then a Bearer key,
else 401 ``{"error": "unauthorized"}``). A model that is not pulled is 404 ``{"error": "model
\\"x\\" not found, try pulling it first"}``; ``llama3.2`` means ``llama3.2:latest``.

What the server checks: tool-call ``arguments`` must be JSON objects (a string is a Go unmarshal
error, 400); ``images`` must be base64; ``tools`` only for models with the ``tools`` capability
and ``think`` only with ``thinking`` (400 ``... does not support tools``/``thinking``); /api/embed
only for embedding models. Models listed with ``capabilities=None`` imitate old servers whose
``/api/show`` has no ``capabilities``.

Replies: "Echo: <last user text>"; with tools, one line carrying every call (object
arguments, not the final line) then the ``done`` line; after tool results, "Tool results: ...";
with ``think``, ``thinking`` fragments before the content. ``options.num_predict`` counts
words: a cut answer ends with ``done_reason: "length"``. Stream lines are split across writes
(inside JSON and inside UTF-8 characters) and several are coalesced into one write.

Scenarios (``mock.enqueue(...)``, FIFO, by path): :func:`status`, :func:`stream_error_after` (an
``{"error"}`` line under the 200), :func:`truncate_after` (no ``done`` line, optionally half a
line), :func:`hang`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .httpserver import MockServer, Request, Response, ServerMock

STRING_SUFFIX = " — café"


@dataclass(frozen=True)
class OllamaModel:
    name: str
    family: str = "llama"
    capabilities: tuple[str, ...] | None = ("completion",)
    context_length: int = 131072
    dims: int = 0
    parameter_size: str = "3.2B"


DEFAULT_MODELS = (
    OllamaModel("llama3.2:latest", capabilities=("completion", "tools")),
    OllamaModel("qwen3:8b", family="qwen3", capabilities=("completion", "tools", "thinking"), context_length=40960,
                parameter_size="8.2B"),
    OllamaModel("llava:7b", capabilities=("completion", "vision"), context_length=32768, parameter_size="7B"),
    OllamaModel("nomic-embed-text:latest", family="nomic-bert", capabilities=("embedding",), context_length=2048,
                dims=768, parameter_size="137M"),
    OllamaModel("mistral:7b", family="llama", capabilities=None, context_length=32768, parameter_size="7.2B"),
    OllamaModel("all-minilm:latest", family="bert", capabilities=None, context_length=512, dims=384,
                parameter_size="23M"),
)


@dataclass
class Scenario:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    path: str = "/api/chat"


def status(code: int, error: str = "default", path: str = "/api/chat") -> Scenario:
    return Scenario("status", {"code": code, "error": error}, path)


def stream_error_after(lines: int = 3, error: str = "an error was encountered while running the model: "
                       "unexpected EOF", path: str = "/api/chat") -> Scenario:
    return Scenario("stream_error", {"after": lines, "error": error}, path)


def truncate_after(lines: int = 3, partial: bool = False, path: str = "/api/chat") -> Scenario:
    return Scenario("truncate", {"after": lines, "partial": partial}, path)


def hang(send_headers: bool = True, max_seconds: float = 30.0, path: str = "/api/chat") -> Scenario:
    return Scenario("hang", {"send_headers": send_headers, "max_seconds": max_seconds}, path)


class OllamaError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def prompt_eval_count(body: dict[str, Any]) -> int:
    if "messages" in body:
        return 10 + approx_tokens(json.dumps(body["messages"], sort_keys=True, ensure_ascii=False))
    return 10 + approx_tokens(str(body.get("system", "")) + str(body.get("prompt", "")))


def expected_tool_args(schema: dict[str, Any], text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if prop.get("enum"):
            out[name] = prop["enum"][0]
        elif kind == "string":
            out[name] = text + STRING_SUFFIX
        elif kind == "integer":
            out[name] = 3
        else:
            out[name] = True if kind == "boolean" else {}
    return out


def expected_embedding(model: str, text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(f"{model}|{text}".encode()).digest()
    raw = [((seed[i % 32] ^ (i * 17 % 253)) - 127.5) for i in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def _pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


def _cut(data: bytes) -> list[bytes]:
    """Split one line into two or three writes: inside a UTF-8 character if any, else mid-line."""
    lead = re.search(rb"[\xc0-\xff]", data)
    cuts = sorted({lead.start() + 1 if lead else len(data) // 2, max(1, len(data) // 3)})
    bounds = [0, *[c for c in cuts if 0 < c < len(data)], len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


class NDJSONWriter:
    """Writes objects as lines, some split across writes and some coalesced into one."""

    def __init__(self, resp: Response) -> None:
        self.resp, self.count, self._pending = resp, 0, b""

    async def line(self, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode() + b"\n"
        i, self.count = self.count, self.count + 1
        parts = _cut(data) if i % 2 == 0 else [data]
        for part in parts[:-1]:
            await self.resp.write(self._pending + part)
            self._pending = b""
        if i % 3 == 1:
            self._pending += parts[-1]
        else:
            await self.resp.write(self._pending + parts[-1])
            self._pending = b""

    async def raw(self, data: bytes) -> None:
        await self.resp.write(self._pending + data)
        self._pending = b""

    async def flush(self) -> None:
        if self._pending:
            await self.raw(b"")


class OllamaMock(ServerMock):
    def __init__(self, models: tuple[OllamaModel, ...] = DEFAULT_MODELS, api_key: str | None = None,
                 reply_template: str = "Echo: {text}") -> None:
        self.models = {m.name: m for m in models}
        self.api_key = api_key
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

    async def _json(self, resp: Response, body: Any, code: int = 200) -> None:
        await resp.send(code, {"content-type": "application/json; charset=utf-8"}, json.dumps(body).encode())

    def _model(self, name: Any) -> OllamaModel:
        full = str(name or "")
        if full and ":" not in full:
            full += ":latest"
        if full not in self.models:
            raise OllamaError(404, f'model "{name}" not found, try pulling it first')
        return self.models[full]

    def _tag(self, m: OllamaModel) -> dict[str, Any]:
        return {"name": m.name, "model": m.name, "modified_at": "2026-05-01T10:00:00.000000000Z",
                "size": 2019393189, "digest": hashlib.sha256(m.name.encode()).hexdigest(),
                "details": {"parent_model": "", "format": "gguf", "family": m.family, "families": [m.family],
                            "parameter_size": m.parameter_size, "quantization_level": "Q4_K_M"}}

    def _show(self, m: OllamaModel) -> dict[str, Any]:
        info = {"modelfile": f"FROM {m.name}", "parameters": "", "template": "{{ .Prompt }}",
                "details": self._tag(m)["details"],
                "model_info": {"general.architecture": m.family, f"{m.family}.context_length": m.context_length}}
        if m.capabilities is not None:
            info["capabilities"] = list(m.capabilities)
        return info

    async def _handle(self, req: Request, resp: Response) -> None:
        sc = self._take(req.path)
        if sc is not None and sc.kind in ("status", "hang"):
            await self._scenario(resp, sc)
            return
        try:
            if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
                raise OllamaError(401, "unauthorized")
            route = (req.method, req.path)
            if route == ("GET", "/api/tags"):
                await self._json(resp, {"models": [self._tag(m) for m in self.models.values()]})
            elif route == ("GET", "/api/version"):
                await self._json(resp, {"version": "0.12.6"})
            elif route == ("POST", "/api/show"):
                body = req.json or {}
                await self._json(resp, self._show(self._model(body.get("model") or body.get("name"))))
            elif route == ("POST", "/api/embed"):
                await self._json(resp, self._embed(req.json))
            elif route in (("POST", "/api/chat"), ("POST", "/api/generate")):
                await self._generate(req, resp, sc)
            else:
                await resp.send(404, {"content-type": "text/plain"}, b"404 page not found")
        except OllamaError as err:
            await self._json(resp, {"error": err.message}, err.status)

    async def _scenario(self, resp: Response, sc: Scenario) -> None:
        p = sc.params
        if sc.kind == "hang":
            if p["send_headers"]:
                await resp.start(200, {"content-type": "application/x-ndjson"})
            await resp.wait_disconnected(p["max_seconds"])
            await resp.abort()
            return
        error = p["error"] if p["error"] != "default" else f"mock error {p['code']}"
        await self._json(resp, {"error": error}, p["code"])

    def _embed(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise OllamaError(400, "invalid request body")
        m = self._model(body.get("model"))
        if not m.dims:
            raise OllamaError(400, "this model does not support embeddings")
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise OllamaError(400, "invalid input type")
        dims = body.get("dimensions") or m.dims
        return {"model": m.name, "embeddings": [expected_embedding(m.name, t, dims) for t in texts],
                "total_duration": 14143917, "load_duration": 1019500,
                "prompt_eval_count": sum(approx_tokens(t) for t in texts)}

    def _check_chat(self, body: dict[str, Any], m: OllamaModel) -> None:
        caps = m.capabilities or ("completion",)
        if "completion" not in caps:
            raise OllamaError(400, f'"{m.name}" does not support chat')
        if body.get("tools") and "tools" not in caps:
            raise OllamaError(400, f"registry.ollama.ai/library/{m.name} does not support tools")
        if body.get("think") and "thinking" not in caps:
            raise OllamaError(400, f'"{m.name}" does not support thinking')
        if not isinstance(body.get("options", {}), dict):
            raise OllamaError(400, "json: cannot unmarshal into Go struct field ChatRequest.options")
        for i, msg in enumerate(body.get("messages") or ()):
            if msg.get("role") not in ("system", "user", "assistant", "tool"):
                raise OllamaError(400, f"invalid role {msg.get('role')!r}")
            for call in msg.get("tool_calls") or ():
                if not isinstance((call.get("function") or {}).get("arguments"), dict):
                    raise OllamaError(400, "json: cannot unmarshal string into Go struct field "
                                           "ToolCallFunction.messages.tool_calls.function.arguments of type "
                                           "api.ToolCallFunctionArguments")
            for image in msg.get("images") or ():
                try:
                    base64.b64decode(image, validate=True)
                except (binascii.Error, TypeError):
                    raise OllamaError(400, f"messages[{i}]: illegal base64 data in image") from None
            if msg.get("images") and "vision" not in caps:
                raise OllamaError(500, "this model is missing data required for image input")

    def _reply(self, body: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]], str]:
        """(thinking, content, tool calls, done_reason)."""
        messages = body.get("messages")
        if messages is None:
            text = str(body.get("prompt") or "")
            last_role = "user"
        else:
            users = [msg for msg in messages if msg.get("role") == "user"]
            text = users[-1].get("content", "") if users else ""
            last_role = messages[-1].get("role") if messages else "user"
        thinking = f"The user wrote: {text}. Reply." if body.get("think") else ""
        if last_role == "tool":
            results = []
            for msg in reversed(messages or []):
                if msg.get("role") != "tool":
                    break
                results.insert(0, f"{msg.get('tool_name', '?')}={msg.get('content', '')}")
            return thinking, "Tool results: " + "; ".join(results), [], "stop"
        if body.get("tools"):
            calls = [{"function": {"name": t["function"]["name"],
                                   "arguments": expected_tool_args(t["function"].get("parameters") or {}, text)}}
                     for t in body["tools"][:2]]
            return thinking, "", calls, "stop"
        content = self.reply_template.format(text=text)
        limit = (body.get("options") or {}).get("num_predict")
        words = content.split(" ")
        if isinstance(limit, int) and 0 < limit < len(words):
            return thinking, " ".join(words[:limit]), [], "length"
        return thinking, content, [], "stop"

    async def _generate(self, req: Request, resp: Response, sc: Scenario | None) -> None:
        body = req.json
        if not isinstance(body, dict):
            raise OllamaError(400, "invalid request body")
        m = self._model(body.get("model"))
        chat = req.path == "/api/chat"
        if chat:
            self._check_chat(body, m)
        thinking, content, calls, reason = self._reply(body)
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())

        def line(text: str = "", think: str = "", tool_calls: list | None = None) -> dict[str, Any]:
            obj: dict[str, Any] = {"model": m.name, "created_at": created, "done": False}
            if chat:
                msg: dict[str, Any] = {"role": "assistant", "content": text}
                if think:
                    msg["thinking"] = think
                if tool_calls:
                    msg["tool_calls"] = tool_calls
                obj["message"] = msg
            else:
                obj["response"] = text
                if think:
                    obj["thinking"] = think
            return obj

        output = len(content.split()) + len(thinking.split()) + 8 * len(calls)
        final = {**line(), "done": True, "done_reason": reason, "total_duration": 5191566416,
                 "load_duration": 2154458, "prompt_eval_count": prompt_eval_count(body),
                 "prompt_eval_duration": 383809000, "eval_count": output, "eval_duration": 4799921000}
        if not body.get("stream", True):
            answer = line(content, thinking, calls)
            answer.update({k: v for k, v in final.items() if k not in ("message", "response")})
            await self._json(resp, answer)
            return
        lines = [line(think=p) for p in _pieces(thinking)] + [line(p) for p in _pieces(content)]
        if calls:
            lines.append(line(tool_calls=calls))
        lines.append(final)
        await resp.start(200, {"content-type": "application/x-ndjson"})
        writer = NDJSONWriter(resp)
        for n, obj in enumerate(lines):
            if sc is not None and n == sc.params["after"]:
                if sc.kind == "stream_error":
                    await writer.line({"error": sc.params["error"]})
                elif sc.params.get("partial"):
                    await writer.raw(json.dumps(obj).encode()[:25])
                break
            await writer.line(obj)
            await asyncio.sleep(0.001)  # a line per generated token, paced as a real server sends them
        await writer.flush()
        await resp.end()
