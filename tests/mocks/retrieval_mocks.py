"""Faithful mocks of the embedding/rerank specialists: Jina, Voyage, Mixedbread and Nomic.

One :class:`RetrievalMock` class, configured by a :class:`Dialect` per provider (providers.md B9):

    provider    embeddings                                   rerank
    jina        POST /v1/embeddings {input, task, dimensions} POST /v1/rerank {documents, top_n}
                → data[{index, embedding}]                    → results[{index, relevance_score, document?{text}}]
    voyage      POST /v1/embeddings {input, input_type,       POST /v1/rerank {documents, top_k}
                output_dimension} → data[…]                   → data[{index, relevance_score, document?}]
    mixedbread  POST /v1/embeddings {input, prompt,           POST /v1/reranking {input, top_k, return_input}
                dimensions} → data[…]                         → data[{index, score, input?}]
    nomic       POST /v1/embedding/text {texts, task_type,    —
                dimensionality} → {embeddings: [[…]], usage}

What every dialect does: Bearer auth (401 ``{"detail"}`` otherwise); 4xx ``{"detail"}`` for an
unknown model, a bad task value, strings sent to a model that takes ``{"text"}`` objects, or
dimensions the model cannot produce; deterministic unit vectors (``expected_vector``) that depend on
model, text, task value and dimensions; usage counted at one token per four characters; rerank
scores (``score``) from word overlap, results sorted by score and cut to top_n/top_k (a limit larger
than the document count returns every document). Voyage answers 400 when a batch has more than
``max_batch`` inputs or more tokens than the model's budget.

Per-request edge cases are queued with :meth:`RetrievalMock.enqueue`: ``error(status, detail,
headers)`` replies with an error body; ``effect(name)`` alters the next good reply:
``other_model`` (reply names another model), ``no_vectors`` / ``wrong_count`` (embeddings),
``no_results`` / ``unsorted`` (rerank), ``reversed`` (embeddings out of index order).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from .httpserver import MockServer, Request, Response

WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Dialect:
    name: str
    embed_path: str
    texts_field: str
    vectors: str  # "data" (items with index) | "embeddings" (bare vectors)
    usage_keys: tuple[str, ...]
    dims: dict[str, int]  # embedding model (as sent on the wire) → native dimensions
    input_type_field: str = ""
    input_type_values: tuple[str, ...] | None = None  # accepted values; None: any string
    dimensions_field: str = "dimensions"
    dims_choices: tuple[int, ...] | None = None  # Voyage: 256/512/1024/2048 only
    fixed_dims: frozenset[str] = frozenset()  # models that refuse a dimensions value
    object_models: frozenset[str] = frozenset()  # models that take {"text"} objects, never strings
    rerank_path: str = ""
    rerankers: frozenset[str] = frozenset()
    docs_field: str = "documents"
    top_field: str = "top_n"
    echo_flag: str = "return_documents"
    results_key: str = "results"
    score_key: str = "relevance_score"
    echo_key: str = "document"
    echo_object: bool = False  # Jina echoes {"text"}, Voyage a string
    max_batch: int | None = None
    token_budget: dict[str, int] = field(default_factory=dict)
    bad_status: int = 422  # what the API answers to an invalid body


JINA = Dialect(
    "jina", "/v1/embeddings", "input", "data", ("total_tokens", "prompt_tokens"),
    dims={"jina-embeddings-v3": 1024, "jina-embeddings-v4": 2048, "jina-embeddings-v2-base-en": 768,
          "jina-embeddings-v2-base-de": 768, "jina-clip-v2": 1024},
    input_type_field="task",
    input_type_values=("retrieval.query", "retrieval.passage", "text-matching", "classification", "separation"),
    fixed_dims=frozenset({"jina-embeddings-v2-base-en", "jina-embeddings-v2-base-de"}),
    object_models=frozenset({"jina-embeddings-v4", "jina-clip-v2", "jina-reranker-m0"}),
    rerank_path="/v1/rerank",
    rerankers=frozenset({"jina-reranker-v2-base-multilingual", "jina-reranker-m0", "jina-reranker-v1-base-en",
                         "jina-colbert-v2"}),
    echo_object=True,
)
VOYAGE = Dialect(
    "voyage", "/v1/embeddings", "input", "data", ("total_tokens",),
    dims={"voyage-3.5": 1024, "voyage-3.5-lite": 1024, "voyage-3-large": 1024, "voyage-code-3": 1024},
    input_type_field="input_type", input_type_values=("query", "document"),
    dimensions_field="output_dimension", dims_choices=(256, 512, 1024, 2048),
    rerank_path="/v1/rerank", rerankers=frozenset({"rerank-2.5", "rerank-2.5-lite"}),
    top_field="top_k", results_key="data",
    max_batch=1000,
    token_budget={"voyage-3.5": 320_000, "voyage-3.5-lite": 1_000_000, "voyage-3-large": 120_000,
                  "voyage-code-3": 120_000},
    bad_status=400,
)
MIXEDBREAD = Dialect(
    "mixedbread", "/v1/embeddings", "input", "data", ("prompt_tokens", "total_tokens"),
    dims={"mixedbread-ai/mxbai-embed-large-v1": 1024},
    input_type_field="prompt",
    rerank_path="/v1/reranking", rerankers=frozenset({"mixedbread-ai/mxbai-rerank-large-v2"}),
    docs_field="input", top_field="top_k", echo_flag="return_input", results_key="data", score_key="score",
    echo_key="input",
)
NOMIC = Dialect(
    "nomic", "/v1/embedding/text", "texts", "embeddings", ("prompt_tokens", "total_tokens"),
    dims={"nomic-embed-text-v1.5": 768, "nomic-embed-text-v1": 768},
    input_type_field="task_type",
    input_type_values=("search_query", "search_document", "classification", "clustering"),
    dimensions_field="dimensionality", fixed_dims=frozenset({"nomic-embed-text-v1"}),
    bad_status=400,
)
DIALECTS = {d.name: d for d in (JINA, VOYAGE, MIXEDBREAD, NOMIC)}


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def expected_vector(model: str, text: str, task: Any, dims: int) -> list[float]:
    """The unit vector the mock returns for ``text`` (float32-exact, as JSON carries it)."""
    seed = int.from_bytes(hashlib.sha256(f"{model}|{task}|{text}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def score(query: str, doc: str) -> float:
    """Share of the query's words found in the document, plus a small deterministic tie-break."""
    q = {w.lower() for w in WORD.findall(query)}
    d = {w.lower() for w in WORD.findall(doc)}
    overlap = len(q & d) / len(q) if q else 0.0
    tie = int(hashlib.sha256(doc.encode()).hexdigest()[:4], 16) / 65536 / 100
    return round(overlap * 0.98 + tie, 6)


