"""Hugging Face (huggingface_hub) through the real gRPC server against the faithful Hugging Face mock."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb

from tests.helpers import failure_of, stream_failure, struct, system, target, user
from tests.mocks.huggingface_mock import (
    NAMESPACE,
    TOKEN,
    HuggingFaceMock,
    expected_embedding,
    hang,
    loading,
    overloaded,
    stream_error_after,
    tokens_of,
    truncate_after,
)

ZEPHYR = "HuggingFaceH4/zephyr-7b-beta"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BERT = "google-bert/bert-base-uncased"


@pytest.fixture(scope="module")
async def mock(grpc_server):
    async with HuggingFaceMock() as m:
        # Serverless, Hub and Endpoints API roots are runtime options: point them at the mock.
        adapter = grpc_server.runtime.registry.adapter("huggingface_hub")
        saved = adapter.options
        adapter.options = saved.model_copy(update=m.runtime_options())
        try:
            yield m
        finally:
            adapter.options = saved


def hosted(**extra) -> dict:
    return {"huggingfacehub_api_type": "hosted_inference_api", "huggingfacehub_api_token": TOKEN, **extra}


def endpoint(mock, name: str, task: str = "text-generation", suffix: str = "", **extra) -> dict:
    return {"huggingfacehub_api_type": "inference_endpoints", "huggingfacehub_api_token": TOKEN,
            "huggingfacehub_endpoint_url": mock.endpoint_url(name) + suffix, "task_type": task, **extra}


def req(model=ZEPHYR, messages=None, cls=llm_pb.GenerateRequest, credentials=None, **kw):
    return cls(target=target("huggingface_hub", model, credentials or hosted()),
               messages=messages or [user("hello there")], **kw)


def sreq(**kw):
    return req(cls=llm_pb.StreamGenerateRequest, **kw)


def embed(model, texts, credentials=None):
    return te_pb.EmbedRequest(target=target("huggingface_hub", model, credentials or hosted()), texts=texts)


# ---- catalog ---------------------------------------------------------------------------------


async def test_provider_form_and_difys_customizable_schemas(stubs, mock):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    hf = providers["huggingface_hub"]
    assert list(hf.configurate_methods) == [prov_pb.CONFIGURATE_METHOD_CUSTOMIZABLE_MODEL]
    assert [f.variable for f in hf.model_credential_fields] == [
        "huggingfacehub_api_type", "huggingfacehub_api_token", "huggingface_namespace",
        "huggingfacehub_endpoint_url", "task_type"]
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="huggingface_hub", model_type=common_pb2.MODEL_TYPE_LLM, model=ZEPHYR,
        credentials=struct(hosted())))).model
    assert model.properties["mode"] == "completion"
    rules = {r.name: r for r in model.parameter_rules}
    assert list(rules) == ["temperature", "top_k", "top_p", "max_new_tokens", "seed", "repetition_penalty"]
    assert rules["top_k"].max == 10 and rules["max_new_tokens"].max == 4096
    embedding = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="huggingface_hub", model_type=common_pb2.MODEL_TYPE_TEXT_EMBEDDING, model=MINILM,
        credentials=struct(hosted())))).model
    assert embedding.properties["context_size"] == 10000 and embedding.properties["max_chunks"] == 1


# ---- generation ------------------------------------------------------------------------------


async def test_serverless_unary_list_reply_and_parameters(stubs, mock):
    response = await stubs.llm.Generate(req(model_parameters=struct(
        {"temperature": 0.3, "max_tokens": 50, "top_p": 0.9, "top_k": 5})))
    sent = mock.requests[-1]
    assert sent.path == f"/hf-inference/models/{ZEPHYR}" and sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.json == {"inputs": "hello there", "stream": False, "parameters": {
        "temperature": 0.3, "max_new_tokens": 50, "top_p": 0.9, "top_k": 5, "details": True,
        "return_full_text": False}}
    assert response.message.content == "Echo: hello there"
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP and response.provider_finish_reason == "eos_token"
    assert response.usage.completion_tokens == 4  # details.generated_tokens


async def test_values_tgi_rejects_are_mapped(stubs, mock):
    await stubs.llm.Generate(req(model_parameters=struct({"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 10})))
    assert mock.requests[-1].json["parameters"] == {"do_sample": False, "max_new_tokens": 10, "details": True,
                                                    "return_full_text": False}


async def test_stream_skips_special_tokens_and_reports_details(stubs, mock):
    history = [system("sys"), user("hi"), user("tell me  more")]
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(messages=history))]
    body = mock.requests[-1].json
    assert body["stream"] is True and body["inputs"] == "sys\n\nHuman: hi\n\nHuman: tell me  more\n\nAssistant:"
    contents = [c.delta.content for c in chunks if c.delta.content]
    assert contents == tokens_of(mock.expected_reply(body["inputs"])) and "</s>" not in "".join(contents)
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP and final.provider_finish_reason == "eos_token"
    assert final.usage.completion_tokens == len(contents) + 1  # generated_tokens counts the eos token
    assert final.usage.prompt_tokens == 3 + -(-len(body["inputs"]) // 4)  # details.input_length
    assert all(not c.HasField("usage") for c in chunks[:-1])


async def test_length_finish_and_stop_words(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        messages=[user("one two three four")], model_parameters=struct({"max_new_tokens": 2})))]
    assert "".join(c.delta.content for c in chunks) == "Echo: one"
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_LENGTH and chunks[-1].provider_finish_reason == "length"
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(messages=[user("one two three four")], stop=["three"]))]
    assert mock.requests[-1].json["parameters"]["stop"] == ["three"]
    assert "".join(c.delta.content for c in chunks) == "Echo: one two "  # TGI keeps the stop word; we cut it
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP
    response = await stubs.llm.Generate(req(messages=[user("one two three four")], stop=["three"]))
    assert response.message.content == "Echo: one two " and response.provider_finish_reason == "stop_sequence"


async def test_inference_endpoint_tgi_routes(stubs, mock):
    creds = endpoint(mock, "tgi-zephyr", suffix="/generate")
    response = await stubs.llm.Generate(req(credentials=creds))
    sent = mock.requests[-1]
    assert sent.path == "/endpoints/tgi-zephyr/generate" and "stream" not in sent.json
    assert response.message.content == "Echo: hello there" and response.usage.completion_tokens == 4
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(credentials=creds))]
    assert mock.requests[-1].path == "/endpoints/tgi-zephyr/generate_stream"
    assert "".join(c.delta.content for c in chunks) == "Echo: hello there"
    # the endpoint root (TGI's compat route) answers a list, or SSE with "stream": true
    root = endpoint(mock, "tgi-zephyr")
    assert (await stubs.llm.Generate(req(credentials=root))).message.content == "Echo: hello there"
    assert mock.requests[-1].path == "/endpoints/tgi-zephyr" and mock.requests[-1].json["stream"] is False


async def test_json_answer_to_a_stream_request_and_text2text(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(credentials=endpoint(mock, "toolkit-zephyr")))]
    assert mock.requests[-1].json["stream"] is True
    assert [c.delta.content for c in chunks if c.delta.content] == ["Echo: hello there"]
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP and chunks[-1].usage.completion_tokens > 0
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        model="google/flan-t5-base", credentials=endpoint(mock, "toolkit-zephyr", task="text2text-generation")))]
    sent = mock.requests[-1].json
    assert sent["stream"] is False and "details" not in sent["parameters"]  # the pipeline knows neither
    assert "".join(c.delta.content for c in chunks) == "Echo: hello there"


# ---- failures --------------------------------------------------------------------------------


async def test_cold_model_503_carries_estimated_time_then_succeeds(stubs, mock):
    mock.enqueue(loading(20.0))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq()))
    assert received == [] and f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert f.retry_delay == 20.0 and "currently loading" in f.message and f.metadata["upstreamStatus"] == "503"
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq())]  # the caller's retry
    assert "".join(c.delta.content for c in chunks) == "Echo: hello there"


async def test_overloaded_auth_and_validation_errors(stubs, mock):
    mock.enqueue(overloaded())
    f = await failure_of(stubs.llm.Generate(req()))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert "overloaded" in f.message
    f = await failure_of(stubs.llm.Generate(req(credentials=hosted(huggingfacehub_api_token="hf_wrong_token"))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert "hf_wrong_token" not in f.message
    f = await failure_of(stubs.llm.Generate(req(model_parameters=struct({"max_new_tokens": 2000}))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "`max_new_tokens` must be <= 1024" in f.message
    tool = llm_pb.Tool(name="t", description="d", parameters=struct({"type": "object"}))
    before = len(mock.requests)
    f = await failure_of(stubs.llm.Generate(req(tools=[tool])))
    assert "tools" in f.violations and len(mock.requests) == before


async def test_error_event_inside_the_stream(stubs, mock):
    mock.enqueue(stream_error_after(2))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(messages=[user("a b c d")])))
    assert "".join(c.delta.content for c in received) == "Echo: a" and not any(c.finish_reason for c in received)
    assert f.code == grpc.StatusCode.UNAVAILABLE and "CUDA out of memory" in f.message
    mock.enqueue(stream_error_after(1, "Model is overloaded", "overloaded"))
    _, f = await stream_failure(stubs.llm.StreamGenerate(sreq()))
    assert f.reason == "InvokeRateLimitError"


@pytest.mark.parametrize("partial", [False, True])
async def test_truncated_stream_is_a_connection_error(stubs, mock, partial):
    mock.enqueue(truncate_after(2, partial=partial))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(messages=[user("a b c d")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert not any(c.finish_reason for c in received)


async def test_cancel_closes_the_upstream_connection(stubs, mock):
    mock.enqueue(hang())
    call = stubs.llm.StreamGenerate(sreq())
    await mock.server.wait_requests(len(mock.requests) + 1)
    await asyncio.sleep(0.05)
    conn = mock.server.connection(mock.requests[-1].connection_id)
    assert not conn.closed
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.server.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_by_peer and record.closed_at - cancelled_at < 0.1


# ---- embeddings ------------------------------------------------------------------------------


async def test_serverless_feature_extraction_pooled(stubs, mock):
    texts = ["first", "second text"]
    result = await stubs.embedding.Embed(embed(MINILM, texts))
    sent = mock.requests[-1]
    assert sent.path == f"/hf-inference/models/{MINILM}/pipeline/feature-extraction" and sent.json == {"inputs": texts}
    for text, e in zip(texts, result.embeddings):
        assert list(e.values) == pytest.approx(expected_embedding(mock.models[MINILM], text))
    assert result.usage.tokens > 0


async def test_token_level_output_is_mean_pooled(stubs, mock):
    texts = ["a short one", "a somewhat longer sentence here", "x"]
    result = await stubs.embedding.Embed(embed(BERT, texts, endpoint(
        mock, "tei-bert", task="feature-extraction", huggingface_namespace=NAMESPACE)))
    assert mock.requests[-1].path == "/endpoints/tei-bert"
    for text, e in zip(texts, result.embeddings):
        assert list(e.values) == pytest.approx(expected_embedding(mock.models[BERT], text), abs=1e-6)
    mock.enqueue(loading(7.5))
    f = await failure_of(stubs.embedding.Embed(embed(MINILM, ["x"])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.retry_delay == 7.5


# ---- credentials -----------------------------------------------------------------------------


def validate(model_type, model, credentials):
    return prov_pb.ValidateModelCredentialsRequest(provider="huggingface_hub", model_type=model_type, model=model,
                                                   credentials=struct(credentials))


async def test_validate_llm_credentials(stubs, mock):
    reply = await stubs.providers.ValidateModelCredentials(validate(common_pb2.MODEL_TYPE_LLM, ZEPHYR, hosted()))
    assert reply.credentials["task_type"] == "text-generation"  # read from the model card, as Dify stores it
    assert reply.credentials["huggingfacehub_api_token"] == "[__HIDDEN__]"
    assert mock.requests[-2].path == f"/api/models/{ZEPHYR}"
    assert mock.requests[-1].json["inputs"] == "Who are you?" and mock.requests[-1].json["parameters"][
        "max_new_tokens"] == 5
    await stubs.providers.ValidateModelCredentials(validate(common_pb2.MODEL_TYPE_LLM, ZEPHYR,
                                                            endpoint(mock, "tgi-zephyr")))
    for model, creds, text in [
        ("stabilityai/stable-diffusion-xl-base-1.0", hosted(), "is not a valid task"),
        ("acme/no-inference", hosted(), "Inference API has been turned off"),
        ("nobody/nothing", hosted(), "Repository not found"),
        (ZEPHYR, hosted(huggingfacehub_api_token="hf_bad"), "Incorrect model credentials"),
        (ZEPHYR, endpoint(mock, "tgi-zephyr", task="feature-extraction"), "Task Type must be one of"),
    ]:
        f = await failure_of(stubs.providers.ValidateModelCredentials(validate(common_pb2.MODEL_TYPE_LLM, model, creds)))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError", model
        assert text in f.message, (model, f.message)
    f = await failure_of(stubs.providers.ValidateModelCredentials(validate(common_pb2.MODEL_TYPE_LLM, ZEPHYR, {
        "huggingfacehub_api_type": "inference_endpoints", "huggingfacehub_api_token": TOKEN})))
    assert "credentials.huggingfacehub_endpoint_url" in f.violations and "credentials.task_type" in f.violations


async def test_validate_embedding_credentials(stubs, mock):
    await stubs.providers.ValidateModelCredentials(validate(common_pb2.MODEL_TYPE_TEXT_EMBEDDING, MINILM, hosted()))
    assert mock.requests[-1].json == {"inputs": ["hello world"]}
    creds = endpoint(mock, "tei-bert", task="feature-extraction", huggingface_namespace=NAMESPACE)
    await stubs.providers.ValidateModelCredentials(validate(common_pb2.MODEL_TYPE_TEXT_EMBEDDING, BERT, creds))
    assert any(r.path == f"/v2/endpoint/{NAMESPACE}" for r in mock.requests[-3:])
    for model, bad, text in [
        (MINILM, creds, "Model Name sentence-transformers/all-MiniLM-L6-v2 is invalid"),
        (BERT, dict(creds, huggingface_namespace="someone-else"), "User Name or Organization Name is invalid"),
        (BERT, dict(creds, task_type="text-generation"), "Task Type is invalid"),
        (ZEPHYR, hosted(), "is not a valid task"),
    ]:
        f = await failure_of(stubs.providers.ValidateModelCredentials(
            validate(common_pb2.MODEL_TYPE_TEXT_EMBEDDING, model, bad)))
        assert f.reason == "CredentialsValidateFailedError" and text in f.message, (model, f.message)
