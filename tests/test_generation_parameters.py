"""Per-generation parameters declared in model YAML, through the real gRPC server and the HTTP
endpoint against the provider mocks: what each provider's wire body carries (Anthropic adaptive
thinking with effort, Gemini 3 thinkingLevel vs 2.5 thinkingBudget, OpenAI reasoning_effort and
verbosity, DeepSeek's thinking switch, token-limit aliases), and the combinations a model's
``parameter_checks`` refuse with INVALID_ARGUMENT naming the field before any upstream request."""

from __future__ import annotations

import grpc
import httpx
import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb

from server.app import start_server
from server.config import Config, EgressConfig, GrpcConfig, HttpConfig, ProviderCredentials
from server.http.app import start_http
from tests.helpers import failure_of, stream_failure, struct, target, user
from tests.mocks import compat_mock
from tests.mocks.anthropic_mock import AnthropicMock
from tests.mocks.compat_dialects import DIALECTS
from tests.mocks.compat_mock import tgt
from tests.mocks.gemini_mock import GeminiMock
from tests.mocks.openai_common import ModelInfo
from tests.mocks.openai_mock import OpenAIMock

pool, upstream = compat_mock.pool, compat_mock.upstream  # the shared compatible-provider fixtures
KEY = "sk-test-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-api03-test-0123456789abcdef"
GOOGLE_KEY = "AIza-test-0123456789"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
REASONING = [ModelInfo(m, "chat", reasoning=True) for m in ("gpt-5", "gpt-5.1")]


@pytest.fixture(scope="module")
async def anthropic():
    async with AnthropicMock(api_keys=[ANTHROPIC_KEY]) as m:
        yield m


@pytest.fixture(scope="module")
async def gemini():
    async with GeminiMock(api_keys=[GOOGLE_KEY]) as m:
        yield m


@pytest.fixture(scope="module")
async def openai():
    async with OpenAIMock(api_keys=[KEY], extra_models=REASONING) as m:
        yield m


def claude(mock, model, params=None, messages=None, **kw):
    creds = {"anthropic_api_key": ANTHROPIC_KEY, "anthropic_api_url": mock.url}
    return llm_pb.GenerateRequest(target=target("anthropic", model, creds), messages=messages or [user("hi")],
                                  model_parameters=struct(params or {}), **kw)


def google(mock, model, params=None):
    creds = {"google_api_key": GOOGLE_KEY, "google_base_url": mock.url + "/v1beta"}
    return llm_pb.GenerateRequest(target=target("google", model, creds), messages=[user("hi")],
                                  model_parameters=struct(params or {}))


def gpt(mock, model, params=None):
    creds = {"openai_api_key": KEY, "openai_api_base": mock.url}
    return llm_pb.GenerateRequest(target=target("openai", model, creds), messages=[user("hi")],
                                  model_parameters=struct(params or {}))


async def refused(stubs, mock, request) -> dict[str, str]:
    """The field violations of a call refused before reaching ``mock``."""
    before = len(mock.requests)
    f = await failure_of(stubs.llm.Generate(request))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert len(mock.requests) == before, "a refused call must not reach the provider"
    return f.violations


def assistant(text: str) -> llm_pb.Message:
    return llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, content=[llm_pb.ContentPart(text=text)])


def weather_tool() -> llm_pb.Tool:
    return llm_pb.Tool(name="get_weather", description="weather", parameters=struct(WEATHER))


# ---- Anthropic -----------------------------------------------------------------------------------


async def test_adaptive_model_takes_effort_and_refuses_a_thinking_budget(stubs, anthropic):
    await stubs.llm.Generate(claude(anthropic, "claude-opus-5", {"effort": "low", "thinking_display": "omitted"}))
    body = anthropic.requests[-1].json
    assert body["thinking"] == {"type": "adaptive", "display": "omitted"}
    assert body["output_config"] == {"effort": "low"} and "budget_tokens" not in str(body)
    violations = await refused(stubs, anthropic, claude(anthropic, "claude-opus-5", {"thinking_budget": 2048}))
    assert "effort" in violations["model_parameters.thinking_budget"]


