"""Provider gaps found in acceptance, tried as a user would, through the real gRPC server (and the
HTTP endpoint) against the provider mocks: a customizable Moonshot model's own endpoint, OpenAI
fine-tunes and snapshots, Mistral's tool-call ids in a history begun elsewhere, and per-provider
base URLs in the server config (checked at start-up and by the egress policy)."""

from __future__ import annotations

from decimal import Decimal

import grpc
import httpx
import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb
from pydantic import ValidationError

from providers import builtin_registry
from providers.kit.toolcalls import IdRewriter
from server.app import start_server
from server.config import ConfigError, ProviderCredentials, load_config
from server.http.app import start_http
from tests.conftest import Stubs, make_config
from tests.helpers import failure_of, struct, target, user
from tests.mocks import compat_mock
from tests.mocks.compat_dialects import DIALECTS
from tests.mocks.openai_common import ModelInfo
from tests.mocks.openai_mock import OpenAIMock

pool = compat_mock.pool  # the shared compatible-provider mocks (default options: no rewritten URLs)
KEY = "sk-test-0123456789abcdef"
FINE_TUNE = "ft:gpt-4o-mini-2024-07-18:acme::AbC123xy"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
async def openai():
    extra = [ModelInfo(m, "chat") for m in (FINE_TUNE, "ft:davinci-002:acme::Zz9", "gpt-4o-mini-2024-07-18",
                                            "my-private-model")]
    async with OpenAIMock(api_keys=[KEY], extra_models=extra) as m:
        yield m


def gpt(mock, model, **kw):
    creds = {"openai_api_key": KEY, "openai_api_base": mock.url}
    return llm_pb.GenerateRequest(target=target("openai", model, creds), messages=[user("hi")], **kw)


# ---- Moonshot: a customizable model keeps the caller's endpoint ------------------------------------


async def test_customizable_moonshot_model_calls_the_callers_endpoint(stubs, pool):
    d, mock = DIALECTS["moonshot"], await pool.get("moonshot")
    mock.models["kimi-private-ft"] = ModelInfo("kimi-private-ft", "chat")
    creds = {"api_key": d.key, "endpoint_url": mock.url + d.prefix, "context_size": "8192", "max_tokens": "2048"}
    response = await stubs.llm.Generate(llm_pb.GenerateRequest(
        target=target("moonshot", "kimi-private-ft", creds), messages=[user("hi")]))
    assert response.message.content
    assert mock.requests[-1].path == d.prefix + "/chat/completions"
    assert mock.requests[-1].json["model"] == "kimi-private-ft"


def test_every_customizable_model_form_holds_the_base_url_credential():
    """The gap's root cause, for every provider: a customizable model's form must carry the
    credential the provider reads its base URL from, or such a model silently calls the default host."""
    checked = 0
    for name, definition in builtin_registry().definitions.items():
        entity = definition.entity
        wanted = entity.runtime.get("base_url_credential")
        if wanted and entity.model_credential_schema is not None and "customizable-model" in entity.configurate_methods:
            assert wanted in {f.variable for f in entity.model_credential_schema.credential_form_schemas}, name
            checked += 1
    assert checked >= 5


# ---- OpenAI: fine-tunes and snapshots --------------------------------------------------------------


