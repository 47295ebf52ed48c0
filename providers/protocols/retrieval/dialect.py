"""What differs between the retrieval specialists, read from the provider YAML's ``runtime:`` block.

The ``embedding:`` and ``rerank:`` blocks are typed (:class:`EmbeddingDialect`,
:class:`RerankDialect`, fields of :class:`.options.RetrievalOptions`), so a misspelt key or a
wrong type stops start-up with the provider and the key.

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

The same protocol serves a provider of another family for the one model type it lacks: MiniMax
(OpenAI family, chat) declares ``runtime.capabilities: {text-embedding: retrieval}`` and describes
``embo-01``'s API (``texts`` in, bare ``vectors`` out, ``type: db|query``) in
``capability_options.retrieval.embedding``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError


def _inputs(texts: list[str], as_objects: bool) -> list[Any]:
    return [{"text": t} for t in texts] if as_objects else list(texts)


class _Dialect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    block: ClassVar[str]  # the key under runtime:
    serves: ClassVar[str]  # the model type that needs it

    @classmethod
    def parse(cls, raw: Any, provider: str) -> Self:
        """The dialect of a provider (a validated block, or its raw mapping); errors name both."""
        where = f"provider {provider}: runtime.{cls.block}"
        if isinstance(raw, cls):
            return raw
        if not isinstance(raw, dict):
            raise TypeError(f"{where}: missing (a {cls.serves} provider must describe its dialect)")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = [f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise TypeError("; ".join(problems)) from None


class EmbeddingDialect(_Dialect):
    block: ClassVar[str] = "embedding"
    serves: ClassVar[str] = "text-embedding"

    path: str = "embeddings"
    texts_field: str = "input"
    vectors: str = "data"
    vector_key: str = "embedding"
    usage: str = "usage"
    text_objects: frozenset[str] = frozenset()
    input_type_field: str = ""
    input_type_values: dict[str, Any] = Field(default_factory=dict)
    input_type_models: frozenset[str] | None = None
    dimensions_field: str = ""
    static: dict[str, Any] = Field(default_factory=dict)

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


class RerankDialect(_Dialect):
    block: ClassVar[str] = "rerank"
    serves: ClassVar[str] = "rerank"

    path: str = "rerank"
    documents_field: str = "documents"
    top_n_field: str = "top_n"
    results: str = "results"
    score_key: str = "relevance_score"
    text_objects: frozenset[str] = frozenset()
    static: dict[str, Any] = Field(default_factory=dict)

    def body(self, model: str, query: str, docs: list[str], limit: int) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.static)
        body.update({"model": model, "query": query, self.documents_field: _inputs(docs, model in self.text_objects),
                     self.top_n_field: limit})
        return body
