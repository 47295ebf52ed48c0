"""A faithful mock of Replicate's HTTP API (predictions) on the raw HTTP/1.1 server (127.0.0.1).

    async with ReplicateMock() as mock:
        creds = {"replicate_api_token": TOKEN, "replicate_base_url": mock.url}
        mock.enqueue(slow(steps=3))
        ...

Routes (all need ``Authorization: Bearer <token>``, else 401 RFC 7807 "Unauthenticated"):
``GET /v1/models/{o}/{n}`` (``latest_version`` with its ``openapi_schema``, or null for a model
without listed versions), ``GET /v1/models/{o}/{n}/versions/{id}``, ``POST /v1/predictions``
(``version``) and ``POST /v1/models/{o}/{n}/predictions``, ``GET /v1/predictions/{id}``,
``POST /v1/predictions/{id}/cancel``, and ``GET /stream/{id}`` (the prediction's ``urls.stream``).

Predictions: input is validated against the version's schema (types, minimum/maximum, required
``prompt``) → 422 ``{"type", "title": "Input validation failed", "status", "detail",
"invalid_fields"}``. Created with ``Prefer: wait`` a prediction finishes at once (201, terminal);
otherwise it is ``starting`` and each GET advances it: ``processing`` with a growing ``output``
token list, then ``succeeded`` (with ``metrics.input_token_count``/``output_token_count``).
LLM output: ``"Echo: <prompt>"`` (``"(<system_prompt>) Echo: ..."`` when given) as tokens with
their leading spaces; the model's token-limit input (``max_tokens``/``max_new_tokens``/
``max_length``) cuts it; ``stop_sequences`` ends it before the stop word. The SSE stream sends
``output`` events (raw text, several ``data:`` lines for a token with newlines), ``logs`` events
in between, ``: keep-alive`` comments, events split across writes, then ``done`` ``{}``.

Scenarios (``mock.enqueue(...)``, FIFO, taken by the next create): :func:`status` (an error
answer to the create), :func:`slow` (``Prefer: wait`` times out: the reply is ``processing`` with
partial output, and N polls finish it), :func:`fail` (ends ``failed`` with ``error``; on the
stream an ``error`` event), :func:`canceled` (ends ``canceled``; on the stream ``done``
``{"reason": "canceled"}``), :func:`stuck` (never finishes; its stream sends a few tokens then
hangs), :func:`truncate_stream` (the stream closes without ``done``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Self

from .httpserver import ConnectionRecord, MockServer, Request, Response
from .sse import SSEWriter, StreamStyle

TOKEN = "r8_mock_token_0123456789"
LIMIT_NAMES = ("max_tokens", "max_new_tokens", "max_length")


def _num(title: str, order: int, default: Any, minimum: float | None = None, maximum: float | None = None,
         kind: str = "number") -> dict[str, Any]:
    prop: dict[str, Any] = {"type": kind, "title": title, "x-order": order, "default": default,
                            "description": f"{title} of the model."}
    if minimum is not None:
        prop["minimum"] = minimum
    if maximum is not None:
        prop["maximum"] = maximum
    return prop


def _str(title: str, order: int, default: Any = None) -> dict[str, Any]:
    return {"type": "string", "title": title, "x-order": order, "default": default, "description": title}


LLAMA3_INPUTS = {
    "top_k": _num("Top K", 4, 0, -1, None, "integer"),
    "top_p": _num("Top P", 5, 0.95, 0, 1),
    "prompt": _str("Prompt", 0, ""),
    "max_tokens": _num("Max Tokens", 2, 512, 1, 8192, "integer"),
    "min_tokens": _num("Min Tokens", 3, 0, -1, None, "integer"),
    "temperature": _num("Temperature", 6, 0.7, 0, 5),
    "system_prompt": _str("System Prompt", 1, "You are a helpful assistant"),
    "stop_sequences": _str("Stop Sequences", 8, "<|end_of_text|>,<|eot_id|>"),
    "prompt_template": _str("Prompt Template", 9, "{prompt}"),
    "presence_penalty": _num("Presence Penalty", 7, 0),
    "frequency_penalty": _num("Frequency Penalty", 10, 0),
    "seed": _num("Seed", 11, None, kind="integer"),
}
LLAMA2_INPUTS = {
    "prompt": _str("Prompt", 0),
    "system_prompt": _str("System Prompt", 1, "You are a helpful assistant."),
    "max_new_tokens": _num("Max New Tokens", 2, 128, 1, 4096, "integer"),
    "temperature": _num("Temperature", 3, 0.75, 0.01, 5),
    "top_p": _num("Top P", 4, 0.9, 0, 1),
    "top_k": _num("Top K", 5, 50, 0, None, "integer"),
    "repetition_penalty": _num("Repetition Penalty", 6, 1.0, 0),
    "seed": _num("Seed", 7, None, kind="integer"),
}
PLAIN_LM_INPUTS = {
    "prompt": _str("Prompt", 0),
    "max_length": _num("Max Length", 1, 500, 1, 2048, "integer"),
    "temperature": _num("Temperature", 2, 0.75, 0.01, 5),
    "top_p": _num("Top P", 3, 1.0, 0, 1),
    "top_k": _num("Top K", 4, 50, 0, None, "integer"),
}
MPNET_INPUTS = {"text": _str("Text", 0), "text_batch": _str("Text Batch", 1)}
BGE_INPUTS = {"texts": _str("Texts", 0, "[]"), "batch_size": _num("Batch Size", 1, 32, 1, None, "integer"),
              "normalize_embeddings": {"type": "boolean", "title": "Normalize", "x-order": 2, "default": True},
              "convert_to_numpy": {"type": "boolean", "title": "Numpy", "x-order": 3, "default": False}}
SDXL_INPUTS = {"prompt": _str("Prompt", 0), "width": _num("Width", 1, 1024, kind="integer"),
               "height": _num("Height", 2, 1024, kind="integer")}


@dataclass(frozen=True)
class ReplicateModel:
    name: str  # owner/name
    inputs: dict[str, dict[str, Any]]
    kind: str = "llm"  # llm | embed-text | embed-texts | image
    description: str = "A language model."
    versions: int = 1  # 0: no listed version (official model; use the model route)
    stream: bool = True
    dims: int = 0

    def version_ids(self) -> list[str]:
        return [hashlib.sha256(f"{self.name}:{i}".encode()).hexdigest() for i in range(self.versions)]


DEFAULT_MODELS = (
    ReplicateModel("meta/meta-llama-3-8b-instruct", LLAMA3_INPUTS, description="Base version of Llama 3"),
    ReplicateModel("meta/llama-2-70b-chat", LLAMA2_INPUTS, versions=2,
                   description="A 70 billion parameter language model from Meta, fine tuned for chat completions"),
    ReplicateModel("acme/plain-lm", PLAIN_LM_INPUTS, stream=False, description="Small text model"),
    ReplicateModel("meta/llama-official", {}, versions=0, description="Official model"),
    ReplicateModel("replicate/all-mpnet-base-v2", MPNET_INPUTS, kind="embed-text", dims=12,
                   description="Sentence embeddings"),
    ReplicateModel("nateraw/bge-large-en-v1.5", BGE_INPUTS, kind="embed-texts", dims=16, description="BGE"),
    ReplicateModel("stability-ai/sdxl", SDXL_INPUTS, kind="image", description="Text-to-image"),
)


@dataclass
class Scenario:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def status(code: int, title: str = "", detail: str = "", retry_after: str | None = None) -> Scenario:
    return Scenario("status", {"code": code, "title": title, "detail": detail, "retry_after": retry_after})


def slow(steps: int = 3) -> Scenario:
    return Scenario("slow", {"steps": steps})


def fail(error: str = "CUDA out of memory", after_tokens: int = 2) -> Scenario:
    return Scenario("fail", {"error": error, "after": after_tokens})


def canceled(after_tokens: int = 2) -> Scenario:
    return Scenario("canceled", {"after": after_tokens})


def stuck(tokens: int = 2) -> Scenario:
    return Scenario("stuck", {"after": tokens})


def truncate_stream(after_tokens: int = 2) -> Scenario:
    return Scenario("truncate", {"after": after_tokens})


def expected_embedding(model: str, text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(f"{model}|{text}".encode()).digest()
    raw = [((seed[i % 32] ^ (i * 31 % 251)) - 127.5) for i in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def tokens_of(text: str) -> list[str]:
    """Pieces with their leading whitespace, as LLM tokens come out."""
    return re.findall(r"\s*\S+|\s+$", text)


def problem(code: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": f"https://replicate.com/docs/topics/predictions/errors#{code}", "title": title,
            "status": code, "detail": detail, **extra}


class ReplicateError(Exception):
    def __init__(self, code: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.body = problem(code, title, detail, **extra)


@dataclass
class Prediction:
    id: str
    model: ReplicateModel
    version: str
    input: dict[str, Any]
    tokens: list[str]
    scenario: Scenario | None
    status: str = "starting"
    shown: int = 0  # tokens visible in output
    step: int = 0
    steps: int = 2
    error: str | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled")


class ReplicateMock:
    def __init__(self, models: tuple[ReplicateModel, ...] = DEFAULT_MODELS, token: str = TOKEN,
                 wait_cap: float = 0.05) -> None:
        self.models = {m.name: m for m in models}
        self.token = token
        self.wait_cap = wait_cap  # how long a "timing out" Prefer: wait really blocks
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []
        self.predictions: dict[str, Prediction] = {}
        self._ids = itertools.count(1)

    async def start(self) -> ReplicateMock:
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    @property
    def connections(self) -> list[ConnectionRecord]:
        return self.server.connections

    def enqueue(self, *scenarios: Scenario) -> None:
        self.pending.extend(scenarios)

    def cancels(self) -> list[str]:
        return [r.path.split("/")[3] for r in self.requests if r.method == "POST" and r.path.endswith("/cancel")]

    async def wait_cancel(self, prediction_id: str, timeout: float = 5.0) -> None:
        await self.server.wait_for(lambda: prediction_id in self.cancels(), timeout)

    def reply_for(self, inputs: dict[str, Any]) -> str:
        system = inputs.get("system_prompt")
        return (f"({system}) " if system else "") + f"Echo: {inputs.get('prompt', '')}"

    # ------------------------------------------------------------------ handling

    async def _json(self, resp: Response, body: Any, code: int = 200, headers: dict[str, str] | None = None) -> None:
        ctype = "application/problem+json" if code >= 400 else "application/json"
        await resp.send(code, {"content-type": ctype, **(headers or {})}, json.dumps(body).encode())

    def _model(self, owner: str, name: str) -> ReplicateModel:
        model = self.models.get(f"{owner}/{name}")
        if model is None:
            raise ReplicateError(404, "Not found", "The requested resource could not be found.")
        return model

    def _version_obj(self, model: ReplicateModel, vid: str) -> dict[str, Any]:
        if vid not in model.version_ids():
            raise ReplicateError(404, "Not found", f"Version {vid} of {model.name} does not exist.")
        return {"id": vid, "created_at": "2026-01-01T00:00:00Z", "cog_version": "0.13.6",
                "openapi_schema": {"openapi": "3.0.2", "components": {"schemas": {
                    "Input": {"type": "object", "title": "Input", "required": ["prompt"] if model.kind == "llm" else [],
                              "properties": model.inputs},
                    "Output": {"type": "array", "items": {"type": "string"}, "x-cog-array-type": "iterator"}}}}}

    def _model_obj(self, model: ReplicateModel) -> dict[str, Any]:
        owner, name = model.name.split("/")
        ids = model.version_ids()
        return {"url": f"https://replicate.com/{model.name}", "owner": owner, "name": name,
                "description": model.description, "visibility": "public", "run_count": 1000,
                "latest_version": self._version_obj(model, ids[-1]) if ids else None}

    async def _handle(self, req: Request, resp: Response) -> None:
        try:
            if req.headers.get("authorization") != f"Bearer {self.token}":
                raise ReplicateError(401, "Unauthenticated", "You did not pass a valid authentication token")
            parts = [p for p in req.path.split("/") if p]
            route = (req.method, parts[:2], len(parts))
            if req.method == "GET" and parts[:1] == ["stream"] and len(parts) == 2:
                await self._stream(resp, self._prediction(parts[1]))
            elif route == ("GET", ["v1", "models"], 4):
                await self._json(resp, self._model_obj(self._model(parts[2], parts[3])))
            elif route == ("GET", ["v1", "models"], 6) and parts[4] == "versions":
                await self._json(resp, self._version_obj(self._model(parts[2], parts[3]), parts[5]))
            elif route == ("POST", ["v1", "models"], 5) and parts[4] == "predictions":
                await self._create(req, resp, self._model(parts[2], parts[3]), "")
            elif route == ("POST", ["v1", "predictions"], 2):
                body = req.json if isinstance(req.json, dict) else {}
                model = next((m for m in self.models.values() if body.get("version") in m.version_ids()), None)
                if model is None:
                    raise ReplicateError(422, "Invalid version or not permitted",
                                         "The specified version does not exist (or perhaps you don't have permission "
                                         "to use it?)")
                await self._create(req, resp, model, str(body["version"]))
            elif route == ("GET", ["v1", "predictions"], 3):
                prediction = self._prediction(parts[2])
                self._advance(prediction)
                await self._json(resp, self._prediction_obj(prediction))
            elif route == ("POST", ["v1", "predictions"], 4) and parts[3] == "cancel":
                prediction = self._prediction(parts[2])
                if not prediction.terminal:
                    prediction.status = "canceled"
                await self._json(resp, self._prediction_obj(prediction))
            else:
                raise ReplicateError(404, "Not found", "The requested resource could not be found.")
        except ReplicateError as err:
            await self._json(resp, err.body, err.body["status"])

    def _prediction(self, pid: str) -> Prediction:
        if pid not in self.predictions:
            raise ReplicateError(404, "Not found", "The requested resource could not be found.")
        return self.predictions[pid]

    def _validate(self, model: ReplicateModel, inputs: Any) -> None:
        if not isinstance(inputs, dict):
            raise ReplicateError(422, "Input validation failed", "- input: Invalid type. Expected: object")
        problems = []
        if model.kind == "llm" and model.inputs and "prompt" not in inputs:
            problems.append(("input.prompt", "required", "prompt is required"))
        types = {"integer": (int,), "number": (int, float), "string": (str,), "boolean": (bool,)}
        for name, value in inputs.items():
            prop = model.inputs.get(name)
            if prop is None:
                continue  # cog ignores inputs the model does not declare
            kind = prop.get("type")
            if not isinstance(value, types.get(kind, (object,))) or (kind != "boolean" and isinstance(value, bool)):
                problems.append((f"input.{name}", "invalid_type", f"Invalid type. Expected: {kind}"))
            elif "minimum" in prop and value < prop["minimum"]:
                problems.append((f"input.{name}", "greater_than_equal", f"Must be greater than or equal to {prop['minimum']}"))
            elif "maximum" in prop and value > prop["maximum"]:
                problems.append((f"input.{name}", "less_than_equal", f"Must be less than or equal to {prop['maximum']}"))
        if problems:
            detail = "".join(f"- {f}: {d}\n" for f, _, d in problems)
            raise ReplicateError(422, "Input validation failed", detail,
                                 invalid_fields=[{"type": t, "field": f, "description": d} for f, t, d in problems])

    def _output_tokens(self, model: ReplicateModel, inputs: dict[str, Any]) -> list[Any]:
        if model.kind == "embed-text":
            text = inputs.get("text") or inputs.get("inputs") or ""
            return [{"embedding": expected_embedding(model.name, text, model.dims)}]
        if model.kind == "embed-texts":
            texts = json.loads(inputs.get("texts") or "[]")
            return [expected_embedding(model.name, t, model.dims) for t in texts]
        if model.kind == "image":
            return ["https://replicate.delivery/out.png"]
        tokens = tokens_of(self.reply_for(inputs))
        stops = [s for s in str(inputs.get("stop_sequences") or "").split(",") if s] if "stop_sequences" in \
            model.inputs else []
        text = ""
        for i, token in enumerate(tokens):
            text += token
            if any(s in text for s in stops):
                tokens = tokens[:i]
                break
        limit = next((inputs[n] for n in LIMIT_NAMES if n in inputs and n in model.inputs), None)
        return tokens[:limit] if isinstance(limit, int) else tokens

    async def _create(self, req: Request, resp: Response, model: ReplicateModel, version: str) -> None:
        sc = self.pending.pop(0) if self.pending else None
        if sc is not None and sc.kind == "status":
            p = sc.params
            headers = {"retry-after": p["retry_after"]} if p["retry_after"] else None
            await self._json(resp, problem(p["code"], p["title"] or "Error", p["detail"] or f"mock {p['code']}"),
                             p["code"], headers)
            return
        body = req.json if isinstance(req.json, dict) else {}
        self._validate(model, body.get("input"))
        pid = hashlib.sha1(f"p{next(self._ids)}".encode()).hexdigest()[:26]
        tokens = self._output_tokens(model, body["input"])
        prediction = Prediction(pid, model, version, body["input"], tokens, sc)
        if sc is not None and sc.kind == "slow":
            prediction.steps = sc.params["steps"]
        self.predictions[pid] = prediction
        wait = re.match(r"wait(?:=(\d+))?", req.headers.get("prefer", ""))
        if wait is not None:
            if sc is None:
                self._finish(prediction)
            else:  # the wait times out (quickly here) with the prediction still running
                await asyncio.sleep(min(float(wait.group(1) or 60), self.wait_cap))
                self._advance(prediction)
        await self._json(resp, self._prediction_obj(prediction), 201)

    def _finish(self, p: Prediction) -> None:
        kind = p.scenario.kind if p.scenario else ""
        if kind == "stuck":
            p.status, p.shown = "processing", min(p.scenario.params["after"], len(p.tokens))  # type: ignore[union-attr]
        elif kind in ("fail", "canceled"):
            p.shown = min(p.scenario.params["after"], len(p.tokens))  # type: ignore[union-attr]
            p.status = "failed" if kind == "fail" else "canceled"
            p.error = p.scenario.params.get("error") if kind == "fail" else None  # type: ignore[union-attr]
        else:
            p.status, p.shown = "succeeded", len(p.tokens)

    def _advance(self, p: Prediction) -> None:
        if p.terminal:
            return
        p.step += 1
        if p.step >= p.steps:
            self._finish(p)
        else:
            p.status = "processing"
            p.shown = min(len(p.tokens), math.ceil(len(p.tokens) * p.step / p.steps))

    def _prediction_obj(self, p: Prediction) -> dict[str, Any]:
        output = None if p.status == "starting" else p.tokens[:p.shown]
        obj: dict[str, Any] = {
            "id": p.id, "model": p.model.name, "version": p.version or "hidden", "input": p.input,
            "logs": "Loading weights...\n" if p.status != "starting" else "", "output": output, "error": p.error,
            "status": p.status, "data_removed": False,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(p.created_at)),
            "urls": {"get": f"{self.url}/v1/predictions/{p.id}", "cancel": f"{self.url}/v1/predictions/{p.id}/cancel",
                     "web": f"https://replicate.com/p/{p.id}"},
        }
        if p.model.stream and p.model.kind == "llm":
            obj["urls"]["stream"] = f"{self.url}/stream/{p.id}"
        if p.terminal:
            obj["completed_at"] = obj["created_at"]
            obj["metrics"] = {"predict_time": 0.42}
            if p.model.kind == "llm" and p.status == "succeeded":
                prompt = str(p.input.get("prompt", "")) + str(p.input.get("system_prompt", ""))
                obj["metrics"].update({"input_token_count": 5 + len(prompt) // 4, "output_token_count": len(p.tokens)})
        return obj

    async def _stream(self, resp: Response, p: Prediction) -> None:
        kind = p.scenario.kind if p.scenario else ""
        after = p.scenario.params.get("after", 0) if p.scenario else 0
        await resp.start(200, {"content-type": "text/event-stream", "cache-control": "no-store"})
        writer = SSEWriter(resp, StreamStyle(keepalive=True, keepalive_every=4, split=True, coalesce=True))
        ids = itertools.count(1)
        stop_at = after if kind in ("fail", "canceled", "stuck", "truncate") else len(p.tokens)
        for n, token in enumerate(p.tokens[:stop_at]):
            await writer.event(token, event="output", id=f"{next(ids)}:0")
            if n % 2 == 1:
                await writer.event(f"step {n}: generated token", event="logs", id=f"{next(ids)}:0")
        if kind == "stuck":
            await writer.flush()
            await resp.wait_disconnected(30.0)
            await resp.abort()
            return
        if kind == "truncate":
            await writer.raw(b"event: output\nid: 99:0\ndata: hal")
            await writer.flush()
            await resp.abort()
            return
        if kind == "fail":
            p.status, p.error = "failed", p.scenario.params["error"]  # type: ignore[union-attr]
            await writer.event({"detail": p.error}, event="error", id=f"{next(ids)}:0")
        elif kind == "canceled":
            p.status = "canceled"
            await writer.event({"reason": "canceled"}, event="done", id=f"{next(ids)}:0")
        else:
            p.status, p.shown = "succeeded", len(p.tokens)
            await writer.event({}, event="done", id=f"{next(ids)}:0")
        await writer.close()
