"""Prompt caching through the gRPC front door (issue 14, item 4): the caller's cache breakpoints
reach Anthropic as ``cache_control`` on system, tools and content; usage separates cache reads
from 5-minute and 1-hour writes (Anthropic) and reports cached tokens (OpenAI Responses, Gemini);
each is priced with the model YAML's own prices, so ``total_price`` is what the provider bills.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb

from engine.adapter import Adapter
from engine.entities import AIModelEntity, ModelType
from providers.protocols.openai.adapter import OpenAIAdapter
from tests.helpers import failure_of, struct, target, user
from tests.mocks.anthropic_mock import AnthropicMock
from tests.mocks.gemini_mock import GeminiMock
from tests.mocks.openai_common import ModelInfo
from tests.mocks.openai_mock import OpenAIMock

M = Decimal("0.000001")  # prices are per million tokens
LONG = "You are a meticulous travel assistant. " * 40
ONE_HOUR = llm_pb.CacheControl(ttl=llm_pb.CACHE_TTL_ONE_HOUR)
FIVE_MINUTES = llm_pb.CacheControl()  # unspecified: the provider's default, 5 minutes
TOOL = llm_pb.Tool(name="get_weather", description="Weather", cache_control=ONE_HOUR,
                   parameters=struct({"type": "object", "properties": {"city": {"type": "string"}}}))


@pytest.fixture(scope="module")
async def anthropic():
    async with AnthropicMock(api_keys=["sk-ant-test"]) as m:
        yield m


def cached_request(mock: AnthropicMock, question: str) -> llm_pb.GenerateRequest:
    system = llm_pb.Message(role=llm_pb.ROLE_SYSTEM, content=[llm_pb.ContentPart(text=LONG, cache_control=ONE_HOUR)])
    asked = llm_pb.Message(role=llm_pb.ROLE_USER, content=[
        llm_pb.ContentPart(text="Here is my itinerary: Paris, Rome, Oslo.", cache_control=FIVE_MINUTES),
        llm_pb.ContentPart(text=question)])
    return llm_pb.GenerateRequest(
        target=target("anthropic", "claude-sonnet-4-6", {"anthropic_api_key": "sk-ant-test",
                                                        "anthropic_api_url": mock.url}),
        messages=[system, asked], tools=[TOOL], tool_choice=llm_pb.ToolChoice(mode=llm_pb.TOOL_CHOICE_MODE_NONE))


def prompt_price(usage, input_price: str, read: str, write: str, write_1h: str) -> Decimal:
    plain = usage.prompt_tokens - usage.cached_prompt_tokens - usage.cache_write_tokens - usage.cache_write_1h_tokens
    total = (plain * Decimal(input_price) + usage.cached_prompt_tokens * Decimal(read)
             + usage.cache_write_tokens * Decimal(write) + usage.cache_write_1h_tokens * Decimal(write_1h)) * M
    return total.quantize(Decimal("0.0000001"))


async def test_anthropic_cache_control_reaches_the_wire_and_reads_and_writes_are_priced(stubs, anthropic):
    first = await stubs.llm.Generate(cached_request(anthropic, "Where first?"))
    body = anthropic.requests[-1].json
    assert body["system"] == [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert body["tools"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in body["messages"][0]["content"][1]
    u = first.usage
    assert u.cached_prompt_tokens == 0 and u.cache_write_1h_tokens > 0 and u.cache_write_tokens > 0
    assert Decimal(u.prompt_price) == prompt_price(u, "3.00", "0.3", "3.75", "6")
    assert Decimal(u.total_price) == Decimal(u.prompt_price) + Decimal(u.completion_price)
    # the same prefix again: everything up to the last breakpoint is read from the cache
    second = await stubs.llm.Generate(cached_request(anthropic, "Where next?"))
    v = second.usage
    assert v.cached_prompt_tokens == u.cache_write_tokens + u.cache_write_1h_tokens
    assert v.cache_write_tokens == v.cache_write_1h_tokens == 0
    assert Decimal(v.prompt_price) == prompt_price(v, "3.00", "0.3", "3.75", "6")
    assert Decimal(v.prompt_price) < Decimal(u.prompt_price)
    assert anthropic.sdk_problems == []


async def test_anthropic_cache_usage_survives_streaming(stubs, anthropic):
    await stubs.llm.Generate(cached_request(anthropic, "Warm it?"))  # the prefix is in the cache now
    request = cached_request(anthropic, "Stream it?")
    chunks = [c async for c in stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(
        target=request.target, messages=request.messages, tools=request.tools, tool_choice=request.tool_choice))]
    usage = chunks[-1].usage
    assert usage.cached_prompt_tokens > 0 and usage.cache_write_tokens == usage.cache_write_1h_tokens == 0
    assert Decimal(usage.prompt_price) == prompt_price(usage, "3.00", "0.3", "3.75", "6")


async def test_anthropic_refuses_a_one_hour_breakpoint_after_a_five_minute_one(stubs, anthropic):
    request = cached_request(anthropic, "Order?")
    request.tools[0].cache_control.ttl = llm_pb.CACHE_TTL_FIVE_MINUTES  # tools come first: 5m, then system 1h
    failure = await failure_of(stubs.llm.Generate(request))
    assert failure.code.name == "INVALID_ARGUMENT" and "must not come after" in failure.message


@pytest.fixture(scope="module")
async def openai():
    async with OpenAIMock(api_keys=["sk-test"], extra_models=[ModelInfo("gpt-5.4", "chat", reasoning=True)]) as m:
        yield m


async def test_openai_cached_and_reasoning_tokens_are_priced(stubs, openai):
    tgt = target("openai", "gpt-5.4", {"openai_api_key": "sk-test", "openai_api_base": openai.url})
    system = llm_pb.Message(role=llm_pb.ROLE_DEVELOPER, content=[llm_pb.ContentPart(text=LONG)])
    await stubs.llm.Generate(llm_pb.GenerateRequest(target=tgt, messages=[system, user("first")]))
    chunks = [c async for c in stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(
        target=tgt, messages=[system, user("second")]))]
    u = chunks[-1].usage
    assert u.cached_prompt_tokens > 0 and u.reasoning_tokens == 12
    assert Decimal(u.prompt_price) == prompt_price(u, "2.50", "0.25", "2.50", "2.50")
    assert Decimal(u.completion_price) == (u.completion_tokens * Decimal("15.00") * M).quantize(Decimal("0.0000001"))
    assert openai.responses.problems == []


@pytest.fixture(scope="module")
async def gemini():
    async with GeminiMock(api_keys=["AIza-test"]) as m:
        yield m


async def test_gemini_cached_content_tokens_are_priced(stubs, gemini):
    gemini.cached_tokens = 5
    try:
        response = await stubs.llm.Generate(llm_pb.GenerateRequest(
            target=target("google", "gemini-3.5-flash", {"google_api_key": "AIza-test",
                                                         "google_base_url": gemini.url + "/v1beta"}),
            messages=[user("What is cached here?")]))
    finally:
        gemini.cached_tokens = 0
    u = response.usage
    assert u.cached_prompt_tokens == 5
    assert Decimal(u.prompt_price) == prompt_price(u, "1.50", "0.15", "1.50", "1.50")


async def test_catalog_shows_the_cache_prices(stubs):
    model = await stubs.providers.GetModel(prov_pb.GetModelRequest(
        provider="anthropic", model="claude-sonnet-4-6", model_type=1))
    pricing = model.model.pricing
    assert (pricing.cached, pricing.cache_write, pricing.cache_write_1h) == ("0.3", "3.75", "6")


def test_a_model_declaring_an_unknown_openai_endpoint_fails_at_start_up():
    from engine.entities import I18nObject, ProviderEntity

    entity = ProviderEntity(provider="x", label=I18nObject.plain("x"), supported_model_types=[ModelType.LLM],
                            configurate_methods=[], runtime={"protocol": "openai"})
    adapter: Adapter = OpenAIAdapter(entity)
    schema = AIModelEntity(model="m", model_type=ModelType.LLM, model_properties={"endpoint": "completions-v2"})
    adapter.predefined = {(ModelType.LLM, "m"): schema}
    (problem,) = adapter.model_problems()
    assert "model m: model_properties.endpoint must be chat_completions or responses" in problem
    schema.model_properties["endpoint"] = "responses"
    assert adapter.model_problems() == []
