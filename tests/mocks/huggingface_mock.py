"""A faithful mock of Hugging Face inference (serverless router, TGI, TEI, inference toolkit) and the
bits of the Hub / Endpoints APIs Dify's credential checks use, on the raw HTTP/1.1 server.

    async with HuggingFaceMock() as mock:
        # point the adapter's serverless and API roots at the mock (runtime options)
        options.update(mock.runtime_options())
        mock.enqueue(loading(20.0))

Routes (all need ``Authorization: Bearer <token>``, else 401 ``{"error": "Invalid credentials in
Authorization header"}``):

* ``POST /hf-inference/models/{repo}`` — serverless generation (a list ``[{"generated_text",
  "details"?}]`` like TGI's compat route; SSE with ``"stream": true`` for TGI models);
  ``POST /hf-inference/models/{repo}/pipeline/feature-extraction`` — embeddings;
* ``POST /endpoints/{name}`` (compat route: list reply or SSE), ``/endpoints/{name}/generate``
  (an object ``{"generated_text", "details"}``) and ``/generate_stream`` — Inference Endpoints;
  a ``pipeline`` endpoint (the inference toolkit) ignores ``stream`` and always answers JSON;
* ``GET /api/models/{repo}`` (``pipeline_tag``, ``cardData``) and ``GET /v2/endpoint/{namespace}``.

TGI behaviour: ``temperature`` must be > 0, ``top_p`` in (0, 1), ``top_k`` > 0, ``max_new_tokens``
<= 1024 and at most 4 stop words, else 422 ``{"error", "error_type": "validation"}``. The reply is
``"Echo: <inputs>"`` in tokens with their leading spaces, cut by ``max_new_tokens`` (finish
``length``) or after a stop word, which TGI keeps in the text (``stop_sequence``), else ended by a
special ``</s>`` token (``eos_token``). Stream events are ``data:{...}`` without a space, one per
token, the last with ``generated_text`` and ``details`` (``finish_reason``, ``generated_tokens``,
``seed``, ``input_length``). Feature extraction answers ``[texts][dims]`` for pooled models and
``[texts][tokens][dims]`` for token-level ones.

Scenarios (``mock.enqueue(...)``, FIFO, taken by the next inference POST): :func:`loading` (503
``{"error": "Model X is currently loading", "estimated_time"}``), :func:`overloaded` (429
``error_type: overloaded``), :func:`status`, :func:`stream_error_after` (an error event under the
200), :func:`truncate_after` (no final event, optionally half an event), :func:`hang`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Self

from .httpserver import ConnectionRecord, MockServer, Request, Response
from .sse import SSEWriter, StreamStyle

TOKEN = "hf_mock_token_abcdefghij"
NAMESPACE = "acme"
MAX_NEW_TOKENS = 1024
DEFAULT_NEW_TOKENS = 100


@dataclass(frozen=True)
class HFModel:
    repo: str
    task: str  # text-generation | text2text-generation | feature-extraction | sentence-similarity | text-to-image
    tgi: bool = True  # generation served by TGI (streams, details); False: the transformers pipeline
    token_level: bool = False  # feature extraction answers token vectors
    dims: int = 8
    inference: bool = True  # cardData.inference


DEFAULT_MODELS = (
    HFModel("HuggingFaceH4/zephyr-7b-beta", "text-generation"),
    HFModel("google/flan-t5-base", "text2text-generation", tgi=False),
    HFModel("sentence-transformers/all-MiniLM-L6-v2", "sentence-similarity"),
    HFModel("google-bert/bert-base-uncased", "feature-extraction", token_level=True, dims=6),
    HFModel("stabilityai/stable-diffusion-xl-base-1.0", "text-to-image"),
    HFModel("acme/no-inference", "text-generation", inference=False),
)
# endpoint name -> (repo, served by: tgi | pipeline | tei)
DEFAULT_ENDPOINTS = {
    "tgi-zephyr": ("HuggingFaceH4/zephyr-7b-beta", "tgi"),
    "toolkit-zephyr": ("HuggingFaceH4/zephyr-7b-beta", "pipeline"),
    "tei-bert": ("google-bert/bert-base-uncased", "tei"),
}


@dataclass
class Scenario:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def loading(estimated_time: float = 20.0) -> Scenario:
    return Scenario("loading", {"estimated_time": estimated_time})


def overloaded() -> Scenario:
    return Scenario("status", {"code": 429, "body": {"error": "Model is overloaded", "error_type": "overloaded"}})


def status(code: int, error: str = "mock error") -> Scenario:
    return Scenario("status", {"code": code, "body": {"error": error}})


def stream_error_after(tokens: int = 2, error: str = "Request failed during generation: Server error: "
                       "CUDA out of memory", error_type: str = "generation") -> Scenario:
    return Scenario("stream_error", {"after": tokens, "error": error, "error_type": error_type})


def truncate_after(tokens: int = 2, partial: bool = False) -> Scenario:
    return Scenario("truncate", {"after": tokens, "partial": partial})


def hang() -> Scenario:
    return Scenario("hang")


def tokens_of(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


def _row(repo: str, text: str, index: int, dims: int) -> list[float]:
    seed = hashlib.sha256(f"{repo}|{text}|{index}".encode()).digest()
    return [round((seed[i % 32] - 127.5) / 128.0, 6) for i in range(dims)]


def token_vectors(repo: str, text: str, dims: int) -> list[list[float]]:
    """[CLS] + one row per word + [SEP], as a token-level model answers."""
    return [_row(repo, text, i, dims) for i in range(len(text.split()) + 2)]


def expected_embedding(model: HFModel, text: str) -> list[float]:
    if not model.token_level:
        return _row(model.repo, text, -1, model.dims)
    rows = token_vectors(model.repo, text, model.dims)
    return [sum(r[k] for r in rows) / len(rows) for k in range(model.dims)]


class HFError(Exception):
    def __init__(self, code: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.code, self.body = code, body


class HuggingFaceMock:
    def __init__(self, models: tuple[HFModel, ...] = DEFAULT_MODELS, token: str = TOKEN,
                 endpoints: dict[str, tuple[str, str]] | None = None) -> None:
        self.models = {m.repo: m for m in models}
        self.endpoints = dict(DEFAULT_ENDPOINTS if endpoints is None else endpoints)
        self.token = token
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []

    async def start(self) -> HuggingFaceMock:
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

    def runtime_options(self) -> dict[str, str]:
        return {"hosted_base_url": f"{self.url}/hf-inference/models", "hub_api_url": self.url,
                "endpoints_api_url": self.url}

    def endpoint_url(self, name: str) -> str:
        return f"{self.url}/endpoints/{name}"

    def enqueue(self, *scenarios: Scenario) -> None:
        self.pending.extend(scenarios)

    def expected_reply(self, inputs: str) -> str:
        return f"Echo: {inputs}"

    # ------------------------------------------------------------------ handling

    async def _json(self, resp: Response, body: Any, code: int = 200) -> None:
        await resp.send(code, {"content-type": "application/json"}, json.dumps(body).encode())

    def _model(self, repo: str) -> HFModel:
        if repo not in self.models:
            raise HFError(404, {"error": f"Model {repo} does not exist"})
        return self.models[repo]

    async def _handle(self, req: Request, resp: Response) -> None:
        try:
            if req.headers.get("authorization") != f"Bearer {self.token}":
                raise HFError(401, {"error": "Invalid credentials in Authorization header"})
            path = req.path
            if req.method == "GET" and path.startswith("/api/models/"):
                repo = path.removeprefix("/api/models/")
                if repo not in self.models:
                    raise HFError(404, {"error": "Repository not found"})
                m = self.models[repo]
                await self._json(resp, {"id": repo, "modelId": repo, "pipeline_tag": m.task, "private": False,
                                        "cardData": {"license": "mit", **({} if m.inference else {"inference": False})}})
            elif req.method == "GET" and path.startswith("/v2/endpoint/"):
                if path.removeprefix("/v2/endpoint/") != NAMESPACE:
                    raise HFError(404, {"error": "Namespace not found"})
                await self._json(resp, {"items": [
                    {"name": name, "model": {"repository": repo, "task": self.models[repo].task,
                                             "framework": "pytorch"},
                     "status": {"state": "running", "url": self.endpoint_url(name)}}
                    for name, (repo, _) in self.endpoints.items()]})
            elif req.method == "POST" and path.startswith("/hf-inference/models/"):
                repo = path.removeprefix("/hf-inference/models/")
                if repo.endswith("/pipeline/feature-extraction"):
                    await self._infer(req, resp, self._model(repo.removesuffix("/pipeline/feature-extraction")),
                                      "embed")
                else:
                    m = self._model(repo)
                    await self._infer(req, resp, m, "compat" if m.tgi else "pipeline")
            elif req.method == "POST" and path.startswith("/endpoints/"):
                name, _, route = path.removeprefix("/endpoints/").partition("/")
                if name not in self.endpoints:
                    raise HFError(404, {"error": "Endpoint not found"})
                repo, served = self.endpoints[name]
                if served == "tei":
                    kind = "embed"
                elif served == "pipeline":
                    kind = "pipeline"
                else:
                    kind = {"": "compat", "generate": "generate", "generate_stream": "generate_stream"}.get(route, "")
                if not kind or (route and served != "tgi"):
                    raise HFError(404, {"error": "Not Found"})
                await self._infer(req, resp, self.models[repo], kind)
            else:
                raise HFError(404, {"error": "Not Found"})
        except HFError as err:
            await self._json(resp, err.body, err.code)

    async def _infer(self, req: Request, resp: Response, m: HFModel, kind: str) -> None:
        sc = self.pending.pop(0) if self.pending else None
        if sc is not None and sc.kind == "loading":
            raise HFError(503, {"error": f"Model {m.repo} is currently loading",
                                "estimated_time": sc.params["estimated_time"]})
        if sc is not None and sc.kind == "status":
            raise HFError(sc.params["code"], sc.params["body"])
        body = req.json if isinstance(req.json, dict) else None
        if body is None or "inputs" not in body:
            raise HFError(422, {"error": "Failed to deserialize the JSON body: missing field `inputs`",
                                "error_type": "validation"})
        if kind == "embed":
            if m.task not in ("feature-extraction", "sentence-similarity"):
                raise HFError(400, {"error": f"{m.repo} is not a feature-extraction model"})
            texts = body["inputs"] if isinstance(body["inputs"], list) else [body["inputs"]]
            out = [token_vectors(m.repo, t, m.dims) if m.token_level else expected_embedding(m, t) for t in texts]
            await self._json(resp, out if isinstance(body["inputs"], list) else out[0])
            return
        if m.task not in ("text-generation", "text2text-generation"):
            raise HFError(400, {"error": f"{m.repo} does not support text generation"})
        params = body.get("parameters") or {}
        if m.tgi and kind != "pipeline":
            self._validate(params)
        text, finish, count = self._generate(str(body["inputs"]), params)
        stream = kind == "generate_stream" or (kind == "compat" and body.get("stream"))
        if stream:
            await self._stream(resp, body, text, finish, sc)
            return
        item: dict[str, Any] = {"generated_text": (str(body["inputs"]) if params.get("return_full_text") else "") + text}
        if params.get("details") and kind != "pipeline":
            item["details"] = {"finish_reason": finish, "generated_tokens": count, "seed": params.get("seed"),
                               "prefill": [], "tokens": []}
        await self._json(resp, item if kind == "generate" else [item])

    def _validate(self, params: dict[str, Any]) -> None:
        def invalid(message: str) -> HFError:
            return HFError(422, {"error": f"Input validation error: {message}", "error_type": "validation"})

        if "temperature" in params and not params["temperature"] > 0:
            raise invalid("`temperature` must be strictly positive")
        if "top_p" in params and not 0 < params["top_p"] < 1:
            raise invalid("`top_p` must be > 0.0 and < 1.0")
        if "top_k" in params and not params["top_k"] > 0:
            raise invalid("`top_k` must be strictly positive")
        if params.get("max_new_tokens", 0) > MAX_NEW_TOKENS:
            raise invalid(f"`max_new_tokens` must be <= {MAX_NEW_TOKENS}. Given: {params['max_new_tokens']}")
        if len(params.get("stop") or ()) > 4:
            raise invalid("`stop` supports up to 4 stop sequences. Given: " + str(len(params["stop"])))

    def _generate(self, inputs: str, params: dict[str, Any]) -> tuple[str, str, int]:
        """(generated text, finish reason, generated token count incl. a final eos)."""
        tokens = tokens_of(self.expected_reply(inputs))
        limit = int(params.get("max_new_tokens") or DEFAULT_NEW_TOKENS)
        stops = [s for s in params.get("stop") or () if s]
        text = ""
        for n, token in enumerate(tokens, 1):
            text += token
            if any(s in text for s in stops):
                return text, "stop_sequence", n
            if n >= limit and n < len(tokens):
                return text, "length", n
        return text, "eos_token", len(tokens) + 1

    async def _stream(self, resp: Response, body: dict[str, Any], text: str, finish: str,
                      sc: Scenario | None) -> None:
        if sc is not None and sc.kind == "hang":
            await resp.start(200, {"content-type": "text/event-stream"})
            await resp.wait_disconnected(30.0)
            await resp.abort()
            return
        await resp.start(200, {"content-type": "text/event-stream", "cache-control": "no-cache"})
        writer = SSEWriter(resp, StreamStyle(space_after_colon=False, split=True, coalesce=True))
        pieces = tokens_of(text)
        events = [{"index": i + 1, "token": {"id": 1000 + i, "text": t, "logprob": -0.25, "special": False},
                   "generated_text": None, "details": None} for i, t in enumerate(pieces)]
        if finish == "eos_token":
            events.append({"index": len(pieces) + 1, "token": {"id": 2, "text": "</s>", "logprob": -0.01,
                                                               "special": True},
                           "generated_text": None, "details": None})
        events[-1]["generated_text"] = text
        events[-1]["details"] = {"finish_reason": finish, "generated_tokens": len(events), "seed": None,
                                 "input_length": 3 + math.ceil(len(str(body["inputs"])) / 4)}
        for n, event in enumerate(events):
            if sc is not None and n == sc.params.get("after"):
                if sc.kind == "stream_error":
                    await writer.event({"error": sc.params["error"], "error_type": sc.params["error_type"]})
                elif sc.params.get("partial"):
                    await writer.raw(b'data:{"index":9,"token":{"id":1,"te')
                break
            await writer.event(event)
        await writer.close()
