"""Reasoning across turns, through the gRPC front door against faithful mocks (issue 14, item 1).

A two-turn tool conversation with thinking on, for Anthropic (direct, Vertex, Bedrock), Gemini 3
and OpenAI's Responses API: the first turn returns reasoning parts and provider state (unary and
streamed, kept by the typed client's accumulator), the caller sends the turn back as history
(``modelruntime.assistant_reply``), and the second request must carry the first turn's
signatures byte for byte; each mock rejects a follow-up that does not, as the provider does.
A switch of provider mid-conversation drops the other protocol's state instead of forwarding it.
"""

from __future__ import annotations

import json

import httpx
import pytest
from modelruntime import aaccumulate, assistant_reply
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb

from tests.helpers import failure_of, stream_failure, struct, target, user
from tests.mocks import anthropic_mock
from tests.mocks.anthropic_mock import REDACTED_DATA, REDACTED_TRIGGER, AnthropicMock
from tests.mocks.bedrock_mock import BedrockMock
from tests.mocks.bedrock_rules import sign as bedrock_sign
from tests.mocks.gemini_mock import GeminiMock
from tests.mocks.openai_common import ModelInfo
from tests.mocks.openai_mock import OpenAIMock, stream_error_after, truncate_after
from tests.mocks.openai_responses import encrypted

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [llm_pb.Tool(name="get_weather", description="Weather of a city", parameters=struct(WEATHER))]
THINKING = {"thinking": True, "thinking_budget": 2048, "max_tokens": 8192}
GPT5 = "gpt-5.4"


@pytest.fixture(scope="module")
async def anthropic():
    async with AnthropicMock(api_keys=["sk-ant-test"]) as m:
        yield m


@pytest.fixture(scope="module")
async def bedrock():
    async with BedrockMock(keys={"AKIDEXAMPLE0000000001": "secret/EXAMPLEKEY"}) as m:
        yield m


@pytest.fixture(scope="module")
async def gemini():
    async with GeminiMock(api_keys=["AIza-test"]) as m:
        yield m


@pytest.fixture(scope="module")
async def openai():
    async with OpenAIMock(api_keys=["sk-test"], extra_models=[
            ModelInfo(GPT5, "chat", snapshot="gpt-5.4-2026-03-05", reasoning=True),
            ModelInfo("my-gpt5", "chat", reasoning=True)]) as m:
        yield m


def anthropic_target(mock: AnthropicMock, model: str = "claude-sonnet-4-6"):
    return target("anthropic", model, {"anthropic_api_key": "sk-ant-test", "anthropic_api_url": mock.url})


def bedrock_target(mock: BedrockMock, model: str = "us.anthropic.claude-haiku-4-5-20251001-v1:0"):
    return target("bedrock", model, {"aws_access_key_id": "AKIDEXAMPLE0000000001",
                                     "aws_secret_access_key": "secret/EXAMPLEKEY", "aws_region": "us-west-2",
                                     "bedrock_endpoint_url": mock.url})


def gemini_target(mock: GeminiMock, model: str = "gemini-3.5-flash"):
    return target("google", model, {"google_api_key": "AIza-test", "google_base_url": mock.url + "/v1beta"})


def openai_target(mock: OpenAIMock, model: str = GPT5):
    return target("openai", model, {"openai_api_key": "sk-test", "openai_api_base": mock.url})


async def turn(stubs, tgt, messages, params=None, stream=False, tools=TOOLS) -> llm_pb.GenerateResponse:
    """One call; a stream is folded by the typed client's accumulator."""
    fields = {"target": tgt, "messages": messages, "tools": tools, "model_parameters": struct(params or {})}
    if stream:
        return await aaccumulate(stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(**fields)))
    return await stubs.llm.Generate(llm_pb.GenerateRequest(**fields))


def answered(first: llm_pb.GenerateResponse, question: llm_pb.Message) -> list[llm_pb.Message]:
    """The history of turn two: the question, the assistant turn as returned, the tool results."""
    results = [llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id=c.id, content=[llm_pb.ContentPart(text="21C")])
               for c in first.message.tool_calls]
    return [question, assistant_reply(first), *results]