@dataclass
class Scenario:
    status: int | None = None
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    effect: str = ""


def error(status: int, detail: str = "", headers: dict[str, str] | None = None) -> Scenario:
    return Scenario(status=status, detail=detail or f"HTTP {status}", headers=headers or {})


def effect(name: str) -> Scenario:
    return Scenario(effect=name)


class BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class RetrievalMock:
    """A real HTTP server speaking one provider's dialect; ``url`` is its root (add ``/v1``)."""

    def __init__(self, dialect: Dialect, api_key: str) -> None:
        self.dialect = dialect
        self.api_key = api_key
        self.max_batch = dialect.max_batch
        self.scenarios: deque[Scenario] = deque()
        self.server = MockServer(self._handle)

    async def __aenter__(self) -> Self:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def enqueue(self, *scenarios: Scenario) -> None:
        self.scenarios.extend(scenarios)

    def reset(self) -> None:
        self.scenarios.clear()
        self.max_batch = self.dialect.max_batch

    # ---- HTTP ---------------------------------------------------------------------------------

    async def _send(self, resp: Response, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        await resp.send(status, {"content-type": "application/json", **(headers or {})}, json.dumps(body))

    async def _handle(self, req: Request, resp: Response) -> None:
        d = self.dialect
        if req.header("authorization") != f"Bearer {self.api_key}":
            await self._send(resp, 401, {"detail": "Unauthorized: invalid or missing API key"})
            return
        routes = {d.embed_path: self._embed}
        if d.rerank_path:
            routes[d.rerank_path] = self._rerank
        route = routes.get(req.path)
        if req.method != "POST" or route is None:
            await self._send(resp, 404, {"detail": "Not Found"})
            return
        scenario = self.scenarios.popleft() if self.scenarios else Scenario()
        if scenario.status is not None:
            await self._send(resp, scenario.status, {"detail": scenario.detail}, scenario.headers)
            return
        if not isinstance(req.json, dict):
            await self._send(resp, d.bad_status, {"detail": "Request body must be a JSON object"})
            return
        try:
            body = route(req.json, scenario.effect)
        except BadRequest as exc:
            await self._send(resp, exc.status, {"detail": exc.detail})
            return
        await self._send(resp, 200, body)

    # ---- embeddings ---------------------------------------------------------------------------

    def _texts(self, model: str, items: Any) -> list[str]:
        if not isinstance(items, list) or not items:
            raise BadRequest(self.dialect.bad_status, f"'{self.dialect.texts_field}' must be a non-empty list")
        texts = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif isinstance(item, str) and model not in self.dialect.object_models:
                texts.append(item)
            else:
                raise BadRequest(self.dialect.bad_status, f"Model {model} expects inputs of the form {{\"text\": …}}")
        return texts

    def _embed(self, body: dict[str, Any], fx: str) -> dict[str, Any]:
        d = self.dialect
        model = body.get("model")
        if model not in d.dims:
            raise BadRequest(d.bad_status, f"Model '{model}' is not a supported embedding model")
        texts = self._texts(model, body.get(d.texts_field))
        task = body.get(d.input_type_field) if d.input_type_field else None
        if task is not None and (not isinstance(task, str) or
                                 (d.input_type_values is not None and task not in d.input_type_values)):
            raise BadRequest(d.bad_status, f"Invalid {d.input_type_field} {task!r}")
        dims = self._dims(model, body.get(d.dimensions_field))
        tokens = sum(approx_tokens(t) for t in texts)
        if self.max_batch is not None and len(texts) > self.max_batch:
            raise BadRequest(400, f"The batch size limit is {self.max_batch}. Your batch size is {len(texts)}.")
        budget = d.token_budget.get(model)
        if budget is not None and tokens > budget:
            raise BadRequest(400, f"Request to model '{model}' failed. The max allowed tokens per submitted batch "
                                  f"is {budget}. Your batch has {tokens} tokens after truncation.")
        vectors = [expected_vector(model, t, task, dims) for t in texts]
        if fx == "wrong_count":
            vectors = vectors[:-1] if len(vectors) > 1 else vectors * 2
        reply: dict[str, Any] = {"model": model + "-2025-01" if fx == "other_model" else model,
                                 "usage": {k: tokens for k in d.usage_keys}}
        if d.vectors == "data":
            data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
            reply.update({"object": "list", "data": data[::-1] if fx == "reversed" else data})
        else:
            reply.update({"embeddings": vectors, "inference_mode": "remote"})
        if fx == "no_vectors":
            reply.pop(d.vectors)
        return reply

    def _dims(self, model: str, requested: Any) -> int:
        d = self.dialect
        native = d.dims[model]
        if requested is None:
            return native
        if model in d.fixed_dims:
            raise BadRequest(d.bad_status, f"Model {model} does not support {d.dimensions_field}")
        largest = max((native, *(d.dims_choices or ())))
        if not isinstance(requested, int) or not 0 < requested <= largest or (
                d.dims_choices and requested not in d.dims_choices):
            raise BadRequest(d.bad_status, f"Invalid {d.dimensions_field} {requested!r} for {model}")
        return requested

    # ---- rerank -------------------------------------------------------------------------------

    def _rerank(self, body: dict[str, Any], fx: str) -> dict[str, Any]:
        d = self.dialect
        model = body.get("model")
        if model not in d.rerankers:
            raise BadRequest(d.bad_status, f"Model '{model}' is not a supported reranker")
        query = body.get("query")
        if not isinstance(query, str) or not query:
            raise BadRequest(d.bad_status, "'query' must be a non-empty string")
        docs = self._texts(model, body.get(d.docs_field))
        top = body.get(d.top_field)
        if top is not None and (not isinstance(top, int) or top < 1):
            raise BadRequest(d.bad_status, f"'{d.top_field}' must be a positive integer")
        ranked = sorted(((i, score(query, doc)) for i, doc in enumerate(docs)), key=lambda p: -p[1])
        ranked = ranked[:top] if top else ranked  # a limit above len(docs) simply returns them all
        if fx == "unsorted":
            ranked.reverse()
        echo = bool(body.get(d.echo_flag))
        results = []
        for index, value in ranked:
            item: dict[str, Any] = {"index": index, d.score_key: value}
            if d.name == "mixedbread":
                item["object"] = "rank_result"
            if echo:
                item[d.echo_key] = {"text": docs[index]} if d.echo_object else docs[index]
            results.append(item)
        tokens = approx_tokens(query) * len(docs) + sum(approx_tokens(doc) for doc in docs)
        reply: dict[str, Any] = {"model": model + "-2025-01" if fx == "other_model" else model,
                                 "usage": {"total_tokens": tokens}, d.results_key: results}
        if d.results_key == "data":
            reply["object"] = "list"
        if d.name == "mixedbread":
            reply.update({"top_k": top, "return_input": echo})
        if fx == "no_results":
            reply.pop(d.results_key)
        return reply