async def test_fine_tune_takes_its_base_models_rules_and_pricing(stubs, openai):
    response = await stubs.llm.Generate(gpt(openai, FINE_TUNE, model_parameters=struct({"max_completion_tokens": 50})))
    body = openai.requests[-1].json
    assert body["model"] == FINE_TUNE and body["max_tokens"] == 50  # gpt-4o-mini's own parameter
    usage = response.usage
    expected = (Decimal(usage.prompt_tokens) * Decimal("0.15") + Decimal(usage.completion_tokens) * Decimal("0.60")) \
        * Decimal("0.000001")
    assert usage.prompt_tokens > 0 and Decimal(usage.total_price) == expected
    f = await failure_of(stubs.llm.Generate(gpt(openai, FINE_TUNE, model_parameters=struct({"max_tokens": 10**6}))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "model_parameters.max_tokens" in f.violations


async def test_snapshot_name_takes_the_base_schema(stubs, openai):
    await stubs.llm.Generate(gpt(openai, "gpt-4o-mini-2024-07-18", model_parameters=struct({"temperature": 0.4})))
    assert openai.requests[-1].json["temperature"] == 0.4


async def test_fine_tune_of_a_model_without_yaml_gets_customizable_defaults(stubs, openai):
    model = "ft:davinci-002:acme::Zz9"
    response = await stubs.llm.Generate(gpt(openai, model, model_parameters=struct({"max_tokens": 64})))
    assert response.message.content
    body = openai.requests[-1].json
    assert body["model"] == model and body["max_tokens"] == 64
    assert Decimal(response.usage.total_price) == 0  # no price is known for it
    # a plain unknown name is still refused here, naming the model (a typo is not a fine-tune)
    before = len(openai.requests)
    f = await failure_of(stubs.llm.Generate(gpt(openai, "my-private-model")))
    assert f.code == grpc.StatusCode.NOT_FOUND and "target.model" in f.violations
    assert len(openai.requests) == before


# ---- Mistral: tool-call ids ------------------------------------------------------------------------


def _history_from_openai() -> list[llm_pb.Message]:
    calls = [llm_pb.ToolCall(id="call_8fJ2kQ1xYzA0", name="get_weather", arguments='{"city": "Paris"}'),
             llm_pb.ToolCall(id="toolu_01A09q90qw90lq917835lq9", name="get_weather", arguments='{"city": "Oslo"}'),
             llm_pb.ToolCall(id="Ab3dE6gH9", name="get_weather", arguments='{"city": "Rome"}')]
    return [
        user("Weather in Paris, Oslo and Rome?"),
        llm_pb.Message(role=llm_pb.ROLE_ASSISTANT, tool_calls=calls),
        *[llm_pb.Message(role=llm_pb.ROLE_TOOL, tool_call_id=c.id, content=[llm_pb.ContentPart(text="sunny")])
          for c in calls],
        user("And tomorrow?"),
    ]


async def test_mistral_gets_nine_character_ids_for_a_foreign_history(stubs, grpc_server, pool, monkeypatch):
    d, mock = DIALECTS["mistralai"], await pool.get("mistralai")
    adapter = grpc_server.runtime.registry.adapter("mistralai")
    monkeypatch.setattr(adapter, "options", adapter.options.model_copy(
        update=compat_mock.rewritten_options(adapter.options, mock.url)))
    request = llm_pb.GenerateRequest(target=target("mistralai", d.chat_model, d.credentials(mock.url)),
                                     messages=_history_from_openai(),
                                     tools=[llm_pb.Tool(name="get_weather", description="w", parameters=struct(WEATHER))])
    await stubs.llm.Generate(request)  # the mock answers 400 for any id not of Mistral's shape
    messages = mock.requests[-1].json["messages"]
    call_ids = [c["id"] for c in messages[1]["tool_calls"]]
    result_ids = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert call_ids == result_ids and len(set(call_ids)) == 3
    assert all(len(i) == 9 and i.isalnum() and i.isascii() for i in call_ids)
    assert call_ids[2] == "Ab3dE6gH9"  # already Mistral's shape: kept
    await stubs.llm.Generate(request)  # the same history maps to the same ids on the next turn
    assert [c["id"] for c in mock.requests[-1].json["messages"][1]["tool_calls"]] == call_ids
    # without the rewrite, Mistral refuses the foreign ids
    monkeypatch.setattr(adapter, "options", adapter.options.model_copy(update={"tool_call_ids": "any"}))
    f = await failure_of(stubs.llm.Generate(request))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "length of 9" in f.message


def test_id_rewriter_avoids_ids_the_request_already_uses():
    taken = IdRewriter(["x"])("x")
    rewrite = IdRewriter([taken, "x"])
    assert rewrite(taken) == taken and rewrite("x") != taken and len(rewrite("x")) == 9


# ---- per-provider base URLs in the server config ---------------------------------------------------


async def _serving(config):
    running = await start_server(config)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return running, channel, Stubs(channel)


async def test_config_base_url_redirects_a_provider_without_a_url_credential(pool):
    d, mock = DIALECTS["groq"], await pool.get("groq")
    sf, sf_mock = DIALECTS["siliconflow"], await pool.get("siliconflow")
    config = make_config(providers={
        "groq": ProviderCredentials(base_url=mock.url + d.prefix + "/", credentials={"api_key": d.key}),
        "siliconflow": ProviderCredentials(base_url=sf_mock.url + sf.prefix)})
    config.http.enabled = True
    running, channel, stubs = await _serving(config)
    http = await start_http(config, running.runtime)
    try:
        response = await stubs.llm.Generate(llm_pb.GenerateRequest(
            target=target("groq", d.chat_model, d.credentials(mock.url)), messages=[user("hi")]))
        assert response.message.content
        assert mock.requests[-1].path == "/openai/v1/chat/completions"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}/v1") as client:  # the HTTP front door too
            r = await client.post("/chat/completions", json={
                "model": f"groq/{d.chat_model}", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text
        assert mock.requests[-1].path == "/openai/v1/chat/completions"
        # a provider whose region switch picks its default host: the configured URL still wins
        creds = {**sf.credentials(sf_mock.url), "use_international_endpoint": "true"}
        await stubs.llm.Generate(llm_pb.GenerateRequest(target=target("siliconflow", sf.chat_model, creds),
                                                        messages=[user("hi")]))
        assert sf_mock.requests[-1].path == sf.prefix + "/chat/completions"
    finally:
        await http.stop()
        await channel.close()
        await running.stop(0)


async def test_config_base_url_host_names_meet_the_egress_policy_at_connect(pool):
    d, mock = DIALECTS["groq"], await pool.get("groq")
    config = make_config(providers={"groq": ProviderCredentials(base_url=mock.url.replace("127.0.0.1", "localhost")
                                                                + d.prefix)})
    config.egress.allowed_cidrs = []  # loopback refused: the name resolves to it
    running, channel, stubs = await _serving(config)
    before = len(mock.requests)
    try:
        f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(
            target=target("groq", d.chat_model, d.credentials(mock.url)), messages=[user("hi")])))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "does not allow" in f.message
        assert len(mock.requests) == before
    finally:
        await channel.close()
        await running.stop(0)


@pytest.mark.parametrize("url, words", [
    ("ftp://proxy.example/v1", "http(s) URL"),
    ("https://user:secret@proxy.example/v1", "user:password"),
    ("https://proxy.example:99999/v1", "not a valid URL"),
    ("http://10.0.0.7/v1", "egress policy"),
])
def test_bad_config_base_urls_stop_start_up(tmp_path, url, words):
    path = tmp_path / "config.yaml"
    path.write_text(f"providers:\n  groq:\n    base_url: {url}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert words in str(err.value) and "base_url" in str(err.value) and "secret" not in str(err.value)


def test_private_base_url_allowed_by_the_egress_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("egress:\n  allowed_cidrs: [10.0.0.0/8]\nproviders:\n  groq:\n    base_url: http://10.0.0.7/v1/\n")
    assert load_config(path).providers["groq"].base_url == "http://10.0.0.7/v1"
    with pytest.raises(ValidationError):
        ProviderCredentials(base_url="gopher://x")


async def test_base_url_for_an_unknown_provider_stops_start_up():
    with pytest.raises(ConfigError) as err:
        await start_server(make_config(providers={"groqq": ProviderCredentials(base_url="https://proxy.example/v1")}))
    assert "providers.groqq.base_url" in str(err.value)
