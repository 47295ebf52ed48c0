"""Caller-made URL and credential mistakes are INVALID_ARGUMENT naming the field; the runtime
never calls itself; IPv6 forms that carry a refused IPv4 address are refused.

Why: a 300-character host, ``user:pass@``, or a CR/LF in a key came back INTERNAL (with a
traceback), numeric IPv4 spellings came back as retryable UNAVAILABLE, and with loopback
allowed a caller could aim ``openai_api_base`` at the runtime's own HTTP endpoint and spend
its server-side key.
"""

from __future__ import annotations

import logging

import grpc
import pytest
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import llm_service_pb2_grpc

from engine._http.guard import EgressPolicy
from server.app import start_server
from server.config import Config, EgressConfig, GrpcConfig, HttpConfig
from tests.helpers import failure_of, target, user
from tests.server_process import free_port

BASE = "credentials.openai_api_base"


def _generate(llm, credentials: dict):
    creds = {"openai_api_key": "sk-test", **credentials}
    return llm.Generate(llm_pb.GenerateRequest(target=target("openai", "gpt-4o", creds), messages=[user("hi")]),
                        timeout=10)


@pytest.mark.parametrize(("url", "field"), [
    ("http://" + "a" * 300 + ".example/v1", BASE),
    ("http://user:pass@127.0.0.1:9/v1", BASE),
    ("http://2130706433/v1", BASE),
    ("http://0x7f000001/v1", BASE),
    ("http://127.1/v1", BASE),
    ("http://0177.0.0.1/v1", BASE),
    ("http://bad_-label-.-x/v1", BASE),
])
async def test_bad_base_urls_are_invalid_argument_naming_the_field(stubs, caplog, url, field):
    caplog.set_level(logging.INFO)
    f = await failure_of(_generate(stubs.llm, {"openai_api_base": url}))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT, f.message
    assert f.reason == "InvokeBadRequestError" and field in f.violations
    assert not f.message.startswith("[openai] [openai]")
    assert "Traceback" not in caplog.text and "unexpected" not in caplog.text


@pytest.mark.parametrize("key", ["sk-abc\r\nX-Injected: 1", "sk-abc\ndef", "sk-\x00abc"])
async def test_control_characters_in_a_key_are_invalid_argument(stubs, caplog, key):
    caplog.set_level(logging.INFO)
    f = await failure_of(_generate(stubs.llm, {"openai_api_key": key, "openai_api_base": "http://127.0.0.1:9/v1"}))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT, f.message
    assert "credentials.openai_api_key" in f.violations
    assert key not in f.message and "Traceback" not in caplog.text


@pytest.fixture(scope="module")
async def self_server():
    http_port = free_port()
    config = Config(grpc=GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.2, drain_seconds=0),
                    http=HttpConfig(enabled=True, host="127.0.0.1", port=http_port),
                    egress=EgressConfig(allowed_cidrs=["127.0.0.1/32"], connect_timeout=2, read_timeout=5))
    running = await start_server(config)
    from server.http.app import start_http

    running.http = await start_http(config, running.runtime)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    yield running, llm_service_pb2_grpc.LLMServiceStub(channel), http_port
    await channel.close()
    await running.stop(0, 0)


async def test_the_runtime_never_calls_its_own_listeners(self_server):
    running, llm, http_port = self_server
    for url in (f"http://127.0.0.1:{http_port}/v1", f"http://localhost:{http_port}/v1",
                f"http://127.0.0.1:{running.port}/v1"):
        f = await failure_of(_generate(llm, {"openai_api_base": url}))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT, (url, f.code, f.message)
        assert "does not allow" in f.message


@pytest.mark.parametrize("host", [
    "[2002:a9fe:a9fe::]",  # 6to4 of 169.254.169.254 (metadata)
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "[2001:0:4136:e378:8000:63bf:f5ff:fff5]",  # Teredo, client 10.0.0.10
    "[::ffff:10.0.0.1]",  # v4-mapped
])
async def test_ipv6_forms_carrying_a_refused_ipv4_are_refused(stubs, host):
    f = await failure_of(_generate(stubs.llm, {"openai_api_base": f"http://{host}:9/v1"}))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT, (host, f.code, f.message)
    assert "does not allow" in f.message


def test_a_wildcard_bind_refuses_every_local_address_on_its_port():
    policy = EgressPolicy.from_config(allowed_cidrs=["127.0.0.0/8", "10.0.0.0/8"])
    policy.refuse_self("0.0.0.0", 8080)
    assert not policy.allows_socket("127.0.0.1", 8080) and not policy.allows_socket("127.0.0.2", 8080)
    assert not policy.allows_socket("::ffff:127.0.0.1", 8080)
    assert policy.allows_socket("127.0.0.1", 8081)
    assert policy.allows_socket("10.255.255.254", 8080)  # not an address of this host


# Every protocol that takes a caller-given URL validates it the same way (kit.http.check_url).
def _url_builders():
    from providers.protocols.anthropic import chat as anthropic
    from providers.protocols.bedrock import client as bedrock
    from providers.protocols.cohere import client as cohere
    from providers.protocols.gemini import client as gemini
    from providers.protocols.huggingface import client as huggingface
    from providers.protocols.ollama import client as ollama
    from providers.protocols.replicate import client as replicate
    from providers.protocols.triton import client as triton
    from providers.protocols.vertex import endpoint as vertex

    return [
        ("anthropic", "anthropic_api_url", anthropic.base_url),
        ("google", "google_base_url", gemini.base_url),
        ("cohere", "base_url", cohere.base_url),
        ("ollama", "base_url", ollama.base_url),
        ("replicate", "replicate_base_url", replicate.base_url),
        ("vertex_ai", "vertex_endpoint_url", vertex.host),
        ("bedrock", "bedrock_endpoint_url", bedrock.runtime_base),
        ("triton_inference_server", "server_url", triton.server_url),
        ("huggingface_hub", "huggingfacehub_endpoint_url", huggingface.endpoint_url),
    ]


@pytest.mark.parametrize("url", ["http://user:pass@127.0.0.1:9", "http://2130706433", "http://127.1",
                                 "http://" + "a" * 300 + ".example"])
def test_every_protocol_checks_caller_urls_naming_the_field(url):
    from engine.adapter import CallContext
    from engine.entities import ModelType
    from engine.errors import InvokeBadRequestError
    from providers import builtin_registry

    registry = builtin_registry()
    for provider, field, build in _url_builders():
        adapter = registry.adapter(provider)
        ctx = CallContext(provider_entity=adapter.entity, model="m", model_type=ModelType.LLM, schema=None,
                          credentials={field: url, "huggingfacehub_api_type": "inference_endpoints"},
                          http=None, options=adapter.options)  # type: ignore[arg-type]
        with pytest.raises(InvokeBadRequestError) as raised:
            build(ctx)
        assert [v.field for v in raised.value.field_violations] == [f"credentials.{field}"], provider
