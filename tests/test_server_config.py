"""Server configuration (YAML + environment) and the concurrency limit."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import llm_service_pb2_grpc

from server.app import start_server
from server.config import GrpcConfig, load_config
from tests.conftest import make_config
from tests.helpers import target, user
from tests.mocks.openai_mock import OpenAIMock, hang


def test_yaml_env_references_and_overrides(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("grpc:\n  port: 7000\nproviders:\n  openai:\n    credentials:\n"
                    "      openai_api_key: ${TEST_KEY_VAR}\n")
    monkeypatch.setenv("TEST_KEY_VAR", "sk-from-env")
    monkeypatch.setenv("MODEL_RUNTIME_GRPC__PORT", "7100")
    monkeypatch.setenv("MODEL_RUNTIME_EGRESS__ALLOWED_CIDRS", "[127.0.0.1/32]")
    config = load_config(path)
    assert config.grpc.port == 7100
    assert config.providers["openai"].credentials["openai_api_key"] == "sk-from-env"
    assert config.egress.allowed_cidrs == ["127.0.0.1/32"]


def test_default_config_file_loads():
    config = load_config("config/default.yaml")
    assert config.grpc.port == 50051 and config.grpc.max_message_bytes == 32 * 1024 * 1024
    assert config.egress.allow_private_networks is False


async def test_concurrency_limit_sheds_load_with_resource_exhausted():
    config = make_config()
    config.grpc = GrpcConfig(host="127.0.0.1", port=0, max_concurrent_rpcs=1, grace_seconds=0, drain_seconds=0)
    running = await start_server(config)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    llm = llm_service_pb2_grpc.LLMServiceStub(channel)
    async with OpenAIMock(api_keys=["k"]) as mock:
        mock.enqueue(hang(), path="/chat/completions")
        request = llm_pb.StreamGenerateRequest(
            target=target("openai", "gpt-4o-mini", {"openai_api_key": "k", "openai_api_base": mock.url}),
            messages=[user("hi")])
        first = llm.StreamGenerate(request)
        await mock.wait_requests(1)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await llm.Generate(llm_pb.GenerateRequest(target=request.target, messages=[user("second")]))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
        await asyncio.sleep(0.05)
    await channel.close()
    await running.stop(0, 0)
