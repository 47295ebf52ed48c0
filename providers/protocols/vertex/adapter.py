"""The Vertex AI adapter family: Gemini, Claude and text embeddings on Google Cloud.

Credentials (the provider YAML's form, Dify's ``vertex_ai`` names):

    vertex_project_id           the Google Cloud project that is billed
    vertex_location             a region (us-central1, europe-west4, ...) or ``global``
    vertex_service_account_key  the service-account key JSON, raw or base64 (a secret input,
                                so the runtime scrubs its value from every error)
    vertex_endpoint_url         optional: replaces https://{location}-aiplatform.googleapis.com
    vertex_token_uri            optional: replaces the key's token_uri

How a call goes (modules of this package):

- :mod:`.auth` turns the key into an access token (a signed JWT exchanged at the token
  endpoint) and caches it per service account until shortly before it expires;
- :mod:`.endpoint` builds the model URLs and the bearer header, and retries a call once with
  a new token when Vertex answers 401 before anything was streamed;
- here, :class:`VertexChat` routes ``claude-*`` models to the Anthropic adapter and all
  others to the Gemini adapter, and :class:`VertexEmbeddings` runs ``:predict``.

Credential checks do what Dify's Vertex AI provider does: a tiny real generation ("ping",
at most 5 output tokens) on a cheap model (``runtime.validate_model``), which proves the key,
the token exchange, the project, the location and the model access in one request. A model
check pings that model (or embeds "ping" for an embedding model).

Chat is the Gemini adapter for ``gemini-*`` (and any other Google model) and the Anthropic
adapter for ``claude-*``, each pointed at Vertex by an endpoint from :mod:`.endpoint`: the
transforms, stream assembly and error mapping are theirs, and so is the stream rule that
nothing is yielded before Vertex answered 2xx, which is what lets a 401 be retried. The
adapter holds one :class:`~.auth.TokenCache`, shared by every call of this provider.

Embeddings use Vertex's ``:predict`` (text-embedding-005, text-multilingual-embedding-002,
gemini-embedding-001)::

    {"instances": [{"content": "...", "task_type": "RETRIEVAL_DOCUMENT"}, ...],
     "parameters": {"outputDimensionality": 768}}
    → {"predictions": [{"embeddings": {"values": [...],
                                       "statistics": {"token_count": 6, "truncated": false}}}]}

``input_type`` picks the task type as on the Gemini API (query → RETRIEVAL_QUERY, document →
RETRIEVAL_DOCUMENT). Long texts are split, batched (``max_chunks`` per request, from the model
YAML: gemini-embedding-001 takes one instance per request on Vertex) and averaged by the kit
(:func:`providers.kit.embeddings.embed_in_batches`); only the ``:predict`` shapes are here, so
the embeddings depend on no Gemini internals. Unlike the Gemini API, Vertex reports each
instance's token count, so usage is Vertex's own count; a batch without one is estimated with
tiktoken's ``o200k_base``, as the Gemini API's counts are. Error bodies are Google's
``{"error": {"code", "message", "status"}}``, mapped by HTTP status.

Options (:class:`~.options.VertexOptions`): ``base_url`` (the regional host template),
``global_base_url``, ``base_url_credential`` (vertex_endpoint_url) and ``validate_model``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine.adapter import Adapter, CallContext, LLMRequest
from engine.entities import ModelType, ProviderEntity
from engine.messages import (
    ContentPart,
    EmbeddingResult,
    LLMChunk,
    LLMResult,
    PartKind,
    PromptMessage,
    Role,
    Tool,
)
from engine.options import ProtocolOptions
from engine.tokenizers import get_encoding
from providers.kit import http
from providers.kit.embeddings import decode_vector, embed_in_batches, int_prop
from providers.protocols.anthropic.chat import AnthropicChat
from providers.protocols.gemini.chat import GeminiChat

from .auth import TokenCache
from .endpoint import ClaudeEndpoint, GeminiEndpoint, is_claude, options, stream_with_token, with_token
from .options import VertexOptions

PING_MAX_TOKENS = 5
PREDICT_MAX_INSTANCES = 250  # Vertex's limit of instances in one text-embedding :predict call
TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}


def _ping() -> LLMRequest:
    return LLMRequest(messages=[PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="ping")])],
                      parameters={"max_tokens": PING_MAX_TOKENS})


def approximate_tokens(text: str) -> int:
    return len(get_encoding("o200k_base").encode(text, disallowed_special=())) if text else 0


# ---- capabilities ------------------------------------------------------------------------------


class VertexChat:
    """LLMModel for Vertex AI: Gemini through ``generateContent``, Claude through ``rawPredict``."""

    def __init__(self, tokens: TokenCache) -> None:
        self.tokens = tokens

    @staticmethod
    def _for(ctx: CallContext, token: str) -> Any:
        if is_claude(ctx.model):
            return AnthropicChat(ClaudeEndpoint(token))
        return GeminiChat(GeminiEndpoint(token))

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        return await with_token(ctx, self.tokens, lambda token: self._for(ctx, token).generate(ctx, request))

    def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        return stream_with_token(ctx, self.tokens, lambda token: self._for(ctx, token).stream(ctx, request))

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        """The model's own count: Gemini ``:countTokens``, Claude ``count-tokens:rawPredict`` (free)."""
        return await with_token(
            ctx, self.tokens, lambda token: self._for(ctx, token).count_tokens(ctx, messages, tools))