# ---- Anthropic: direct, Vertex, Bedrock ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_anthropic_thinking_signatures_come_back_byte_for_byte(stubs, anthropic, stream):
    question = user("Weather in Paris?")
    first = await turn(stubs, anthropic_target(anthropic), [question], THINKING, stream)
    (part,) = first.message.reasoning
    assert part.origin == "anthropic" and part.text == "The user wrote: Weather in Paris?. Reply."
    assert part.signature == anthropic_mock.sign(part.text) and first.message.reasoning_content == part.text
    assert first.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and first.message.tool_calls
    second = await turn(stubs, anthropic_target(anthropic), answered(first, question), THINKING, stream)
    assistant = anthropic.requests[-1].json["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": part.text, "signature": part.signature}
    assert [b["type"] for b in assistant] == ["thinking", "text", "tool_use"]
    assert second.message.content == "Tool results: 21C"
    assert anthropic.sdk_problems == []


async def test_anthropic_stream_sends_reasoning_in_order_with_its_signature(stubs, anthropic):
    request = llm_pb.StreamGenerateRequest(target=anthropic_target(anthropic), messages=[user("Weather in Oslo?")],
                                           tools=TOOLS, model_parameters=struct(THINKING))
    chunks = [c async for c in stubs.llm.StreamGenerate(request)]
    pieces = [r for c in chunks for r in c.delta.reasoning]
    assert pieces[0].origin == "anthropic" and all(p.index == 0 for p in pieces)
    assert "".join(p.text for p in pieces) == "The user wrote: Weather in Oslo?. Reply."
    signed = [n for n, p in enumerate(pieces) if p.signature]
    assert signed == [len(pieces) - 1]  # the signature closes the part
    first_call = next(n for n, c in enumerate(chunks) if c.delta.tool_calls)
    last_reasoning = max(n for n, c in enumerate(chunks) if c.delta.reasoning)
    assert last_reasoning < first_call


async def test_anthropic_redacted_thinking_is_replayed(stubs, anthropic):
    question = user(f"Weather in Rome? {REDACTED_TRIGGER}")
    first = await turn(stubs, anthropic_target(anthropic), [question], THINKING, stream=True)
    assert [(p.signature != "", p.encrypted) for p in first.message.reasoning] == [(True, ""), (False, REDACTED_DATA)]
    await turn(stubs, anthropic_target(anthropic), answered(first, question), THINKING)
    sent = anthropic.requests[-1].json["messages"][1]["content"]
    assert sent[1] == {"type": "redacted_thinking", "data": REDACTED_DATA}


async def test_anthropic_tampered_thinking_is_refused_and_missing_thinking_turns_it_off(stubs, anthropic):
    question = user("Weather in Lima?")
    first = await turn(stubs, anthropic_target(anthropic), [question], THINKING)
    history = answered(first, question)
    history[1].reasoning[0].text += " (edited)"
    failure = await failure_of(turn(stubs, anthropic_target(anthropic), history, THINKING))
    assert failure.code.name == "INVALID_ARGUMENT" and "Invalid `signature`" in failure.message
    del history[1].reasoning[:]  # dropped by the caller: Anthropic would refuse thinking for this loop,
    result = await turn(stubs, anthropic_target(anthropic), history, THINKING)  # so it is off for the request
    assert "thinking" not in anthropic.requests[-1].json and result.message.content == "Tool results: 21C"
    body = dict(anthropic.requests[-1].json, thinking={"type": "enabled", "budget_tokens": 2048})
    async with httpx.AsyncClient() as http:  # the mock holds the API's rule, as the provider does
        refused = await http.post(anthropic.url + "/v1/messages", json=body,
                                  headers={"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"})
    assert refused.status_code == 400 and "must start with a thinking block" in refused.text


