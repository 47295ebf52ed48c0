"""A faithful mock of NVIDIA Triton Inference Server's HTTP/REST front end (KServe v2 + generate).

    async with TritonMock() as mock:
        creds = {"server_url": mock.url, "context_size": "4096", "completion_type": "chat", "stream": "true"}
        mock.enqueue(stream_error_after(2))
        ...
        assert mock.requests[-1].json["parameters"]["stream"] is True

Routes: ``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{m}``
(model metadata), ``/v2/models/{m}/ready`` (200, or 400 with an empty body while the model is not
ready); ``POST /v2/models/{m}[/versions/{v}]/generate`` (one JSON object) and ``.../generate_stream``
(SSE, ``data: {...}`` per model response, no end event, content type ``text/event-stream;
charset=utf-8``). No authentication. Errors are ``{"error": "<message>"}`` with 400; an unknown
model is ``Request for unknown model: 'x' is not found``.

What the server checks, as Triton does: the body is a JSON object with a string ``text_input``;
``parameters`` is an object whose values are scalars (string, number, boolean); a model listed with
``requires=("max_tokens",)`` (TensorRT-LLM's ensemble, where ``max_tokens`` is an input tensor) needs
a top-level ``max_tokens``; ``/generate`` on a decoupled model refuses ``parameters.stream: true``.

Models (``DEFAULT_MODELS``): ``ensemble`` streams deltas (TensorRT-LLM); ``vllm_model`` streams
cumulative text that starts with the prompt (vLLM backend with ``exclude_input_in_output: false``),
and echoes the prompt in unary answers too; ``static_model`` is not decoupled (one response even on
``/generate_stream``); ``loading_model`` is not ready (every call: 400 ``... is not ready``).

Replies: ``Echo: <text>`` where text is what follows the last ``User: `` line of ``text_input`` (or
its last line). ``max_tokens`` (top level, else ``parameters``) counts words. Stream events are
split across writes and coalesced (:class:`~tests.mocks.sse.StreamStyle`).

Scenarios (``mock.enqueue(...)``, FIFO, by endpoint ``generate``/``generate_stream``/``ready``):
:func:`status`, :func:`stream_error_after` (an ``{"error"}`` event under the 200),
:func:`truncate_after` (the body stops mid-chunk, optionally after half an event), :func:`hang`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .httpserver import MockServer, Request, Response, ServerMock
from .sse import SSEWriter, StreamStyle

SSE_TYPE = "text/event-stream; charset=utf-8"
DEFAULT_STYLE = StreamStyle(split=True, coalesce=True)  # Triton's framing (LF, no comments), split by TCP
_MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(?:/(ready|generate|generate_stream))?$")


@dataclass(frozen=True)
class TritonModel:
    name: str
    version: str = "1"
    streaming: str = "delta"  # "delta" | "cumulative"
    echo: bool = False  # output starts with text_input
    decoupled: bool = True
    ready: bool = True
    platform: str = "ensemble"
    requires: tuple[str, ...] = ()


DEFAULT_MODELS = (
    TritonModel("ensemble", requires=("max_tokens",)),
    TritonModel("vllm_model", streaming="cumulative", echo=True, platform="vllm"),
    TritonModel("static_model", decoupled=False, platform="python"),
    TritonModel("loading_model", ready=False),
)


@dataclass
class Scenario:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    endpoint: str = "generate_stream"


def status(code: int, error: str = "default", endpoint: str = "generate_stream") -> Scenario:
    return Scenario("status", {"code": code, "error": error}, endpoint)


def stream_error_after(events: int = 2, error: str = "in-flight batching failed: CUDA out of memory") -> Scenario:
    return Scenario("stream_error", {"after": events, "error": error})


def truncate_after(events: int = 2, partial: bool = False) -> Scenario:
    return Scenario("truncate", {"after": events, "partial": partial})


def hang(max_seconds: float = 30.0) -> Scenario:
    return Scenario("hang", {"max_seconds": max_seconds})


class TritonError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def reply_text(text_input: str) -> str:
    lines = [ln for ln in text_input.splitlines() if ln.strip()]
    users = [ln[len("User: "):] for ln in lines if ln.startswith("User: ")]
    return "Echo: " + (users[-1] if users else (lines[-1] if lines else ""))


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


class TritonMock(ServerMock):
    def __init__(self, models: tuple[TritonModel, ...] = DEFAULT_MODELS,
                 style: StreamStyle = DEFAULT_STYLE) -> None:
        self.models = {m.name: m for m in models}
        self.style = style
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []

    def enqueue(self, *scenarios: Scenario) -> None:
        self.pending.extend(scenarios)

    def _take(self, endpoint: str) -> Scenario | None:
        for i, sc in enumerate(self.pending):
            if sc.endpoint == endpoint:
                return self.pending.pop(i)
        return None

    def expected_reply(self, text_input: str, max_tokens: int | None = None) -> str:
        words = _words(reply_text(text_input))
        return "".join(words[:max_tokens] if max_tokens else words)

    # ------------------------------------------------------------------ handling

    async def _json(self, resp: Response, body: Any, code: int = 200) -> None:
        await resp.send(code, {"content-type": "application/json"}, json.dumps(body, ensure_ascii=False).encode())

    def _model(self, name: str, version: str | None) -> TritonModel:
        model = self.models.get(name)
        if model is None or (version is not None and version != model.version):
            suffix = f" version {version}" if version else ""
            raise TritonError(f"Request for unknown model: '{name}'{suffix} is not found")
        return model

    async def _handle(self, req: Request, resp: Response) -> None:
        try:
            if req.method == "GET" and req.path in ("/v2/health/live", "/v2/health/ready"):
                await resp.send(200, {"content-type": "text/plain"}, b"")
                return
            if req.method == "GET" and req.path == "/v2":
                await self._json(resp, {"name": "triton", "version": "2.52.0", "extensions": [
                    "classification", "sequence", "model_repository", "schedule_policy", "model_configuration",
                    "system_shared_memory", "cuda_shared_memory", "binary_tensor_data", "parameters",
                    "statistics", "trace", "logging", "generate"]})
                return
            match = _MODEL_PATH.match(req.path)
            if match is None:
                await resp.send(404, {"content-type": "text/plain"}, b"Not Found")
                return
            name, version, endpoint = unquote(match.group(1)), match.group(2), match.group(3)
            sc = self._take(endpoint or "")
            if sc is not None and sc.kind == "status":
                error = sc.params["error"] if sc.params["error"] != "default" else f"mock error {sc.params['code']}"
                await self._json(resp, {"error": error}, sc.params["code"])
                return
            model = self._model(name, version)
            if endpoint is None and req.method == "GET":
                await self._json(resp, self._metadata(model))
            elif endpoint == "ready" and req.method == "GET":
                await resp.send(200 if model.ready else 400, {"content-type": "application/json"}, b"")
            elif endpoint in ("generate", "generate_stream") and req.method == "POST":
                await self._generate(req, resp, model, endpoint == "generate_stream", sc)
            else:
                await resp.send(405, {"content-type": "text/plain"}, b"Method Not Allowed")
        except TritonError as err:
            await self._json(resp, {"error": err.message}, err.status)

    def _metadata(self, m: TritonModel) -> dict[str, Any]:
        return {"name": m.name, "versions": [m.version], "platform": m.platform,
                "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [-1]},
                           {"name": "max_tokens", "datatype": "INT32", "shape": [-1]}],
                "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}]}

    def _check(self, body: Any, model: TritonModel) -> tuple[str, dict[str, Any], int | None]:
        if not isinstance(body, dict):
            raise TritonError("failed to parse the request JSON buffer: The document root must be an object")
        if not model.ready:
            raise TritonError(f"Request for unknown model: '{model.name}' is not ready")
        text = body.get("text_input")
        if not isinstance(text, str):
            raise TritonError(f"expected 1 inputs but got 0 inputs for model '{model.name}'. "
                              "At least one of the following inputs is missing: text_input")
        params = body.get("parameters", {})
        if not isinstance(params, dict):
            raise TritonError("expected 'parameters' to be a JSON object")
        for key, value in params.items():
            if not isinstance(value, str | int | float | bool):
                raise TritonError(f"parameter '{key}' has invalid type. It should be either 'int', 'bool', "
                                  "'string' or 'double'")
        for name in model.requires:
            if name not in body:
                raise TritonError(f"expected number of inputs between 2 and 20 but got 1 inputs for model "
                                  f"'{model.name}'. At least one of the following inputs is missing: {name}")
        limit = body.get("max_tokens", params.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise TritonError("max_tokens must be a positive integer")
        return text, params, limit

    async def _generate(self, req: Request, resp: Response, model: TritonModel, streaming: bool,
                        sc: Scenario | None) -> None:
        text, params, limit = self._check(req.json, model)
        stream_param = params.get("stream", False)
        if not streaming and stream_param is True and model.decoupled:
            raise TritonError("generate does not support a decoupled model that sends more than one response; "
                              "use generate_stream")
        pieces = _words(reply_text(text))
        if limit:
            pieces = pieces[:limit]
        prefix = text if model.echo else ""
        base = {"model_name": model.name, "model_version": model.version}
        if model.platform == "ensemble":
            base.update({"batch_index": 0, "sequence_index": 0, "cum_log_probs": 0.0, "output_log_probs": [0.0]})
        if not streaming:
            await self._json(resp, {**base, "text_output": prefix + "".join(pieces)})
            return
        if not (model.decoupled and stream_param is True):
            pieces = ["".join(pieces)]  # one response: the whole answer
        await resp.start(200, {"content-type": SSE_TYPE})
        if sc is not None and sc.kind == "hang":
            await resp.wait_disconnected(sc.params["max_seconds"])
            await resp.abort()
            return
        writer = SSEWriter(resp, self.style)
        sofar = prefix
        for n, piece in enumerate(pieces):
            if sc is not None and n == sc.params["after"]:
                if sc.kind == "stream_error":
                    await writer.event({"error": sc.params["error"]})
                    await writer.close()
                else:  # truncate: the chunked body never ends
                    if sc.params["partial"]:
                        await writer.raw(b'data: {"model_name": "' + model.name.encode() + b'", "text_out')
                    await writer.flush()
                    await resp.abort()
                return
            sofar += piece
            await writer.event({**base, "text_output": sofar if model.streaming == "cumulative" else piece})
        await writer.close()