async def test_adaptive_thinking_off_only_at_effort_high_or_below(stubs, anthropic):
    await stubs.llm.Generate(claude(anthropic, "claude-opus-5", {"thinking": False, "effort": "high"}))
    assert anthropic.requests[-1].json["thinking"] == {"type": "disabled"}
    violations = await refused(stubs, anthropic, claude(anthropic, "claude-opus-5",
                                                        {"thinking": False, "effort": "max"}))
    assert set(violations) == {"model_parameters.thinking"}
    # a model whose thinking has no off switch says so instead of dropping the switch
    violations = await refused(stubs, anthropic, claude(anthropic, "claude-opus-5-5", {"thinking": False}))
    assert "always thinks" in violations["model_parameters.thinking"]


async def test_no_assistant_prefill_on_claude_4_6_and_later(stubs, anthropic):
    history = [user("Name a colour."), assistant("The colour is")]
    violations = await refused(stubs, anthropic, claude(anthropic, "claude-sonnet-4-6", messages=history))
    assert "user message" in violations["messages[1]"]
    await stubs.llm.Generate(claude(anthropic, "claude-sonnet-4-6", messages=[user("hi"), assistant("")]))
    assert anthropic.requests[-1].json["messages"][-1]["role"] == "user"  # an empty turn is no prefill
    # Haiku 4.5 takes a prefill, but not while it thinks
    await stubs.llm.Generate(claude(anthropic, "claude-haiku-4-5-20251001", messages=history))
    assert anthropic.requests[-1].json["messages"][-1]["role"] == "assistant"
    violations = await refused(stubs, anthropic, claude(anthropic, "claude-haiku-4-5-20251001",
                                                        {"thinking": True}, messages=history))
    assert set(violations) == {"messages[1]"}


async def test_forced_tool_choice_refused_while_thinking(stubs, anthropic):
    forced = {"tools": [weather_tool()], "tool_choice": llm_pb.ToolChoice(mode=llm_pb.TOOL_CHOICE_MODE_REQUIRED)}
    violations = await refused(stubs, anthropic, claude(anthropic, "claude-sonnet-4-6", {"thinking": True}, **forced))
    assert "tool_choice" in violations
    await stubs.llm.Generate(claude(anthropic, "claude-sonnet-4-6", {"thinking": False}, **forced))
    assert anthropic.requests[-1].json["tool_choice"] == {"type": "any"}
    await stubs.llm.Generate(claude(anthropic, "claude-sonnet-4-6", {"thinking": True, "thinking_budget": 2048,
                                                                       "max_tokens": 4096}))
    assert anthropic.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_a_refused_stream_ends_before_any_chunk(stubs, anthropic):
    creds = {"anthropic_api_key": ANTHROPIC_KEY, "anthropic_api_url": anthropic.url}
    before = len(anthropic.requests)
    received, f = await stream_failure(stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(
        target=target("anthropic", "claude-opus-5", creds), messages=[user("hi")],
        model_parameters=struct({"thinking_budget": 4096}))))
    assert received == [] and f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(f.violations) == {"model_parameters.thinking_budget"} and len(anthropic.requests) == before


async def test_all_violations_are_reported_together(stubs, anthropic):
    violations = await refused(stubs, anthropic, claude(
        anthropic, "claude-opus-5", {"thinking_budget": 2048, "budget_tokens": 4096},
        messages=[user("hi"), assistant("Sure:")]))
    assert set(violations) == {"model_parameters.thinking_budget", "model_parameters.budget_tokens", "messages[1]"}


# ---- Gemini --------------------------------------------------------------------------------------


