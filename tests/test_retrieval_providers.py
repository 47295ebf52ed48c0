"""Jina, Voyage, Mixedbread and Nomic through the real gRPC server against their faithful mocks.

Each test runs once per provider (the ``CASES`` table says what that provider's wire must look
like); only behaviour that exists for a single provider (Voyage's batch limits, Jina's object
inputs and customizable models) has its own test.

Malformed replies (no vector list, a wrong count) are INTERNAL with reason InvokeError, as in the
OpenAI family: the provider answered 200 but broke its contract, which retrying would not fix
(UNAVAILABLE invites automatic retries of a paid call).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import rerank_service_pb2 as rr_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb

from providers.protocols.retrieval.dialect import EmbeddingDialect, RerankDialect
from providers.protocols.retrieval.embeddings import plan_batches
from tests.helpers import failure_of, struct, target
from tests.mocks.retrieval_mocks import DIALECTS, RetrievalMock, effect, error, expected_vector, score

KEY = "rk-test-0123456789abcdef"
QUERY = te_pb.EMBEDDING_INPUT_TYPE_QUERY
MXBAI_PROMPT = "Represent this sentence for searching relevant passages: "
EMB, RR = common_pb2.MODEL_TYPE_TEXT_EMBEDDING, common_pb2.MODEL_TYPE_RERANK


@dataclass(frozen=True)
class Case:
    provider: str
    key_var: str
    embed_models: tuple[str, ...]  # predefined, in listing order; the first is used for calls
    rerank_models: tuple[str, ...]
    type_field: str  # where query/document goes, and the values the provider must receive
    query_value: str
    document_value: str | None  # None: no field at all for documents
    dims_field: str
    validate_model: str
    prefix: str = ""  # wire model prefix
    price: str = ""  # the first embedding model's input price per unit

    @property
    def embed_model(self) -> str:
        return self.embed_models[0]

    def wire(self, model: str) -> str:
        return self.prefix + model


CASES = {c.provider: c for c in (
    Case("jina", "api_key", ("jina-embeddings-v4", "jina-embeddings-v3", "jina-embeddings-v2-base-en"),
         ("jina-reranker-m0", "jina-reranker-v2-base-multilingual", "jina-reranker-v1-base-en"),
         "task", "retrieval.query", "retrieval.passage", "dimensions", "jina-embeddings-v3", price="0.001"),
    Case("voyage", "api_key", ("voyage-3.5", "voyage-3.5-lite", "voyage-3-large", "voyage-code-3"),
         ("rerank-2.5", "rerank-2.5-lite"), "input_type", "query", "document", "output_dimension",
         "voyage-3.5-lite", price="0.00006"),
    Case("mixedbread", "api_key", ("mxbai-embed-large-v1",), ("mxbai-rerank-large-v2",), "prompt", MXBAI_PROMPT,
         None, "dimensions", "mxbai-embed-large-v1", prefix="mixedbread-ai/", price="0.0001"),
    Case("nomic", "nomic_api_key", ("nomic-embed-text-v1.5", "nomic-embed-text-v1"), (), "task_type",
         "search_query", "search_document", "dimensionality", "nomic-embed-text-v1.5", price="0.1"),
)}
PROVIDERS = list(CASES)
RERANKERS = [p for p, c in CASES.items() if c.rerank_models]


@pytest.fixture(scope="module")
async def mocks():
    async with contextlib.AsyncExitStack() as stack:
        yield {name: await stack.enter_async_context(RetrievalMock(DIALECTS[name], KEY)) for name in PROVIDERS}


@pytest.fixture
def use(mocks):
    """The mock of one provider, reset (no queued scenarios, default limits)."""
    def get(name: str) -> RetrievalMock:
        mocks[name].reset()
        return mocks[name]
    return get


def creds(case: Case, mock: RetrievalMock, key: str = KEY) -> dict:
    return {case.key_var: key, "base_url": mock.url + "/v1"}


def embed_req(case, mock, texts, model=None, key=KEY, **kw):
    return te_pb.EmbedRequest(target=target(case.provider, model or case.embed_model, creds(case, mock, key)),
                              texts=texts, **kw)


def rerank_req(case, mock, query, docs, model=None, key=KEY, **kw):
    return rr_pb.RerankRequest(target=target(case.provider, model or case.rerank_models[-1], creds(case, mock, key)),
                               query=query, documents=docs, **kw)


def sent_texts(case, body, field):
    return [x["text"] if isinstance(x, dict) else x for x in body[field]]


def close(got, want) -> bool:
    return len(got) == len(want) and all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(got, want))


# ---- catalog -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_listing_has_the_right_model_types(stubs, name):
    case = CASES[name]
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    expected_types = [EMB] + ([RR] if case.rerank_models else [])
    assert list(providers[name].supported_model_types) == expected_types
    fields = {f.variable: f for f in providers[name].provider_credential_fields}
    assert fields[case.key_var].type == prov_pb.FORM_TYPE_SECRET_INPUT and fields[case.key_var].required
    assert not fields["base_url"].required
    models = (await stubs.providers.ListModels(prov_pb.ListModelsRequest(provider=name))).models
    assert [m.name for m in models if m.model_type == EMB] == list(case.embed_models)
    assert [m.name for m in models if m.model_type == RR] == list(case.rerank_models)
    assert {m.model_type for m in models} == set(expected_types)
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider=name, model_type=EMB, model=case.embed_model))).model
    assert model.properties["context_size"] > 0 and model.properties["max_chunks"] > 1
    assert Decimal(model.pricing.input) == Decimal(case.price)
    counted = await stubs.embedding.CountEmbeddingTokens(te_pb.CountEmbeddingTokensRequest(
        target=target(name, case.embed_model, {case.key_var: KEY}), texts=["hello world", ""]))
    assert counted.tokens[0] > 0 and counted.tokens[1] == 0 and counted.total_tokens == sum(counted.tokens)


# ---- embeddings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_embed_documents_and_queries_use_the_providers_own_values(stubs, use, name):
    case, mock = CASES[name], use(name)
    dims = DIALECTS[name].dims[case.wire(case.embed_model)]
    texts = ["the quick brown fox", "jumps over the lazy dog"]
    response = await stubs.embedding.Embed(embed_req(case, mock, texts))
    sent = mock.requests[-1]
    assert sent.path == DIALECTS[name].embed_path and sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json
    assert body["model"] == case.wire(case.embed_model)
    assert sent_texts(case, body, DIALECTS[name].texts_field) == texts
    assert body.get(case.type_field) == case.document_value
    assert response.model == case.embed_model and len(response.embeddings) == 2
    for text, emb in zip(texts, response.embeddings, strict=True):
        assert close(emb.values, expected_vector(body["model"], text, case.document_value, dims))
    usage = response.usage
    assert usage.tokens == sum(math.ceil(len(t) / 4) for t in texts) and usage.currency == "USD"
    assert Decimal(usage.unit_price) == Decimal(case.price) and Decimal(usage.total_price) > 0

    response = await stubs.embedding.Embed(embed_req(case, mock, ["where is the fox?"], input_type=QUERY))
    body = mock.requests[-1].json
    assert body[case.type_field] == case.query_value
    assert close(response.embeddings[0].values, expected_vector(body["model"], "where is the fox?",
                                                                case.query_value, dims))


@pytest.mark.parametrize("name", PROVIDERS)
async def test_embed_dimensions_use_the_providers_field(stubs, use, name):
    case, mock = CASES[name], use(name)
    response = await stubs.embedding.Embed(embed_req(case, mock, ["shorter please"], dimensions=256))
    body = mock.requests[-1].json
    assert body[case.dims_field] == 256
    assert {"dimensions", "output_dimension", "dimensionality"} & set(body) == {case.dims_field}
    assert len(response.embeddings[0].values) == 256


@pytest.mark.parametrize("name", PROVIDERS)
async def test_reply_naming_another_model_and_out_of_order_data(stubs, use, name):
    case, mock = CASES[name], use(name)
    mock.enqueue(effect("other_model"))
    response = await stubs.embedding.Embed(embed_req(case, mock, ["a"]))
    assert response.model == case.embed_model  # the caller's model, whatever the provider reports
    mock.enqueue(effect("reversed"))
    texts = ["one", "two", "three"]
    response = await stubs.embedding.Embed(embed_req(case, mock, texts))
    dims = DIALECTS[name].dims[case.wire(case.embed_model)]
    for text, emb in zip(texts, response.embeddings, strict=True):
        assert close(emb.values, expected_vector(case.wire(case.embed_model), text, case.document_value, dims))


@pytest.mark.parametrize("name", [p for p in PROVIDERS if p != "jina"])  # Jina batches 2048: too big to test
async def test_embed_batches_by_max_chunks(stubs, use, name):
    case, mock = CASES[name], use(name)
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider=name, model_type=EMB, model=case.embed_model))).model
    max_chunks = int(model.properties["max_chunks"])
    texts = [f"text number {i}" for i in range(max_chunks * 2 + 1)]
    before = len(mock.requests)
    response = await stubs.embedding.Embed(embed_req(case, mock, texts, dimensions=256))
    batches = [len(r.json[DIALECTS[name].texts_field]) for r in mock.requests[before:]]
    assert sorted(batches) == [1, max_chunks, max_chunks]
    assert len(response.embeddings) == len(texts)
    last = response.embeddings[-1].values
    assert close(last, expected_vector(case.wire(case.embed_model), texts[-1], case.document_value, 256))


# ---- rerank --------------------------------------------------------------------------------------

DOCS = [
    "Paris is the capital of France.",
    "Berlin is the capital and largest city of Germany.",
    "The capital of France is known for the Eiffel Tower.",
    "Bananas are rich in potassium.",
]
QUESTION = "What is the capital of France?"


@pytest.mark.parametrize("name", RERANKERS)
async def test_rerank_threshold_top_n_and_text_from_the_input(stubs, use, name):
    case, mock = CASES[name], use(name)
    d = DIALECTS[name]
    scores = {i: score(QUESTION, doc) for i, doc in enumerate(DOCS)}
    ordered = sorted(scores, key=lambda i: -scores[i])
    threshold = (scores[ordered[2]] + scores[ordered[3]]) / 2  # keeps three

    response = await stubs.rerank.Rerank(rerank_req(case, mock, QUESTION, DOCS, top_n=2, score_threshold=threshold))
    sent = mock.requests[-1]
    assert sent.path == d.rerank_path
    body = sent.json
    assert body["model"] == case.wire(case.rerank_models[-1]) and body["query"] == QUESTION
    assert sent_texts(case, body, d.docs_field) == DOCS and body[d.top_field] == 2
    assert not body.get(d.echo_flag)  # the text comes from our own list, no echo needed
    assert [(r.index, r.text) for r in response.documents] == [(i, DOCS[i]) for i in ordered[:2]]
    assert [r.score for r in response.documents] == pytest.approx([scores[i] for i in ordered[:2]])

    response = await stubs.rerank.Rerank(rerank_req(case, mock, QUESTION, DOCS, score_threshold=threshold))
    assert mock.requests[-1].json[d.top_field] == len(DOCS)
    assert [r.index for r in response.documents] == ordered[:3]

    response = await stubs.rerank.Rerank(rerank_req(case, mock, QUESTION, DOCS, top_n=10))
    assert mock.requests[-1].json[d.top_field] == len(DOCS)  # never more than there are documents
    assert [r.index for r in response.documents] == ordered
    assert response.model == case.rerank_models[-1]


@pytest.mark.parametrize("name", RERANKERS)
async def test_rerank_sorts_an_unsorted_reply_and_ignores_the_reply_model(stubs, use, name):
    case, mock = CASES[name], use(name)
    mock.enqueue(effect("unsorted"))
    response = await stubs.rerank.Rerank(rerank_req(case, mock, QUESTION, DOCS, top_n=3))
    got = [r.score for r in response.documents]
    assert got == sorted(got, reverse=True) and len(got) == 3
    mock.enqueue(effect("other_model"))
    response = await stubs.rerank.Rerank(rerank_req(case, mock, QUESTION, DOCS[:1]))
    assert response.model == case.rerank_models[-1] and response.documents[0].text == DOCS[0]


# ---- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_rejected_key_is_an_authorization_error(stubs, use, name):
    case, mock = CASES[name], use(name)
    wrong = "rk-wrong-key-987654"
    calls = [stubs.embedding.Embed(embed_req(case, mock, ["x"], key=wrong))]
    if case.rerank_models:
        calls.append(stubs.rerank.Rerank(rerank_req(case, mock, "q", ["d"], key=wrong)))
    for call in calls:
        f = await failure_of(call)
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
        assert wrong not in f.message and f.metadata["upstreamStatus"] == "401"


@pytest.mark.parametrize("name", PROVIDERS)
async def test_rate_limit_and_server_errors(stubs, use, name):
    case, mock = CASES[name], use(name)
    mock.enqueue(error(429, "Rate limit exceeded, slow down", {"retry-after": "2"}))
    f = await failure_of(stubs.embedding.Embed(embed_req(case, mock, ["x"])))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert f.retry_delay == 2.0 and "Rate limit exceeded" in f.message
    mock.enqueue(error(500, "Internal server error"))
    f = await failure_of(stubs.embedding.Embed(embed_req(case, mock, ["x"])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    if case.rerank_models:
        mock.enqueue(error(429, "Too many requests"))
        f = await failure_of(stubs.rerank.Rerank(rerank_req(case, mock, "q", ["d"])))
        assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"


@pytest.mark.parametrize("fx", ["no_vectors", "wrong_count"])
@pytest.mark.parametrize("name", PROVIDERS)
async def test_malformed_embedding_reply_is_internal(stubs, use, name, fx):
    case, mock = CASES[name], use(name)
    mock.enqueue(effect(fx))
    f = await failure_of(stubs.embedding.Embed(embed_req(case, mock, ["a", "b"])))
    assert f.code == grpc.StatusCode.INTERNAL and f.reason == "InvokeError"
    assert "embeddings" in f.message


@pytest.mark.parametrize("name", RERANKERS)
async def test_malformed_rerank_reply_is_internal(stubs, use, name):
    case, mock = CASES[name], use(name)
    mock.enqueue(effect("no_results"))
    f = await failure_of(stubs.rerank.Rerank(rerank_req(case, mock, "q", ["d"])))
    assert f.code == grpc.StatusCode.INTERNAL and f.reason == "InvokeError"


@pytest.mark.parametrize("name", PROVIDERS)
async def test_provider_refusing_the_request_is_a_bad_request(stubs, use, name):
    case, mock = CASES[name], use(name)
    f = await failure_of(stubs.embedding.Embed(embed_req(case, mock, ["x"], dimensions=100000)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert case.dims_field in f.message  # the provider's own {"detail"} text


# ---- credentials ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_validate_provider_credentials_embeds_ping(stubs, use, name):
    case, mock = CASES[name], use(name)
    reply = await stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider=name, credentials=struct(creds(case, mock))))
    assert reply.credentials[case.key_var] == "[__HIDDEN__]"
    body = mock.requests[-1].json
    assert body["model"] == case.wire(case.validate_model)
    assert sent_texts(case, body, DIALECTS[name].texts_field) == ["ping"]
    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider=name, credentials=struct(creds(case, mock, "rk-bad")))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider=name, credentials=struct({}))))
    assert f"credentials.{case.key_var}" in f.violations


# ---- provider specifics --------------------------------------------------------------------------


async def test_voyage_batch_limits(stubs, use):
    case, mock = CASES["voyage"], use("voyage")
    # Requests stay within the model's per-request token budget (bytes bound tokens from above).
    texts = ["word " * 10_000 for _ in range(3)]  # 50 kB each; voyage-3-large allows 120k tokens
    before = len(mock.requests)
    response = await stubs.embedding.Embed(embed_req(case, mock, texts, model="voyage-3-large"))
    sizes = [sum(len(t.encode()) for t in r.json["input"]) for r in mock.requests[before:]]
    assert len(sizes) == 2 and max(sizes) <= 120_000 and len(response.embeddings) == 3
    # Beyond its batch limit Voyage answers 400 {"detail"}: a bad request, with its message.
    mock.max_batch = 2
    f = await failure_of(stubs.embedding.Embed(embed_req(case, mock, ["a", "b", "c"])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "batch size limit is 2" in f.message and f.metadata["upstreamStatus"] == "400"


async def test_jina_object_inputs_and_task_only_for_task_models(stubs, use):
    case, mock = CASES["jina"], use("jina")
    await stubs.embedding.Embed(embed_req(case, mock, ["hello"], model="jina-embeddings-v4", input_type=QUERY))
    body = mock.requests[-1].json
    assert body["input"] == [{"text": "hello"}] and body["task"] == "retrieval.query"
    await stubs.embedding.Embed(embed_req(case, mock, ["hello"], model="jina-embeddings-v2-base-en",
                                          input_type=QUERY))
    body = mock.requests[-1].json
    assert body["input"] == ["hello"] and "task" not in body
    await stubs.rerank.Rerank(rerank_req(case, mock, "q", ["a", "b"], model="jina-reranker-m0"))
    assert mock.requests[-1].json["documents"] == [{"text": "a"}, {"text": "b"}]


async def test_jina_customizable_models(stubs, use):
    mock = use("jina")
    model_creds = {"api_key": KEY, "base_url": mock.url + "/v1", "context_size": "4096"}
    for model_type, model in ((EMB, "jina-embeddings-v2-base-de"), (RR, "jina-colbert-v2")):
        reply = await stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
            provider="jina", model_type=model_type, model=model, credentials=struct(model_creds)))
        assert reply.credentials["api_key"] == "[__HIDDEN__]" and mock.requests[-1].json["model"] == model
        schema = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
            provider="jina", model_type=model_type, model=model, credentials=struct(model_creds)))).model
        assert schema.properties["context_size"] == 4096
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("jina", "jina-embeddings-v2-base-de", model_creds), texts=["hallo", "welt"]))
    assert len(response.embeddings) == 2 and len(response.embeddings[0].values) == 768
    assert [len(r.json["input"]) for r in mock.requests[-2:]] == [1, 1]  # one input per call when unknown
    f = await failure_of(stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="jina", model_type=EMB, model="jina-embeddings-v2-base-de",
        credentials=struct(dict(model_creds, api_key="rk-bad")))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"


# ---- units ---------------------------------------------------------------------------------------


def test_plan_batches_by_count_and_bytes():
    assert plan_batches(["a"] * 5, 2, None) == [(0, 2), (2, 4), (4, 5)]
    # 4-byte pieces, 10-byte budget: two per request; a piece over the budget goes alone.
    assert plan_batches(["abcd"] * 5, 100, 10) == [(0, 2), (2, 4), (4, 5)]
    assert plan_batches(["x" * 50, "y", "z"], 100, 10) == [(0, 1), (1, 3)]


def test_dialect_errors_name_the_provider_and_key():
    with pytest.raises(TypeError, match="provider acme: runtime.embedding: missing"):
        EmbeddingDialect.parse(None, "acme")
    with pytest.raises(TypeError, match="runtime.rerank.text_objects"):
        RerankDialect.parse({"text_objects": "m0"}, "acme")
    d = EmbeddingDialect.parse({"input_type_field": "task", "input_type_values": {"query": "q"},
                                "input_type_models": ["m1"]}, "acme")
    assert d.template("m1", "query", None) == {"model": "m1", "task": "q"}
    assert d.template("m1", "document", 64) == {"model": "m1"}  # no document value, no dimensions field
    assert d.template("m2", "query", None) == {"model": "m2"}
