"""What differs between the retrieval specialists, read from the provider YAML's ``runtime:`` block.

Reaching the provider uses the kit's endpoint keys (:class:`providers.kit.options.EndpointOptions`):
``base_url``, ``base_url_credential``, ``api_key_credential`` (Bearer auth), ``query`` /
``query_credentials`` (MiniMax's ``?GroupId=``), and ``status_envelope``: errors a provider
reports inside an HTTP 200 body (MiniMax: ``base_resp.status_code`` 1004 → 401, 1002/1039 → 429,
1008 → 402, 2013 → 400) are raised as the mapped error before the reply is read. Besides those:

    model_prefix        prepended to the model id on the wire unless already there
                        (Mixedbread serves ``mixedbread-ai/mxbai-embed-large-v1``)
    validate_model      the text-embedding model the provider credential check embeds "ping" with
    customizable_context_size / customizable_max_chunks
                        defaults for customizable models whose form leaves them empty

``embedding:`` (one request per batch of ``max_chunks`` inputs)::

    path                endpoint under the base URL (embeddings; Nomic: embedding/text)
    texts_field         request list of inputs (input; Nomic: texts)
    text_objects        models whose inputs are objects {"text": …} rather than strings
    input_type_field    request field carrying query/document (task, input_type, task_type,
                        prompt); absent: the provider has none
    input_type_values   {query: value, document: value}; a missing or empty value sends no field
    input_type_models   only these models get the field (default: every model)
    dimensions_field    request field for reduced dimensions (dimensions, output_dimension,
                        dimensionality); absent: the request is refused when dimensions are set
    static              fields added to every request (e.g. truncation: true)
    vectors             reply key of the vector list (data; Nomic, MiniMax: vectors)
    vector_key          key of the vector inside each item (embedding); "" means the items are
                        bare vectors in input order
    usage               reply key of the usage: an object (prompt_tokens, else total_tokens) or
                        a bare token count (MiniMax: total_tokens)

``rerank:``::

    path                endpoint (rerank; Mixedbread: reranking)
    documents_field     request list of documents (documents; Mixedbread: input)
    text_objects        models whose documents are objects {"text": …} (jina-reranker-m0)
    top_n_field         request field limiting the results (top_n; Voyage, Mixedbread: top_k)
    static              fields added to every request (return_documents: false, …)
    results             reply key of the result list (results; Voyage, Mixedbread: data)
    score_key           key of the score in each result (relevance_score; Mixedbread: score)

Document echoes (``document``, ``document.text``, ``input``) are never read: the text of a
result is always taken from the caller's own list by index.

The same classes serve a provider of another family for the one model type it lacks: MiniMax
(OpenAI family, chat) names ``RetrievalEmbeddings`` in ``runtime.capabilities`` and describes
``embo-01``'s API (``texts`` in, bare ``vectors`` out, ``type: db|query``) in ``embedding:``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from engine.adapter import CallContext
from providers.kit import endpoint

from .options import RetrievalOptions


def _names(raw: Any, where: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise TypeError(f"{where}: expected a list of model names")
    return frozenset(raw)


def _mapping(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TypeError(f"{where}: expected a mapping")
    return {str(k): v for k, v in raw.items()}


def _text(raw: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or (not value and default is None):
        raise TypeError(f"{where}.{key}: expected a non-empty string")
    return value


def wire_model(ctx: CallContext) -> str:
    """The model id sent on the wire: the model name, with the provider's prefix if it has one."""
    model = endpoint.model_id(ctx)
    prefix = cast(RetrievalOptions, ctx.options).model_prefix or ""
    return model if not prefix or model.startswith(prefix) else prefix + model


def raise_status_envelope(ctx: CallContext, parsed: Any) -> None:
    """Raise the error a 200 reply carries in its body (``runtime.status_envelope``), if any."""
    envelope = cast(RetrievalOptions, ctx.options).status_envelope
    error = envelope.body_error(parsed) if envelope is not None else None
    if error is not None:
        raise error


def _inputs(texts: list[str], as_objects: bool) -> list[Any]:
    return [{"text": t} for t in texts] if as_objects else list(texts)


@dataclass(frozen=True, slots=True)
class EmbeddingDialect:
    path: str
    texts_field: str
    vectors: str
    vector_key: str
    usage: str
    text_objects: frozenset[str] = frozenset()
    input_type_field: str = ""
    input_type_values: dict[str, Any] = field(default_factory=dict)
    input_type_models: frozenset[str] | None = None
    dimensions_field: str = ""
    static: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, provider: str) -> EmbeddingDialect:
        where = f"provider {provider}: runtime.embedding"
        if not isinstance(raw, dict):
            raise TypeError(f"{where}: missing (a text-embedding provider must describe its dialect)")
        models = raw.get("input_type_models")
        return cls(
            path=_text(raw, "path", where, "embeddings"),
            texts_field=_text(raw, "texts_field", where, "input"),
            vectors=_text(raw, "vectors", where, "data"),
            vector_key=str(raw.get("vector_key", "embedding") or ""),
            usage=_text(raw, "usage", where, "usage"),
            text_objects=_names(raw.get("text_objects"), f"{where}.text_objects"),
            input_type_field=str(raw.get("input_type_field") or ""),
            input_type_values=_mapping(raw.get("input_type_values"), f"{where}.input_type_values"),
            input_type_models=None if models is None else _names(models, f"{where}.input_type_models"),
            dimensions_field=str(raw.get("dimensions_field") or ""),
            static=_mapping(raw.get("static"), f"{where}.static"),
        )

    def template(self, model: str, input_type: str, dimensions: int | None) -> dict[str, Any]:
        """The request body without its inputs."""
        body: dict[str, Any] = dict(self.static)
        body["model"] = model
        if self.input_type_field and (self.input_type_models is None or model in self.input_type_models):
            value = self.input_type_values.get(input_type or "document")
            if value not in (None, ""):
                body[self.input_type_field] = value
        if dimensions and self.dimensions_field:
            body[self.dimensions_field] = int(dimensions)
        return body

    def inputs(self, model: str, texts: list[str]) -> list[Any]:
        return _inputs(texts, model in self.text_objects)


@dataclass(frozen=True, slots=True)
class RerankDialect:
    path: str
    documents_field: str
    top_n_field: str
    results: str
    score_key: str
    text_objects: frozenset[str] = frozenset()
    static: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, provider: str) -> RerankDialect:
        where = f"provider {provider}: runtime.rerank"
        if not isinstance(raw, dict):
            raise TypeError(f"{where}: missing (a rerank provider must describe its dialect)")
        return cls(
            path=_text(raw, "path", where, "rerank"),
            documents_field=_text(raw, "documents_field", where, "documents"),
            top_n_field=_text(raw, "top_n_field", where, "top_n"),
            results=_text(raw, "results", where, "results"),
            score_key=_text(raw, "score_key", where, "relevance_score"),
            text_objects=_names(raw.get("text_objects"), f"{where}.text_objects"),
            static=_mapping(raw.get("static"), f"{where}.static"),
        )

    def body(self, model: str, query: str, docs: list[str], limit: int) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.static)
        body.update({"model": model, "query": query, self.documents_field: _inputs(docs, model in self.text_objects),
                     self.top_n_field: limit})
        return body