@pytest.fixture(scope="module")
async def vertex():
    from tests.mocks.vertex_mock import VertexMock

    async with VertexMock(project="test-project") as m:
        yield m


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_vertex_claude_thinking_signatures_come_back(stubs, vertex, stream):
    from tests.test_vertex import Account, _key

    account = Account(vertex, _key())
    tgt = target("vertex_ai", "claude-sonnet-4-6", account.creds())
    question = user("Weather in Paris?")
    first = await turn(stubs, tgt, [question], THINKING, stream)
    (part,) = first.message.reasoning
    assert part.origin == "anthropic" and part.signature == anthropic_mock.sign(part.text)
    second = await turn(stubs, tgt, answered(first, question), THINKING, stream)
    sent = vertex.api_requests[-1].json["messages"][1]["content"][0]
    assert sent == {"type": "thinking", "thinking": part.text, "signature": part.signature}
    assert second.message.content == "Tool results: 21C" and vertex.claude.sdk_problems == []


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_bedrock_reasoning_content_signature_comes_back(stubs, bedrock, stream):
    question = user("Weather in Paris?")
    first = await turn(stubs, bedrock_target(bedrock), [question], THINKING, stream)
    (part,) = first.message.reasoning
    assert part.origin == "bedrock" and part.signature == bedrock_sign(part.text)
    second = await turn(stubs, bedrock_target(bedrock), answered(first, question), THINKING, stream)
    sent = bedrock.requests[-1].json["messages"][1]["content"][0]
    assert sent == {"reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}}
    assert second.message.content == "Tool results: 21C"


# ---- Gemini 3 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_gemini3_signatures_on_calls_and_text_come_back(stubs, gemini, stream):
    question = user("Weather in Paris?")
    two = [*TOOLS, llm_pb.Tool(name="get_time", description="Time", parameters=struct(WEATHER))]
    first = await turn(stubs, gemini_target(gemini), [question], {"thinking_level": "high"}, stream, tools=two)
    calls = first.message.tool_calls
    assert [c.HasField("provider_state") for c in calls] == [True, False]  # parallel: only the first signed
    assert (calls[0].provider_state.origin, calls[0].provider_state.data) == ("gemini", gemini.thought_signature)
    assert calls[0].id == "call_0"  # the id stays an id
    second = await turn(stubs, gemini_target(gemini), answered(first, question), {}, stream, tools=two)
    parts = gemini.requests[-1].json["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == gemini.thought_signature and "thoughtSignature" not in parts[1]
    assert second.message.content.startswith("Tool said: ")
    # the text answer is signed too, and that signature goes back on the text part
    assert (second.message.provider_state.origin, second.message.provider_state.data) == (
        "gemini", gemini.thought_signature)
    history = [*answered(first, question), assistant_reply(second), user("And tomorrow?")]
    await turn(stubs, gemini_target(gemini), history, {}, stream, tools=two)
    model_turn = gemini.requests[-1].json["contents"][3]
    assert model_turn["role"] == "model" and model_turn["parts"][-1] == {
        "text": second.message.content, "thoughtSignature": gemini.thought_signature}


async def test_vertex_gemini3_call_signature_comes_back(stubs, vertex):
    from tests.test_vertex import Account, _key

    tgt = target("vertex_ai", "gemini-3.5-flash", Account(vertex, _key()).creds())
    question = user("Weather in Paris?")
    first = await turn(stubs, tgt, [question], {}, stream=True)
    (call,) = first.message.tool_calls
    assert (call.provider_state.origin, call.provider_state.data) == ("gemini", vertex.gemini.thought_signature)
    second = await turn(stubs, tgt, answered(first, question))
    parts = vertex.api_requests[-1].json["contents"][1]["parts"]
    assert parts[-1]["thoughtSignature"] == vertex.gemini.thought_signature
    assert second.message.content.startswith("Tool said: ")


# ---- OpenAI Responses API -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_openai_responses_encrypted_reasoning_comes_back(stubs, openai, stream):
    question = user("Weather in Paris?")
    first = await turn(stubs, openai_target(openai), [question], {"reasoning_effort": "high"}, stream)
    sent = openai.requests[-1]
    assert sent.path == "/v1/responses" and sent.json["include"] == ["reasoning.encrypted_content"]
    assert sent.json["store"] is False and sent.json["reasoning"] == {"effort": "high"}
    (part,) = first.message.reasoning
    assert part.origin == "openai_responses" and part.id.startswith("rs_") and part.encrypted == encrypted(part.id)
    (call,) = first.message.tool_calls
    assert call.id.startswith("call_") and call.provider_state.data.startswith("fc_")
    assert first.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and first.usage.reasoning_tokens == 12
    second = await turn(stubs, openai_target(openai), answered(first, question), {"reasoning_effort": "high"}, stream)
    items = openai.requests[-1].json["input"]
    assert [i["type"] for i in items] == ["message", "reasoning", "function_call", "function_call_output"]
    assert items[1] == {"type": "reasoning", "id": part.id, "summary": [], "encrypted_content": part.encrypted}
    assert (items[2]["id"], items[2]["call_id"], items[3]["call_id"]) == (call.provider_state.data, call.id, call.id)
    assert second.message.content == "Tool results: 21C"
    assert second.finish_reason == llm_pb.FINISH_REASON_STOP and openai.responses.problems == []


async def test_openai_responses_without_the_reasoning_item_is_refused(stubs, openai):
    question = user("Weather in Oslo?")
    first = await turn(stubs, openai_target(openai), [question], {"reasoning_effort": "low"})
    history = answered(first, question)
    del history[1].reasoning[:]
    failure = await failure_of(turn(stubs, openai_target(openai), history))
    assert failure.code.name == "INVALID_ARGUMENT" and "without its required 'reasoning' item" in failure.message


async def test_openai_responses_structured_output_and_text(stubs, openai):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    params = {"response_format": "json_schema", "json_schema": json.dumps({"name": "out", "schema": schema}),
              "verbosity": "low", "max_completion_tokens": 500}
    result = await turn(stubs, openai_target(openai), [user("hi")], params, tools=[])
    body = openai.requests[-1].json
    assert body["text"] == {"format": {"type": "json_schema", "name": "out", "schema": schema}, "verbosity": "low"}
    assert body["max_output_tokens"] == 500 and "seed" not in body
    assert json.loads(result.message.content) == {"answer": "hi"}
    assert result.message.provider_state.data.startswith("msg_") and openai.responses.problems == []


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_openai_responses_cut_by_max_output_tokens_finishes_with_length(stubs, openai, stream):
    result = await turn(stubs, openai_target(openai), [user("a long question " * 20)],
                        {"max_completion_tokens": 20}, stream, tools=[])
    assert result.finish_reason == llm_pb.FINISH_REASON_LENGTH and result.provider_finish_reason == "max_output_tokens"
    assert result.message.content and openai.responses.problems == []


async def test_openai_responses_stream_error_and_truncation(stubs, openai):
    request = llm_pb.StreamGenerateRequest(target=openai_target(openai), messages=[user("hello there friend")])
    openai.enqueue(stream_error_after(7, type="server_error", code="server_error"), path="/responses")
    received, failure = await stream_failure(stubs.llm.StreamGenerate(request))
    assert failure.code.name == "UNAVAILABLE" and "had an error" in failure.message
    assert "".join(c.delta.content for c in received) and not any(c.finish_reason for c in received)
    openai.enqueue(truncate_after(7), path="/responses")
    received, failure = await stream_failure(stubs.llm.StreamGenerate(request))
    assert failure.reason == "InvokeConnectionError" and not any(c.finish_reason for c in received)
    assert openai.responses.problems == []


async def test_openai_responses_refuses_stop_sequences(stubs, openai):
    request = llm_pb.GenerateRequest(target=openai_target(openai), messages=[user("hi")], stop=["END"])
    failure = await failure_of(stubs.llm.Generate(request))
    assert failure.code.name == "INVALID_ARGUMENT" and "stop" in failure.violations


async def test_azure_openai_serves_a_responses_deployment_beside_its_deployments(stubs):
    async with OpenAIMock(api_keys=["azure-token"], prefix="/openai",
                          extra_models=[ModelInfo("my-gpt5", "chat", reasoning=True)]) as mock:
        tgt = target("azure_openai", "my-gpt5", {
            "openai_api_base": mock.url, "openai_api_key": "azure-token", "openai_api_version": "2025-04-01-preview",
            "base_model_name": "gpt-5", "auth_method": "entra_id"})
        question = user("Weather in Paris?")
        first = await turn(stubs, tgt, [question], {"reasoning_effort": "medium"}, stream=True)
        second = await turn(stubs, tgt, answered(first, question), {"reasoning_effort": "medium"})
        sent = mock.requests[-1]
        assert sent.path == "/openai/responses" and sent.query_one("api-version") == "2025-04-01-preview"
        assert sent.json["model"] == "my-gpt5" and sent.json["input"][1]["type"] == "reasoning"
        assert second.message.content == "Tool results: 21C" and mock.responses.problems == []
        # the deployment's credential check pings through the Responses API too (its floor is 16 tokens)
        await stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
            provider="azure_openai", model="my-gpt5", model_type=common_pb2.MODEL_TYPE_LLM,
            credentials=tgt.credentials))
        assert mock.requests[-1].json["max_output_tokens"] == 16 and mock.responses.problems == []
        failure = await failure_of(turn(stubs, tgt, [question], {"max_completion_tokens": 8}))
        assert "model_parameters.max_completion_tokens" in failure.violations


