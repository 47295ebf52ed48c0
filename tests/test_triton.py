"""Triton Inference Server (generate extension) through the real gRPC server against the Triton mock."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb

from engine.entities import LLMMode
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.tokenizers import count_text
from providers.protocols.triton.transform import OutputTracker, StopCutter, build_prompt
from tests.helpers import failure_of, stream_failure, struct, system, target, user
from tests.mocks.triton_mock import TritonMock, hang, status, stream_error_after, truncate_after

PROVIDER = "triton_inference_server"
MODEL = "ensemble"


@pytest.fixture(scope="module")
async def mock():
    async with TritonMock() as m:
        yield m


def creds(mock: TritonMock, **extra) -> dict:
    return {"server_url": mock.url, "context_size": "4096", "completion_type": "chat", "stream": "true", **extra}


def req(mock, model=MODEL, messages=None, cls=llm_pb.GenerateRequest, credentials=None, **kw):
    return cls(target=target(PROVIDER, model, credentials or creds(mock)), messages=messages or [user("hello there")],
               **kw)


def sreq(mock, **kw):
    return req(mock, cls=llm_pb.StreamGenerateRequest, **kw)


def validate(mock, model=MODEL, credentials=None):
    return prov_pb.ValidateModelCredentialsRequest(
        provider=PROVIDER, model_type=common_pb2.MODEL_TYPE_LLM, model=model,
        credentials=struct(credentials or creds(mock)))


# ---- catalog ---------------------------------------------------------------------------------


async def test_provider_is_customizable_llm_only_with_difys_form(stubs):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    triton = providers[PROVIDER]
    assert list(triton.configurate_methods) == [prov_pb.CONFIGURATE_METHOD_CUSTOMIZABLE_MODEL]
    assert list(triton.supported_model_types) == [common_pb2.MODEL_TYPE_LLM]
    assert not triton.provider_credential_fields
    assert [f.variable for f in triton.model_credential_fields] == ["server_url", "context_size", "completion_type",
                                                                    "stream"]
    models = (await stubs.providers.ListModels(prov_pb.ListModelsRequest(provider=PROVIDER))).models
    assert list(models) == []


async def test_schema_from_credentials(stubs, mock):
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider=PROVIDER, model_type=common_pb2.MODEL_TYPE_LLM, model=MODEL,
        credentials=struct(creds(mock, context_size="1024", completion_type="completion"))))).model
    assert model.properties["mode"] == "completion" and model.properties["context_size"] == 1024
    rules = {r.name: r for r in model.parameter_rules}
    assert set(rules) == {"temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty", "max_tokens"}
    assert rules["max_tokens"].max == 1024 and rules["max_tokens"].default.number_value == 512


def test_prompt_template():
    messages = [PromptMessage(Role.SYSTEM, [ContentPart(PartKind.TEXT, text="be brief")]),
                PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="hi")]),
                PromptMessage(Role.ASSISTANT, [ContentPart(PartKind.TEXT, text="hello")]),
                PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="and?")])]
    assert build_prompt(messages, LLMMode.CHAT) == "System: be brief\nUser: hi\nAssistant: hello\nUser: and?\nAssistant:"
    assert build_prompt(messages, LLMMode.COMPLETION) == "be brief\n\nhi\n\nhello\n\nand?"


def test_output_tracker_and_stop_cutter():
    delta = OutputTracker("P")
    assert [delta.feed(t) for t in ["Hel", "lo", " world"]] == ["Hel", "lo", " world"]
    cumulative = OutputTracker("P")
    assert [cumulative.feed(t) for t in ["PHel", "PHello", "PHello", "PHello world"]] == ["Hel", "lo", "", " world"]
    assert OutputTracker.whole("Prompt: answer", "Prompt:") == " answer"
    cutter = StopCutter(["END"])
    assert [cutter.feed(t) for t in ["abc E", "N", "D tail"]] == ["abc", " ", ""] and cutter.hit
    assert StopCutter(["xyz"]).cut("no stop here") == "no stop here"


# ---- generation ------------------------------------------------------------------------------


async def test_generate_unary_body_and_local_counts(stubs, mock):
    response = await stubs.llm.Generate(req(
        mock, messages=[system("be brief"), user("hello there")],
        model_parameters=struct({"temperature": 0.5, "max_tokens": 100, "top_k": 20})))
    sent = mock.requests[-1]
    assert sent.path == "/v2/models/ensemble/generate"
    prompt = "System: be brief\nUser: hello there\nAssistant:"
    assert sent.json == {"text_input": prompt, "max_tokens": 100,
                         "parameters": {"stream": False, "max_tokens": 100, "temperature": 0.5, "top_k": 20}}
    assert response.message.content == "Echo: hello there" == mock.expected_reply(prompt)
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP
    assert response.usage.prompt_tokens == count_text(prompt) and response.usage.completion_tokens == count_text(
        "Echo: hello there")


async def test_unary_echoed_prompt_is_removed(stubs, mock):
    response = await stubs.llm.Generate(req(mock, model="vllm_model"))
    assert response.message.content == "Echo: hello there"
    assert mock.requests[-1].json["max_tokens"] == 512  # Dify's default when none is set


async def test_stream_delta_mode(stubs, mock):
    text = "stream me please — ünïcödé ok"
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(mock, messages=[user(text)]))]
    sent = mock.requests[-1]
    assert sent.path == "/v2/models/ensemble/generate_stream" and sent.json["parameters"]["stream"] is True
    assert "".join(c.delta.content for c in chunks) == f"Echo: {text}"
    assert len([c for c in chunks if c.delta.content]) > 3
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_STOP and final.usage.prompt_tokens == count_text(
        sent.json["text_input"])
    assert final.usage.completion_tokens == count_text(f"Echo: {text}")
    assert all(not c.HasField("usage") for c in chunks[:-1])


async def test_stream_cumulative_mode_with_echo(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, model="vllm_model", messages=[user("one two three four")]))]
    contents = [c.delta.content for c in chunks if c.delta.content]
    assert "".join(contents) == "Echo: one two three four"
    assert contents[:2] == ["Echo:", " one"]  # increments, not the growing text
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP


async def test_max_tokens_and_local_stop_words(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[user("one two three four five")], model_parameters=struct({"max_tokens": 3})))]
    assert mock.requests[-1].json["max_tokens"] == 3 and "".join(c.delta.content for c in chunks) == "Echo: one two"
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, messages=[user("alpha beta STOP gamma delta")], stop=["STOP"]))]
    assert "stop" not in mock.requests[-1].json["parameters"]
    assert "".join(c.delta.content for c in chunks) == "Echo: alpha beta "
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP


async def test_stream_credential_false_uses_generate(stubs, mock):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        mock, model="static_model", credentials=creds(mock, stream="false")))]
    assert mock.requests[-1].path == "/v2/models/static_model/generate"
    assert [c.delta.content for c in chunks if c.delta.content] == ["Echo: hello there"]
    assert chunks[-1].finish_reason == llm_pb.FINISH_REASON_STOP


async def test_completion_mode_prompt(stubs, mock):
    response = await stubs.llm.Generate(req(
        mock, messages=[user("Once upon a time")], credentials=creds(mock, completion_type="completion")))
    assert mock.requests[-1].json["text_input"] == "Once upon a time"
    assert response.message.content == "Echo: Once upon a time"


async def test_tools_are_refused_before_sending(stubs, mock):
    before = len(mock.requests)
    tool = llm_pb.Tool(name="get_weather", description="d", parameters=struct({"type": "object", "properties": {}}))
    f = await failure_of(stubs.llm.Generate(req(mock, tools=[tool])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "tools" in f.violations
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, tools=[tool])))
    assert received == [] and "tools" in f.violations
    assert len(mock.requests) == before


# ---- upstream failures -----------------------------------------------------------------------


async def test_400_error_object_and_unknown_model(stubs, mock):
    mock.enqueue(status(400, "[request id: <id_unknown>] input 'text_input' batch size does not match",
                        endpoint="generate"))
    f = await failure_of(stubs.llm.Generate(req(mock)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "batch size does not match" in f.message and f.metadata["upstreamStatus"] == "400"
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, model="nope")))
    assert received == [] and f.code == grpc.StatusCode.NOT_FOUND
    assert "Request for unknown model: 'nope' is not found" in f.message


async def test_error_event_after_a_200_stream(stubs, mock):
    mock.enqueue(stream_error_after(3))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f")])))
    assert "".join(c.delta.content for c in received) == "Echo: a b" and not any(c.finish_reason for c in received)
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert "CUDA out of memory" in f.message


@pytest.mark.parametrize("partial", [False, True])
async def test_truncated_stream_is_a_connection_error(stubs, mock, partial):
    mock.enqueue(truncate_after(3, partial=partial))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock, messages=[user("a b c d e f")])))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"
    assert not any(c.finish_reason for c in received)


async def test_server_error_status(stubs, mock):
    mock.enqueue(status(503, "Server not ready"))
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(mock)))
    assert received == [] and f.code == grpc.StatusCode.UNAVAILABLE and "Server not ready" in f.message


async def test_cancel_closes_the_upstream_connection_within_100ms(stubs, mock):
    mock.enqueue(hang())
    call = stubs.llm.StreamGenerate(sreq(mock))
    await mock.wait_requests(len(mock.requests) + 1)
    await asyncio.sleep(0.05)
    conn = mock.server.connection(mock.requests[-1].connection_id)
    assert not conn.closed
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_by_peer
    assert record.closed_at - cancelled_at < 0.1, f"closed after {record.closed_at - cancelled_at:.3f}s"


# ---- credentials -----------------------------------------------------------------------------


async def test_validation_checks_readiness_then_generates(stubs, mock):
    before = len(mock.requests)
    response = await stubs.providers.ValidateModelCredentials(validate(mock))
    assert response.credentials["server_url"] == mock.url
    paths = [(r.method, r.path) for r in mock.requests[before:]]
    assert paths == [("GET", "/v2/models/ensemble/ready"), ("POST", "/v2/models/ensemble/generate")]
    assert mock.requests[-1].json["max_tokens"] == 5

    before = len(mock.requests)
    f = await failure_of(stubs.providers.ValidateModelCredentials(validate(mock, model="loading_model")))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    assert "not ready" in f.message
    assert [r.path for r in mock.requests[before:]] == ["/v2/models/loading_model/ready"]  # no generate

    f = await failure_of(stubs.providers.ValidateModelCredentials(validate(mock, model="missing")))
    assert f.reason == "CredentialsValidateFailedError" and "unknown model" in f.message


async def test_validation_fails_for_a_dead_server_and_a_bad_form(stubs, mock):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    f = await failure_of(stubs.providers.ValidateModelCredentials(validate(mock, credentials=creds(mock, server_url=dead))))
    assert f.reason == "CredentialsValidateFailedError"
    f = await failure_of(stubs.providers.ValidateModelCredentials(validate(
        mock, credentials={"server_url": mock.url, "context_size": "2048", "completion_type": "other",
                           "stream": "true"})))
    assert "credentials.completion_type" in f.violations
