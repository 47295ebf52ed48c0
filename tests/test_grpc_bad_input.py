"""Hostile input through the real gRPC server: malformed bytes and oversized fields.

Every case must end in INVALID_ARGUMENT with ErrorInfo and a BadRequest violation naming
the field, never UNKNOWN, a Python class name or a traceback, and nothing reaches the
provider.
"""

from __future__ import annotations

import logging

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb

from server.app import SERVICE_NAMES
from tests.helpers import RpcFailure, decode, failure_of, struct, target, user
from tests.mocks.openai_mock import OpenAIMock

KEY = "sk-test"


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


def gen(mock, **kw) -> llm_pb.GenerateRequest:
    credentials = {"openai_api_key": KEY, "openai_api_base": mock.url, **kw.pop("credentials", {})}
    return llm_pb.GenerateRequest(target=target("openai", "gpt-4o", credentials), messages=[user("hi")], **kw)


def _delimited(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, written by hand (a client library refuses these)."""
    size, length = len(payload), bytearray()
    while True:
        length.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            return bytes([number << 3 | 2]) + bytes(length) + payload


def _nested_tool(depth: int) -> bytes:
    """Tool{name: "t", parameters: {"properties": {"x": {"properties": ...}}}}: ``depth`` schemas deep."""
    def struct_with(key: bytes, inner: bytes) -> bytes:  # Struct.fields(1) → key(1), Value(2).struct_value(5)
        return _delimited(1, _delimited(1, key) + _delimited(2, _delimited(5, inner)))

    schema = b""
    for _ in range(depth):
        schema = struct_with(b"properties", struct_with(b"x", schema))
    return _delimited(1, b"t") + _delimited(3, schema)


def _methods() -> list[MethodDescriptor]:
    pools = [llm_pb.DESCRIPTOR.pool, health_pb2.DESCRIPTOR.pool, reflection_pb2.DESCRIPTOR.pool]
    names = [*SERVICE_NAMES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]
    methods = []
    for name in names:
        for pool in pools:
            try:
                methods.extend(pool.FindServiceByName(name).methods)
                break
            except KeyError:
                continue
    return methods


async def _send_raw(channel: grpc.aio.Channel, method: MethodDescriptor, data: bytes) -> RpcFailure:
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.client_streaming:
            call = channel.stream_stream(path)(iter([data])) if method.server_streaming \
                else channel.stream_unary(path)(iter([data]))
        else:
            call = channel.unary_stream(path)(data) if method.server_streaming else channel.unary_unary(path)(data)
        if method.server_streaming:
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as err:
        return decode(err)
    raise AssertionError(f"{path} accepted malformed bytes")


def assert_rejected(f: RpcFailure, field: str) -> None:
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT, (f.code, f.message)
    assert f.reason == "InvokeBadRequestError"
    assert field in f.violations, f.violations
    assert "<class" not in f.message and "Error'" not in f.message and "DecodeError" not in f.message


# ---- malformed protobuf ----------------------------------------------------------------------


@pytest.mark.parametrize("method", _methods(), ids=lambda m: m.full_name)
async def test_garbage_bytes_to_any_rpc_are_invalid_argument(stubs, method, caplog):
    caplog.set_level(logging.DEBUG)
    f = await _send_raw(stubs.channel, method, b"\xff" * 16)
    assert_rejected(f, "request")
    assert "Traceback" not in caplog.text and "DecodeError" not in caplog.text


async def test_invalid_utf8_names_the_string_field(stubs, mock):
    data = gen(mock, user="abc").SerializeToString().replace(b"abc", b"\xff\xfe\x80")
    method = llm_pb.DESCRIPTOR.services_by_name["LLMService"].methods_by_name["Generate"]
    f = await _send_raw(stubs.channel, method, data)
    assert_rejected(f, "user")
    assert "UTF-8" in f.violations["user"]


async def test_truncated_message_names_the_cut_field(stubs, mock):
    data = gen(mock).SerializeToString()
    method = llm_pb.DESCRIPTOR.services_by_name["LLMService"].methods_by_name["StreamGenerate"]
    f = await _send_raw(stubs.channel, method, data[:-3])
    assert_rejected(f, "messages[0]")  # its declared length runs past the end


@pytest.mark.parametrize("depth", [20, 100, 1000])
async def test_deeply_nested_tool_parameters_name_the_tool(stubs, mock, caplog, depth):
    data = gen(mock).SerializeToString() + _delimited(4, _nested_tool(depth))  # GenerateRequest.tools = 4
    method = llm_pb.DESCRIPTOR.services_by_name["LLMService"].methods_by_name["Generate"]
    f = await _send_raw(stubs.channel, method, data)
    assert_rejected(f, "tools[0].parameters")
    assert "Traceback" not in caplog.text


async def test_registered_method_path_is_guarded_too(stubs):
    call = stubs.channel.unary_unary("/modelruntime.v1.LLMService/CountTokens", _registered_method=True)
    try:
        await call(b"\x0a\x05ab")
    except grpc.aio.AioRpcError as err:
        assert_rejected(decode(err), "target")
    else:
        raise AssertionError("accepted a truncated request")


async def test_server_still_serves_after_malformed_input(stubs, mock):
    reply = await stubs.llm.Generate(gen(mock))
    assert reply.message.content


# ---- caps --------------------------------------------------------------------------------------


async def test_too_many_stop_sequences(stubs, mock):
    before = len(mock.requests)
    f = await failure_of(stubs.llm.Generate(gen(mock, stop=[f"s{i}" for i in range(10_000)])))
    assert_rejected(f, "stop")
    assert len(mock.requests) == before


async def test_a_huge_stop_sequence(stubs, mock):
    f = await failure_of(stubs.llm.Generate(gen(mock, stop=["ok", "x" * 1_000_000])))
    assert_rejected(f, "stop[1]")


async def test_stop_sequences_within_the_caps_pass(stubs, mock):
    reply = await stubs.llm.Generate(gen(mock, stop=["y" * 1000] * 16))
    assert reply.message.content


async def test_too_many_model_parameters(stubs, mock):
    params = struct({f"k{i}": i for i in range(100_000)})
    f = await failure_of(stubs.llm.Generate(gen(mock, model_parameters=params)))
    assert_rejected(f, "model_parameters")


async def test_too_many_target_credentials(stubs, mock):
    f = await failure_of(stubs.llm.Generate(gen(mock, credentials={f"k{i}": "v" for i in range(300)})))
    assert_rejected(f, "target.credentials")


async def test_too_many_provider_credentials(stubs):
    many = struct({f"k{i}": "v" for i in range(100_000)})
    f = await failure_of(stubs.providers.ValidateProviderCredentials(
        prov_pb.ValidateProviderCredentialsRequest(provider="openai", credentials=many)))
    assert_rejected(f, "credentials")
    f = await failure_of(stubs.providers.ListModels(prov_pb.ListModelsRequest(provider="openai", credentials=many)))
    assert_rejected(f, "credentials")


async def test_caps_come_from_the_config():
    from server.app import build_runtime
    from server.config import LimitsConfig
    from tests.conftest import make_config

    runtime = build_runtime(make_config(limits=LimitsConfig(max_stop_sequences=2, max_stop_chars=5,
                                                           max_struct_keys=3)))
    try:
        limits = runtime.limits
        assert (limits.max_stop_sequences, limits.max_stop_chars, limits.max_struct_keys) == (2, 5, 3)
    finally:
        await runtime.egress.aclose()