def predict_body(texts: list[str], task: str, dimensions: int | None) -> dict[str, Any]:
    instances = [{"content": text, "task_type": task} if task else {"content": text} for text in texts]
    body: dict[str, Any] = {"instances": instances}
    if dimensions:
        body["parameters"] = {"outputDimensionality": int(dimensions)}
    return body


def read_predictions(parsed: Any) -> tuple[list[list[float]], int | None]:
    """(vectors in request order, Vertex's token count or None when an instance has none)."""
    predictions = parsed.get("predictions") if isinstance(parsed, dict) else None
    if not isinstance(predictions, list):
        return [], None
    vectors: list[list[float]] = []
    tokens: int | None = 0
    for prediction in predictions:
        embedding = prediction.get("embeddings") if isinstance(prediction, dict) else None
        vectors.append(decode_vector(embedding.get("values") if isinstance(embedding, dict) else None))
        stats = embedding.get("statistics") if isinstance(embedding, dict) else None
        count = stats.get("token_count") if isinstance(stats, dict) else None
        if tokens is not None and isinstance(count, (int, float)) and not isinstance(count, bool):
            tokens += int(count)
        else:
            tokens = None
    return vectors, tokens


class VertexEmbeddings:
    """TextEmbeddingModel for Vertex AI's ``:predict`` embeddings."""

    def __init__(self, tokens: TokenCache) -> None:
        self.tokens = tokens

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        return await with_token(ctx, self.tokens,
                                lambda token: self._embed(ctx, token, texts, input_type, dimensions))

    async def _embed(self, ctx: CallContext, token: str, texts: list[str], input_type: str,
                     dimensions: int | None) -> EmbeddingResult:
        """One attempt with one access token (a 401 makes :func:`with_token` run it again)."""
        target = GeminiEndpoint(token)
        url = target.url(ctx, ctx.model, "predict")
        headers = await target.headers(ctx)
        task = TASK_TYPES.get(input_type or "document", "")

        async def post(batch: list[str]) -> tuple[list[list[float]], int | None]:
            response = await ctx.http.request("POST", url, headers=headers, deadline=ctx.deadline,
                                              content=http.dumps(predict_body(batch, task, dimensions)))
            await http.check_status(response, http.error_message)
            vectors, tokens = read_predictions(http.json_body(response.content))
            return vectors, tokens if tokens is not None else sum(approximate_tokens(t) for t in batch)

        props = ctx.schema.model_properties if ctx.schema else {}
        max_chunks = min(int_prop(props, "max_chunks", PREDICT_MAX_INSTANCES) or 1, PREDICT_MAX_INSTANCES)
        return await embed_in_batches(ctx, texts, post, max_chunks=max_chunks,
                                      context_size=int_prop(props, "context_size", None))

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        """An offline estimate (o200k_base), as for the Gemini API: exact counts would cost a
        request per text. Embedding calls themselves are priced on Vertex's own counts."""
        return [approximate_tokens(t) for t in texts]


# ---- the adapter -------------------------------------------------------------------------------


class VertexAdapter(Adapter):
    options_model = VertexOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        self.tokens = TokenCache()
        types = set(entity.supported_model_types)
        self.llm = VertexChat(self.tokens) if ModelType.LLM in types else None
        self.text_embedding = VertexEmbeddings(self.tokens) if ModelType.TEXT_EMBEDDING in types else None

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        assert self.llm is not None
        ctx.model = options(ctx).validate_model
        ctx.model_type = ModelType.LLM
        ctx.schema = self.predefined.get((ModelType.LLM, ctx.model))
        await self.llm.generate(ctx, _ping())

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if ctx.model_type is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            await self.text_embedding.embed(ctx, ["ping"], "document", None, "")
        elif ctx.model_type is ModelType.LLM and self.llm is not None and ctx.model:
            await self.llm.generate(ctx, _ping())
        else:
            await self.validate_provider_credentials(ctx)