async def test_openai_chat_models_never_get_reasoning_content(stubs, openai):
    thought = llm_pb.ReasoningPart(text="a DeepSeek thought", origin="openai_chat")
    history = [user("hi"), llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, content=[llm_pb.ContentPart(text="hello")],
                                          reasoning=[thought]), user("again")]
    result = await turn(stubs, openai_target(openai, "gpt-4o-mini"), history, tools=[])
    assert openai.requests[-1].path == "/v1/chat/completions" and result.message.content
    assert "reasoning_content" not in json.dumps(openai.requests[-1].json)  # OpenAI rejects the field


# ---- switching provider mid-conversation --------------------------------------------------------


async def test_switching_provider_drops_the_other_protocols_state(stubs, anthropic, bedrock, gemini, openai):
    question = user("Weather in Paris?")
    claude = await turn(stubs, anthropic_target(anthropic), [question], THINKING)
    history = answered(claude, question)
    # Anthropic's thinking is not forwarded to Gemini 3; its unsigned call gets the documented stand-in
    await turn(stubs, gemini_target(gemini), history)
    contents = gemini.requests[-1].json["contents"]
    sent = json.dumps(contents)
    assert claude.message.reasoning[0].signature not in sent and "The user wrote" not in sent
    call_part = next(p for p in contents[1]["parts"] if "functionCall" in p)
    assert call_part["thoughtSignature"] == "skip_thought_signature_validator"
    # ... nor to OpenAI, whose body stays valid against its OpenAPI schema
    result = await turn(stubs, openai_target(openai), history)
    items = openai.requests[-1].json["input"]
    assert [i["type"] for i in items] == ["message", "message", "function_call", "function_call_output"]
    assert "id" not in items[2] and result.message.content == "Tool results: 21C"
    # Gemini's and OpenAI's state never reaches Anthropic; a tool loop begun elsewhere continues
    # there with thinking on (Anthropic would refuse thinking for it: it is left off for that request)
    gem = await turn(stubs, gemini_target(gemini), [question])
    gpt = await turn(stubs, openai_target(openai), [question], {"reasoning_effort": "low"})
    for other in (gem, gpt):
        result = await turn(stubs, anthropic_target(anthropic), answered(other, question), THINKING)
        body = anthropic.requests[-1].json
        assert [b["type"] for b in body["messages"][1]["content"]] == ["tool_use"] and "thinking" not in body
        assert result.message.content == "Tool results: 21C"
    # the same on Bedrock, whose reasoning is Converse's own: Anthropic's is not forwarded either
    claude_history = answered(claude, question)
    result = await turn(stubs, bedrock_target(bedrock), claude_history, THINKING)
    body = bedrock.requests[-1].json
    assert "reasoningContent" not in json.dumps(body) and "thinking" not in body.get("additionalModelRequestFields", {})
    assert result.message.content == "Tool results: 21C"
    # a new user question starts a new loop: thinking is on again
    history = [*answered(gem, question), assistant_reply(result), user("And in Rome?")]
    await turn(stubs, anthropic_target(anthropic), history, THINKING)
    assert anthropic.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert anthropic.sdk_problems == [] and openai.responses.problems == []


