"""Provider-specific quirks of the OpenAI-compatible providers, each declared in the provider's
YAML ``runtime`` block and handled by the shared adapter (through the real gRPC server)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from decimal import Decimal

import grpc
import orjson
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import rerank_service_pb2 as rr_pb
from modelruntime.v1 import text_embedding_service_pb2 as emb_pb

from engine.adapter import CallContext
from engine.entities import ModelType
from providers import builtin_registry
from providers.protocols.openai import client
from providers.protocols.openai.auth import sign_zhipu_jwt, zhipu_token
from providers.protocols.openai.chat_transform import apply_body_options
from providers.protocols.openai.options import OpenAIOptions
from tests.helpers import failure_of, stream_failure, struct, target, user
from tests.mocks import compat_mock
from tests.mocks.compat_dialects import DIALECTS, ENTRA_TOKEN, ZHIPU_KEY
from tests.mocks.compat_mock import tgt
from tests.mocks.openai_scenarios import raw_response, reply, stream_error_after

pool, upstream = compat_mock.pool, compat_mock.upstream  # the shared fixtures
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def stream_req(d, mock, model=None, **kw):
    return llm_pb.StreamGenerateRequest(target=tgt(d, mock, model=model), messages=kw.pop("messages", [user("hi")]),
                                        **kw)


def gen_req(d, mock, model=None, **kw):
    return llm_pb.GenerateRequest(target=tgt(d, mock, model=model), messages=kw.pop("messages", [user("hi")]), **kw)


# ---- DeepSeek ------------------------------------------------------------------------------------


async def test_deepseek_reasoning_content_streams_separately(stubs, upstream):
    d, mock = DIALECTS["deepseek"], await upstream("deepseek")
    mock.enqueue(reply(content="The answer is 4.", reasoning_content="2 plus 2 makes 4."), path="/chat/completions")
    chunks = [c async for c in stubs.llm.StreamGenerate(stream_req(
        d, mock, "deepseek-v4-pro", model_parameters=struct({"thinking": True})))]
    assert "".join(c.delta.reasoning_content for c in chunks) == "2 plus 2 makes 4."
    assert "".join(c.delta.content for c in chunks) == "The answer is 4."
    assert mock.requests[-1].json["thinking"] == {"type": "enabled"}  # the switch, in DeepSeek's shape


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_deepseek_tool_loop_sends_reasoning_content_back(stubs, upstream, stream):
    from modelruntime import aaccumulate, assistant_reply

    d, mock = DIALECTS["deepseek"], await upstream("deepseek")
    call_id = f"call_ds_{int(stream)}"
    mock.enqueue(reply(tool_calls=[{"id": call_id, "name": "get_weather", "arguments": {"city": "Paris"}}],
                       reasoning_content="I need the weather first."), path="/chat/completions")
    tools = [llm_pb.Tool(name="get_weather", description="Weather", parameters=struct(WEATHER))]
    question = user("Weather in Paris?")
    if stream:
        first = await aaccumulate(stubs.llm.StreamGenerate(stream_req(d, mock, "deepseek-v4-pro", messages=[question],
                                                                      tools=tools)))
    else:
        first = await stubs.llm.Generate(gen_req(d, mock, "deepseek-v4-pro", messages=[question], tools=tools))
    (part,) = first.message.reasoning
    assert (part.text, part.origin) == ("I need the weather first.", "openai_chat")
    history = [question, assistant_reply(first),
               llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id=call_id, content=[llm_pb.ContentPart(text="21C")])]
    await stubs.llm.Generate(gen_req(d, mock, "deepseek-v4-pro", messages=history, tools=tools))
    assert mock.requests[-1].json["messages"][1]["reasoning_content"] == "I need the weather first."
    del history[1].reasoning[:]  # a caller that drops it gets DeepSeek's refusal
    failure = await failure_of(stubs.llm.Generate(gen_req(d, mock, "deepseek-v4-pro", messages=history, tools=tools)))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT and "reasoning_content" in failure.message


def test_http_endpoint_takes_reasoning_content_back_on_assistant_turns():
    from server.http.chat import parse_messages

    messages = parse_messages([{"role": "user", "content": "hi"},
                               {"role": "assistant", "content": None, "reasoning_content": "thought",
                                "tool_calls": [{"id": "c1", "type": "function",
                                                "function": {"name": "f", "arguments": "{}"}}]},
                               {"role": "user", "content": "x", "reasoning_content": "ignored on users"}])
    assert [(r.text, r.origin) for r in messages[1].reasoning] == [("thought", "openai_chat")]
    assert messages[0].reasoning == messages[2].reasoning == []


async def test_deepseek_queued_reply_padded_with_blank_lines(stubs, upstream):
    d, mock = DIALECTS["deepseek"], await upstream("deepseek")
    body = {"id": "x", "object": "chat.completion", "model": "deepseek-v4-flash",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "late but fine",
                                                 "reasoning_content": "thought"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "prompt_cache_hit_tokens": 2}}
    mock.enqueue(raw_response(200, {"content-type": "application/json"}, b"\n\n\n" + orjson.dumps(body)),
                 path="/chat/completions")
    response = await stubs.llm.Generate(gen_req(d, mock))
    assert response.message.content == "late but fine" and response.message.reasoning_content == "thought"
    assert response.usage.prompt_tokens == 5 and response.usage.completion_tokens == 3


async def test_insufficient_balance_is_resource_exhausted_without_retry(stubs, upstream):
    for name in ("deepseek", "openrouter"):
        d, mock = DIALECTS[name], await upstream(name)
        mock.enqueue(mock.out_of_credits(), path="/chat/completions")
        f = await failure_of(stubs.llm.Generate(gen_req(d, mock)))
        assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
        assert f.retry_delay is None and f.metadata["upstreamStatus"] == "402"


# ---- OpenRouter ----------------------------------------------------------------------------------


async def test_openrouter_attribution_headers_policy_and_reasoning_object(stubs, upstream):
    d, mock = DIALECTS["openrouter"], await upstream("openrouter")
    await stubs.llm.Generate(gen_req(d, mock, "deepseek/deepseek-v4-flash", model_parameters=struct(
        {"reasoning_effort": "high", "exclude_reasoning_tokens": False})))
    sent = mock.requests[-1]
    assert sent.headers["http-referer"] == "https://dify.ai/" and sent.headers["x-title"] == "Dify"
    assert sent.json["provider"] == {"data_collection": "allow"}
    assert sent.json["reasoning"] == {"effort": "high", "exclude": False}
    assert "reasoning_effort" not in sent.json and "exclude_reasoning_tokens" not in sent.json


async def test_openrouter_error_inside_200_stream(stubs, upstream):
    d, mock = DIALECTS["openrouter"], await upstream("openrouter")
    mock.enqueue(stream_error_after(3, message="Provider returned error", code=502), path="/chat/completions")
    received, f = await stream_failure(stubs.llm.StreamGenerate(stream_req(d, mock, messages=[user("hello world")])))
    assert "".join(c.delta.content for c in received)  # content before the error reached the caller
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    assert "Provider returned error" in f.message


async def test_openrouter_customizable_model_schema_from_its_form(stubs, upstream):
    d, mock = DIALECTS["openrouter"], await upstream("openrouter")
    creds = {"api_key": d.key, "mode": "chat", "context_size": "131072", "max_tokens_to_sample": "8192",
             "vision_support": "support", "function_calling_type": "tool_call"}
    got = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="openrouter", model_type=common_pb2.MODEL_TYPE_LLM,
        model="mistralai/mistral-small-3.2-24b-instruct", credentials=struct(creds)))).model
    assert got.fetch_from == prov_pb.FETCH_FROM_CUSTOMIZABLE_MODEL
    assert prov_pb.MODEL_FEATURE_VISION in got.features and prov_pb.MODEL_FEATURE_TOOL_CALL in got.features
    assert got.properties.fields["context_size"].number_value == 131072
    response = await stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("openrouter", "mistralai/mistral-small-3.2-24b-instruct", creds), messages=[user("yo")]))
    assert response.message.content == mock.expected_reply("yo")


# ---- Mistral -------------------------------------------------------------------------------------


async def test_mistral_tool_choice_any_no_user_and_whole_tool_calls(stubs, upstream):
    d, mock = DIALECTS["mistralai"], await upstream("mistralai")
    chunks = [c async for c in stubs.llm.StreamGenerate(stream_req(
        d, mock, tools=[llm_pb.Tool(name="get_weather", parameters=struct(WEATHER))], user="end-user-1",
        tool_choice=llm_pb.ToolChoice(mode=llm_pb.TOOL_CHOICE_MODE_REQUIRED),
        model_parameters=struct({"random_seed": 7, "safe_prompt": True})))]
    sent = mock.requests[-1].json
    assert sent["tool_choice"] == "any" and "user" not in sent and "stream_options" not in sent
    assert sent["random_seed"] == 7 and sent["safe_prompt"] is True
    calls = [t for c in chunks for t in c.delta.tool_calls]
    assert len(calls) == 1 and len(calls[0].id) == 9 and calls[0].id.isalnum()  # arrived whole
    assert json.loads(calls[0].arguments) == {"city": "hi café"}


# ---- Moonshot ------------------------------------------------------------------------------------


async def test_moonshot_user_cut_to_32_and_thinking_switch(stubs, upstream):
    d, mock = DIALECTS["moonshot"], await upstream("moonshot")
    await stubs.llm.Generate(gen_req(d, mock, "kimi-k2.6", user="u" * 40, model_parameters=struct({"thinking": False})))
    sent = mock.requests[-1].json
    assert sent["user"] == "u" * 32 and sent["thinking"] == {"type": "disabled"}


# ---- together.ai ---------------------------------------------------------------------------------


async def test_togetherai_lists_remote_models_from_its_bare_list(stubs, upstream):
    d, mock = DIALECTS["togetherai"], await upstream("togetherai")
    response = await stubs.providers.ListModels(prov_pb.ListModelsRequest(
        provider="togetherai", model_type=common_pb2.MODEL_TYPE_LLM, credentials=struct(d.credentials(mock.url))))
    assert [m.name for m in response.models] == ["meta-llama/Llama-3.3-70B-Instruct-Turbo"]
    assert mock.requests[-1].path == "/v1/models"


# ---- Azure OpenAI --------------------------------------------------------------------------------


async def test_azure_entra_bearer_and_base_model_schema(stubs, upstream):
    d, mock = DIALECTS["azure_openai"], await upstream("azure_openai")
    creds = dict(d.credentials(mock.url, key=ENTRA_TOKEN), auth_method="entra_id")
    response = await stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("azure_openai", "prod-gpt4o", creds), messages=[user("hi")]))
    assert response.message.content
    sent = mock.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {ENTRA_TOKEN}" and "api-key" not in sent.headers
    assert sent.target.startswith("/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21")
    model = (await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="azure_openai", model_type=common_pb2.MODEL_TYPE_LLM, model="prod-gpt4o",
        credentials=struct(creds)))).model
    assert model.name == "prod-gpt4o" and prov_pb.MODEL_FEATURE_VISION in model.features  # gpt-4o's schema
    assert Decimal(model.pricing.input) == Decimal("2.50")


async def test_azure_unknown_deployment_is_not_found(stubs, upstream):
    d, mock = DIALECTS["azure_openai"], await upstream("azure_openai")
    f = await failure_of(stubs.llm.Generate(gen_req(d, mock, "no-such-deployment")))
    assert f.code == grpc.StatusCode.NOT_FOUND and "deployment" in f.message.lower()


# ---- Zhipu ---------------------------------------------------------------------------------------


async def test_zhipu_sends_a_millisecond_jwt_signed_with_the_secret(stubs, upstream):
    d, mock = DIALECTS["zhipuai"], await upstream("zhipuai")
    before = int(time.time() * 1000)
    await stubs.llm.Generate(gen_req(d, mock))
    token = mock.requests[-1].headers["authorization"].removeprefix("Bearer ")
    head, payload, _ = token.split(".")
    pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    assert json.loads(pad(head)) == {"alg": "HS256", "sign_type": "SIGN"}
    claims = json.loads(pad(payload))
    assert claims["api_key"] == ZHIPU_KEY.split(".")[0] and claims["exp"] - claims["timestamp"] == 180_000
    assert claims["timestamp"] >= before - 200_000  # milliseconds (cached up to 150 s)


def test_zhipu_token_is_cached_and_raw_keys_pass_through():
    assert zhipu_token(ZHIPU_KEY) == zhipu_token(ZHIPU_KEY)
    assert zhipu_token("rawkeywithoutdot") == "rawkeywithoutdot"
    assert sign_zhipu_jwt("id", "s", 1000.0) != sign_zhipu_jwt("id", "s", 1001.0)


# ---- Xinference and LocalAI ------------------------------------------------------------------------


async def test_xinference_generate_only_model_uses_completions(stubs, upstream):
    d, mock = DIALECTS["xinference"], await upstream("xinference")
    creds = {"server_url": mock.url, "model_uid": "llama-2-generate-5a0e", "api_key": d.key}
    checked = (await stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="xinference", model_type=common_pb2.MODEL_TYPE_LLM, model="llama-2",
        credentials=struct(creds)))).credentials
    assert checked.fields["mode"].string_value == "completion"
    stored = {k: v.string_value for k, v in checked.fields.items()} | {"api_key": d.key}
    response = await stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("xinference", "llama-2", stored), messages=[user("Once upon")]))
    sent = mock.requests[-1]
    assert sent.path == "/v1/completions" and sent.json["model"] == "llama-2-generate-5a0e"
    assert response.message.content


async def test_xinference_wrong_kind_or_unknown_uid_fails_validation(stubs, upstream):
    d, mock = DIALECTS["xinference"], await upstream("xinference")
    for uid in ("bge-m3-e81c", "missing-uid"):
        f = await failure_of(stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
            provider="xinference", model_type=common_pb2.MODEL_TYPE_LLM, model="x",
            credentials=struct({"server_url": mock.url, "model_uid": uid, "api_key": d.key}))))
        assert f.reason == "CredentialsValidateFailedError", uid


async def test_localai_completion_type_selects_completions(stubs, upstream):
    d, mock = DIALECTS["localai"], await upstream("localai")
    mock.models["llama-3.2-1b-instruct"] = mock.models["llama-3.2-1b-instruct"].__class__(
        "llama-3.2-1b-instruct", "completion")
    try:
        creds = dict(d.credentials(mock.url), completion_type="completion")
        await stubs.llm.Generate(llm_pb.GenerateRequest(
            target=target("localai", "llama-3.2-1b-instruct", creds), messages=[user("Once")]))
        assert mock.requests[-1].path == "/v1/completions"
    finally:
        mock.models["llama-3.2-1b-instruct"] = mock.models["llama-3.2-1b-instruct"].__class__(
            "llama-3.2-1b-instruct", "chat")


# ---- NVIDIA --------------------------------------------------------------------------------------


async def test_nvidia_passage_input_type_and_retrieval_rerank_shape(stubs, upstream):
    d, mock = DIALECTS["nvidia"], await upstream("nvidia")
    await stubs.embedding.Embed(emb_pb.EmbedRequest(target=tgt(d, mock, "text-embedding"), texts=["doc"]))
    assert mock.requests[-1].json["input_type"] == "passage" and mock.requests[-1].json["encoding_format"] == "float"
    response = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=tgt(d, mock, "rerank"), query="gpu memory", documents=["no match here", "gpu memory bandwidth"]))
    sent = mock.requests[-1]
    assert sent.path == "/v1/retrieval/nvidia/reranking"
    assert sent.json == {"model": "nvidia/nv-rerankqa-mistral-4b-v3", "query": {"text": "gpu memory"},
                         "passages": [{"text": "no match here"}, {"text": "gpu memory bandwidth"}]}
    assert [r.index for r in response.documents] == [1, 0]
    assert response.documents[1].score < 0.05 and response.documents[0].score > 0.95  # sigmoid of -4 / +4


# ---- pure transforms -------------------------------------------------------------------------------


def _ctx(provider: str, credentials: dict) -> CallContext:
    adapter = builtin_registry().adapter(provider)
    return CallContext(provider_entity=adapter.entity, model="m", model_type=ModelType.LLM, schema=None,
                       credentials=credentials, http=None, options=adapter.options)  # type: ignore[arg-type]


def test_siliconflow_international_endpoint_choice():
    assert client.base_url(_ctx("siliconflow", {"use_international_endpoint": "true"})) == "https://api.siliconflow.com/v1"
    assert client.base_url(_ctx("siliconflow", {"use_international_endpoint": "false"})) == "https://api.siliconflow.cn/v1"
    assert client.base_url(_ctx("siliconflow", {})) == "https://api.siliconflow.cn/v1"


def test_azure_url_and_query_layout():
    ctx = _ctx("azure_openai", {"openai_api_base": "https://res.openai.azure.com/", "openai_api_version": "2024-06-01"})
    ctx.model = "my dep"
    assert client.url(ctx, "embeddings") == "https://res.openai.azure.com/openai/deployments/my%20dep/embeddings"
    assert client.query(ctx) == {"api-version": "2024-06-01"}


def test_body_options_are_pure_and_do_not_share_yaml_data():
    options = OpenAIOptions.model_validate({
        "protocol": "openai", "extra_body": {"provider": {"data_collection": "allow"}},
        "parameter_paths": {"a": "x.y"}, "switch_parameters": ["thinking"], "drop_fields": ["user"],
        "tool_choice_values": {"required": "any"}})
    body = apply_body_options({"a": 1, "thinking": True, "user": "u", "tool_choice": "required"}, options)
    assert body == {"x": {"y": 1}, "thinking": {"type": "enabled"}, "tool_choice": "any",
                    "provider": {"data_collection": "allow"}}
    body["provider"]["data_collection"] = "deny"
    assert options.extra_body == {"provider": {"data_collection": "allow"}}


async def test_many_concurrent_streams_across_dialects(stubs, upstream):
    names = ["groq", "moonshot", "mistralai", "openrouter"]
    mocks = {n: await upstream(n) for n in names}

    async def one(name):
        chunks = [c async for c in stubs.llm.StreamGenerate(stream_req(DIALECTS[name], mocks[name],
                                                                       messages=[user(f"hi {name}")]))]
        return "".join(c.delta.content for c in chunks), chunks[-1].usage.total_tokens

    results = await asyncio.gather(*(one(n) for n in names * 3))
    for (text, tokens), name in zip(results, names * 3):
        assert text == f"Echo: hi {name}" and tokens > 0


# ---- errors inside HTTP 200, batch limits, endpoint ids, keyless servers ----------------------------


async def test_spark_and_minimax_errors_inside_200_bodies(stubs, upstream):
    cases = [("spark", {"code": 10013, "message": "input content audit failed", "sid": "cha1"},
              grpc.StatusCode.INVALID_ARGUMENT, "InvokeBadRequestError"),
             ("spark", {"code": 11202, "message": "over QPS limit", "sid": "cha2"},
              grpc.StatusCode.RESOURCE_EXHAUSTED, "InvokeRateLimitError"),
             ("minimax", {"id": "", "base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}},
              grpc.StatusCode.RESOURCE_EXHAUSTED, "InvokeRateLimitError"),
             ("minimax", {"id": "", "base_resp": {"status_code": 1004, "status_msg": "login fail"}},
              grpc.StatusCode.INVALID_ARGUMENT, "InvokeAuthorizationError")]
    for name, body, code, reason in cases:
        d, mock = DIALECTS[name], await upstream(name)
        mock.enqueue(raw_response(200, {"content-type": "application/json"}, orjson.dumps(body)), path=d.chat_path)
        f = await failure_of(stubs.llm.Generate(gen_req(d, mock)))
        assert (f.code, f.reason) == (code, reason), body
        assert "upstreamStatus" not in f.metadata  # HTTP said 200; the body carried the error


async def test_minimax_final_full_message_is_not_printed_twice(stubs, upstream):
    d, mock = DIALECTS["minimax"], await upstream("minimax")
    chunks = [c async for c in stubs.llm.StreamGenerate(stream_req(d, mock, messages=[user("hello")]))]
    assert "".join(c.delta.content for c in chunks) == "Echo: hello"
    assert mock.requests[-1].path == "/v1/text/chatcompletion_v2"


async def test_tongyi_embeddings_go_out_in_batches_of_ten(stubs, upstream):
    d, mock = DIALECTS["tongyi"], await upstream("tongyi")
    before = len(mock.requests)
    texts = [f"text number {i}" for i in range(23)]
    response = await stubs.embedding.Embed(emb_pb.EmbedRequest(target=tgt(d, mock, "text-embedding"), texts=texts))
    assert len(response.embeddings) == 23
    assert sorted(len(r.json["input"]) for r in mock.requests[before:]) == [3, 10, 10]


async def test_volcengine_sends_the_endpoint_id_and_chatglm_counts_usage_locally(stubs, upstream):
    d, mock = DIALECTS["volcengine_maas"], await upstream("volcengine_maas")
    await stubs.llm.Generate(gen_req(d, mock))
    assert mock.requests[-1].json["model"] == "ep-20250601123456-abcde"
    assert mock.requests[-1].path == "/api/v3/chat/completions"
    d, mock = DIALECTS["chatglm"], await upstream("chatglm")
    response = await stubs.llm.Generate(gen_req(d, mock, messages=[user("hello there")]))
    sent = mock.requests[-1]
    assert "authorization" not in sent.headers and "stream_options" not in sent.json
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0  # tiktoken, no upstream usage