async def test_gemini_3_takes_thinking_level_not_a_budget(stubs, gemini):
    await stubs.llm.Generate(google(gemini, "gemini-3.1-pro-preview", {"thinking_level": "low"}))
    assert gemini.requests[-1].json["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "LOW"}
    violations = await refused(stubs, gemini, google(gemini, "gemini-3.1-pro-preview", {"thinking_budget": 1024}))
    assert "thinking_level" in violations["model_parameters.thinking_budget"]


async def test_gemini_2_5_takes_a_budget_within_its_range(stubs, gemini):
    await stubs.llm.Generate(google(gemini, "gemini-2.5-pro", {"thinking_budget": 1024}))
    assert gemini.requests[-1].json["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024}
    await stubs.llm.Generate(google(gemini, "gemini-2.5-flash", {"thinking_budget": 0}))  # Flash can turn it off
    assert gemini.requests[-1].json["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    violations = await refused(stubs, gemini, google(gemini, "gemini-2.5-pro", {"thinking_budget": 0}))
    assert "cannot turn thinking off" in violations["model_parameters.thinking_budget"]
    violations = await refused(stubs, gemini, google(gemini, "gemini-2.5-flash-lite", {"thinking_budget": 100}))
    assert "512" in violations["model_parameters.thinking_budget"]
    violations = await refused(stubs, gemini, google(gemini, "gemini-2.5-flash", {"thinking_level": "high"}))
    assert set(violations) == {"model_parameters.thinking_level"}


async def test_gemini_token_limit_aliases_reach_max_output_tokens(stubs, gemini):
    for alias in ("max_completion_tokens", "max_output_tokens", "max_tokens"):
        await stubs.llm.Generate(google(gemini, "gemini-2.5-flash", {alias: 321}))
        assert gemini.requests[-1].json["generationConfig"]["maxOutputTokens"] == 321


# ---- OpenAI --------------------------------------------------------------------------------------


async def test_reasoning_effort_and_verbosity_reach_the_body(stubs, openai):
    await stubs.llm.Generate(gpt(openai, "gpt-5", {"reasoning_effort": "minimal", "verbosity": "low"}))
    body = openai.requests[-1].json  # gpt-5.x is served by the Responses API (model_properties.endpoint)
    assert openai.requests[-1].path.endswith("/responses")
    assert body["reasoning"] == {"effort": "minimal"} and body["text"]["verbosity"] == "low"
    violations = await refused(stubs, openai, gpt(openai, "gpt-5", {"reasoning_effort": "none"}))
    assert "should be one of" in violations["model_parameters.reasoning_effort"]


async def test_sampling_on_reasoning_models(stubs, openai):
    violations = await refused(stubs, openai, gpt(openai, "gpt-5", {"temperature": 0.2, "top_p": 0.5}))
    assert set(violations) == {"model_parameters.temperature", "model_parameters.top_p"}
    # gpt-5.1 samples at reasoning_effort none (its default) and refuses sampling while it reasons
    await stubs.llm.Generate(gpt(openai, "gpt-5.1", {"temperature": 0.2}))
    assert openai.requests[-1].json["temperature"] == 0.2
    violations = await refused(stubs, openai, gpt(openai, "gpt-5.1", {"temperature": 0.2, "reasoning_effort": "high"}))
    assert "reasoning_effort none" in violations["model_parameters.temperature"]


async def test_reasoning_parameters_refused_on_non_reasoning_models(stubs, openai):
    violations = await refused(stubs, openai, gpt(openai, "gpt-4o-mini", {"reasoning_effort": "low", "verbosity": "low"}))
    assert set(violations) == {"model_parameters.reasoning_effort", "model_parameters.verbosity"}


async def test_max_completion_tokens_reaches_a_max_tokens_model(stubs, openai):
    await stubs.llm.Generate(gpt(openai, "gpt-4o-mini", {"max_completion_tokens": 77}))
    body = openai.requests[-1].json
    assert body["max_tokens"] == 77 and "max_completion_tokens" not in body
    await stubs.llm.Generate(gpt(openai, "gpt-5", {"max_output_tokens": 88}))
    body = openai.requests[-1].json  # the Responses API's own name for the limit
    assert body["max_output_tokens"] == 88 and "max_tokens" not in body and "max_completion_tokens" not in body
    # the model's own name wins over an alias; a bad value names the key the caller sent
    await stubs.llm.Generate(gpt(openai, "gpt-4o-mini", {"max_tokens": 10, "max_completion_tokens": 20}))
    assert openai.requests[-1].json["max_tokens"] == 10
    violations = await refused(stubs, openai, gpt(openai, "gpt-4o-mini", {"max_completion_tokens": 10**6}))
    assert "less than or equal to 16384" in violations["model_parameters.max_completion_tokens"]


async def test_http_endpoint_names_the_refused_parameter(openai):
    config = Config(grpc=GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.5),
                    http=HttpConfig(enabled=True, host="127.0.0.1", port=0),
                    egress=EgressConfig(allowed_cidrs=["127.0.0.1/32"], retries=1),
                    providers={"openai": ProviderCredentials(credentials={"openai_api_key": KEY,
                                                                          "openai_api_base": openai.url})})
    running = await start_server(config)
    http = await start_http(config, running.runtime)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}/v1") as client:
            before = len(openai.requests)
            r = await client.post("/chat/completions", json={
                "model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.3})
            assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
            assert len(openai.requests) == before
            r = await client.post("/chat/completions", json={
                "model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}],
                "max_completion_tokens": 55, "reasoning_effort": "low", "verbosity": "high"})
            assert r.status_code == 200, r.text
            body = openai.requests[-1].json  # gpt-5 on the Responses API
            assert (body["max_output_tokens"], body["reasoning"]["effort"], body["text"]["verbosity"]) == (55, "low", "high")
    finally:
        await http.stop()
        await running.stop(0)


# ---- DeepSeek ------------------------------------------------------------------------------------


async def test_deepseek_thinking_switch_and_effort(stubs, upstream):
    d, mock = DIALECTS["deepseek"], await upstream("deepseek")

    def ask(model, params):
        return llm_pb.GenerateRequest(target=tgt(d, mock, model=model), messages=[user("hi")],
                                      model_parameters=struct(params))

    await stubs.llm.Generate(ask("deepseek-v4-flash", {"thinking": False, "temperature": 0.3}))
    body = mock.requests[-1].json
    assert body["thinking"] == {"type": "disabled"} and body["temperature"] == 0.3
    await stubs.llm.Generate(ask("deepseek-v4-pro", {"reasoning_effort": "max"}))  # thinking is on by default
    body = mock.requests[-1].json
    assert body["reasoning_effort"] == "max" and "thinking" not in body
    violations = await refused(stubs, mock, ask("deepseek-v4-flash", {"thinking": False, "reasoning_effort": "high"}))
    assert "thinking on" in violations["model_parameters.reasoning_effort"]
    violations = await refused(stubs, mock, ask("deepseek-reasoner", {"thinking": False}))
    assert "always thinks" in violations["model_parameters.thinking"]


# ---- the check semantics, on a schema built here ------------------------------------------------


def _schema(checks: list[dict]):
    from engine.entities import AIModelEntity

    return AIModelEntity.model_validate({
        "model": "m", "model_type": "llm",
        "parameter_rules": [{"name": "mode", "type": "string", "default": "fast"},
                            {"name": "budget", "type": "int"}, {"name": "flag", "type": "boolean"}],
        "parameter_checks": checks})


def _violations(schema, sent: dict) -> set[str]:
    from engine.adapter import LLMRequest
    from engine.errors import InvokeBadRequestError
    from engine.messages import ContentPart, PartKind, PromptMessage, Role
    from engine.parameter_checks import check_request
    from engine.rules import validator_for

    request = LLMRequest([PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="hi")])], validator_for(schema)(sent))
    try:
        check_request(schema, sent, request)
    except InvokeBadRequestError as exc:
        return {v.field for v in exc.field_violations}
    return set()


def test_values_compare_by_type_and_conditions_see_rule_defaults():
    schema = _schema([{"reject": "budget", "values": [0], "message": "m"},
                      {"reject": "flag", "values": [False], "when": {"mode": ["fast"]}, "message": "m"},
                      {"reject": "budget", "between": [1, 9], "unless": {"mode": ["slow"]}, "message": "m"}])
    assert _violations(schema, {"budget": 0.0}) == {"model_parameters.budget"}  # Struct numbers are doubles
    assert _violations(schema, {"flag": False}) == {"model_parameters.flag"}  # mode's default is fast
    assert _violations(schema, {"flag": False, "mode": "slow"}) == set()
    assert _violations(schema, {"budget": 5}) == {"model_parameters.budget"}
    assert _violations(schema, {"budget": 5, "mode": "slow"}) == set()
    assert _violations(schema, {"budget": 10, "flag": True}) == set()


def test_a_condition_on_an_unknown_parameter_fails_loading():
    with pytest.raises(ValueError, match="no parameter rule named"):
        _schema([{"reject": "budget", "when": {"nope": [1]}, "message": "m"}])
    with pytest.raises(ValueError):
        _schema([{"reject": "budget", "mesage": "typo"}])
