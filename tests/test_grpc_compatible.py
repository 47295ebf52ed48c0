"""openai_api_compatible: customizable models defined by their credentials, end to end."""

from __future__ import annotations

import json

import grpc
import pytest
from modelruntime.v1 import (
    llm_service_pb2 as llm_pb,
)
from modelruntime.v1 import (
    rerank_service_pb2 as rr_pb,
)
from modelruntime.v1 import (
    text_embedding_service_pb2 as te_pb,
)

from tests.helpers import failure_of, struct, target, user
from tests.mocks.httpserver import MockServer
from tests.mocks.openai_mock import OpenAIMock, StreamStyle

KEY = "sk-compat"


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY], stream_style=StreamStyle.chaotic()) as m:
        yield m


def creds(mock, **extra) -> dict:
    return {"endpoint_url": mock.base_url, "api_key": KEY, "mode": "chat", "context_size": "4096", **extra}


async def test_stream_without_provider_usage_is_counted_locally(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(
        target=target("openai_api_compatible", "gpt-4o-mini", creds(mock, stream_usage="not_supported")),
        messages=[user("count me")]))]
    assert "stream_options" not in mock.requests[-1].json
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP
    assert final.usage.prompt_tokens > 0 and final.usage.completion_tokens > 0
    assert final.usage.total_price == "0"  # customizable models carry no price


async def test_completion_mode_streams_from_completions(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(
        target=target("openai_api_compatible", "gpt-3.5-turbo-instruct", creds(mock, mode="completion")),
        messages=[user("finish this")]))]
    assert mock.requests[-1].path == "/v1/completions"
    assert "".join(c.delta.content for c in chunks).strip()


async def test_parameter_rules_come_from_credentials(stubs, mock):
    f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("openai_api_compatible", "gpt-4o-mini", creds(mock, max_tokens_to_sample="100")),
        messages=[user("x")], model_parameters=struct({"max_tokens": 101}))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "model_parameters.max_tokens" in f.violations
    await stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("openai_api_compatible", "gpt-4o-mini", creds(mock, max_tokens_to_sample="100")),
        messages=[user("x")], model_parameters=struct({"max_tokens": 100, "temperature": 1.5})))
    assert mock.requests[-1].json["max_tokens"] == 100 and mock.requests[-1].json["temperature"] == 1.5


async def test_missing_endpoint_is_a_credential_error(stubs, mock):
    f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("openai_api_compatible", "m", {"mode": "chat", "context_size": "4096"}),
        messages=[user("x")])))
    assert f.reason == "CredentialsValidateFailedError" and "credentials.endpoint_url" in f.violations


async def test_compatible_embeddings_ask_for_floats(stubs, mock):
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("openai_api_compatible", "text-embedding-3-small", creds(mock)), texts=["a", "b"]))
    assert mock.requests[-1].json["encoding_format"] == "float"
    assert len(response.embeddings) == 2 and len(response.embeddings[0].values) == 1536


@pytest.fixture(scope="module")
async def rerank_server():
    """A Jina/Cohere-shaped rerank server (as LocalAI, Xinference and vLLM expose)."""
    async def handler(req, resp):
        if req.headers.get("authorization") != f"Bearer {KEY}":
            await resp.send(401, {"content-type": "application/json"}, b'{"detail":"bad key"}')
            return
        body = req.json
        scored = [{"index": i, "relevance_score": round(len(set(body["query"]) & set(d)) / 10, 3),
                   "document": {"text": d}} for i, d in enumerate(body["documents"])]
        scored.sort(key=lambda r: r["relevance_score"], reverse=True)
        payload = {"model": body["model"], "results": scored[: body.get("top_n") or len(scored)]}
        await resp.send(200, {"content-type": "application/json"}, json.dumps(payload).encode())

    async with MockServer(handler) as srv:
        yield srv


async def test_compatible_rerank_threshold_and_top_n(stubs, rerank_server):
    docs = ["abc", "xyz", "abcdef", "qq"]
    response = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=target("openai_api_compatible", "bge-reranker",
                      {"endpoint_url": rerank_server.url + "/v1", "api_key": KEY, "context_size": "512"}),
        query="abcd", documents=docs, top_n=2, score_threshold=0.15))
    sent = rerank_server.requests[-1]
    assert sent.path == "/v1/rerank" and sent.json["documents"] == docs
    scores = [d.score for d in response.documents]
    assert scores == sorted(scores, reverse=True) and all(s >= 0.15 for s in scores) and len(scores) <= 2
    assert response.documents[0].text == docs[response.documents[0].index]
    f = await failure_of(stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=target("openai_api_compatible", "bge-reranker",
                      {"endpoint_url": rerank_server.url + "/v1", "api_key": "nope", "context_size": "512"}),
        query="q", documents=["a"])))
    assert f.reason == "InvokeAuthorizationError"
