"""The typed Python client (clients/python) against the real server and the OpenAI mock."""

from __future__ import annotations

import json

import modelruntime
import pytest
from modelruntime import errors

from tests.mocks.openai_mock import OpenAIMock, rate_limit

KEY = "sk-client"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


@pytest.fixture
async def client(grpc_server):
    async with modelruntime.AsyncModelRuntimeClient(f"127.0.0.1:{grpc_server.port}") as c:
        yield c


def creds(mock):
    return {"openai_api_key": KEY, "openai_api_base": mock.url}


async def test_async_client_streams_and_accumulates_tool_calls(client, mock):
    stream = client.llm.stream(provider="openai", model="gpt-4o", credentials=creds(mock),
                               messages=[modelruntime.user("Oslo")],
                               tools=[modelruntime.tool("get_weather", "weather", WEATHER)])
    async for _ in stream:
        pass
    final = await stream.final_response()
    assert final.message.tool_calls[0].name == "get_weather"
    assert "city" in json.loads(final.message.tool_calls[0].arguments)
    assert final.usage.total_tokens > 0


async def test_async_client_raises_typed_errors(client, mock):
    mock.enqueue(rate_limit(retry_after=2), path="/chat/completions")
    with pytest.raises(errors.RateLimitError) as err:
        await client.llm.generate(provider="openai", model="gpt-4o", credentials=creds(mock),
                                  messages=[modelruntime.user("x")])
    assert err.value.retry_after == 2.0 and err.value.provider == "openai"
    with pytest.raises(errors.AuthenticationError):
        await client.llm.generate(provider="openai", model="gpt-4o",
                                  credentials={**creds(mock), "openai_api_key": "bad"},
                                  messages=[modelruntime.user("x")])
    with pytest.raises(errors.BadRequestError) as err:
        await client.llm.generate(provider="openai", model="gpt-4o", credentials=creds(mock),
                                  messages=[modelruntime.user("x")], model_parameters={"temperature": 9})
    assert any(v.field == "model_parameters.temperature" for v in err.value.field_violations)
    with pytest.raises(errors.NotFoundError):
        await client.llm.generate(provider="nope", model="x", credentials={}, messages=[modelruntime.user("x")])


async def test_sync_client_in_a_thread(grpc_server, mock):
    import asyncio

    def call() -> str:
        with modelruntime.ModelRuntimeClient(f"127.0.0.1:{grpc_server.port}") as c:
            return c.llm.generate(provider="openai", model="gpt-4o-mini", credentials=creds(mock),
                                  messages=[modelruntime.user("sync hello")]).message.content

    assert await asyncio.to_thread(call) == mock.expected_reply("sync hello")