# ---- the OpenAI-compatible HTTP endpoint --------------------------------------------------------


async def test_http_endpoint_passes_what_openai_passes_and_invents_nothing(anthropic):
    from server.app import start_server
    from server.config import Config, EgressConfig, GrpcConfig, HttpConfig, ProviderCredentials
    from server.http.app import start_http

    config = Config(
        grpc=GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.5),
        http=HttpConfig(enabled=True, host="127.0.0.1", port=0),
        egress=EgressConfig(allowed_cidrs=["127.0.0.1/32"], retries=1, connect_timeout=5, read_timeout=30),
        providers={"anthropic": ProviderCredentials(credentials={"anthropic_api_key": "sk-ant-test",
                                                                 "anthropic_api_url": anthropic.url})})
    running = await start_server(config)
    door = await start_http(config, running.runtime)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{door.port}", timeout=60) as http:
            reply = await http.post("/v1/chat/completions", json={
                "model": "anthropic/claude-sonnet-4-6", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}],
                **THINKING})
    finally:
        await door.stop()
        await running.stop(0)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    message = body["choices"][0]["message"]
    thought = "The user wrote: Weather in Paris?. Reply."
    assert message["reasoning_content"] == thought  # what OpenAI-compatible reasoning providers pass
    assert anthropic_mock.sign(thought) not in reply.text  # signatures have no field in OpenAI's API
    assert set(message) <= {"role", "content", "tool_calls", "reasoning_content", "refusal"}
    assert set(message["tool_calls"][0]) == {"id", "type", "function"}
    assert "cached_tokens" in body["usage"]["prompt_tokens_details"]
