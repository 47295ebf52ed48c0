"""Test helpers: decode google.rpc details of a failed call; build requests tersely."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2, status_pb2
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb


@dataclass
class RpcFailure:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None
    violations: dict[str, str] = field(default_factory=dict)
    resource: str = ""


def decode(err: grpc.aio.AioRpcError) -> RpcFailure:
    failure = RpcFailure(err.code(), err.details() or "")
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw:
        status = status_pb2.Status.FromString(raw)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                failure.reason, failure.metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                failure.retry_delay = retry.retry_delay.ToMilliseconds() / 1000
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                failure.violations = {v.field: v.description for v in bad.field_violations}
            elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
                res = error_details_pb2.ResourceInfo()
                detail.Unpack(res)
                failure.resource = res.resource_name
    return failure


async def failure_of(awaitable) -> RpcFailure:
    try:
        await awaitable
    except grpc.aio.AioRpcError as err:
        return decode(err)
    raise AssertionError("the call succeeded but an error was expected")


async def stream_failure(call) -> tuple[list, RpcFailure]:
    received = []
    try:
        async for item in call:
            received.append(item)
    except grpc.aio.AioRpcError as err:
        return received, decode(err)
    raise AssertionError("the stream succeeded but an error was expected")


def struct(data: dict | None = None) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    if data:
        out.update(data)
    return out


def target(provider: str, model: str, credentials: dict) -> common_pb2.ModelTarget:
    return common_pb2.ModelTarget(provider=provider, model=model, credentials=struct(credentials))


def user(text: str) -> llm_pb.Message:
    return llm_pb.Message(role=llm_pb.ROLE_USER, content=[llm_pb.ContentPart(text=text)])


def system(text: str) -> llm_pb.Message:
    return llm_pb.Message(role=llm_pb.ROLE_SYSTEM, content=[llm_pb.ContentPart(text=text)])


def point_options(monkeypatch, adapter, **changes) -> None:
    """Replace some of an adapter's typed runtime options for one test (e.g. a base URL → a mock)."""
    monkeypatch.setattr(adapter, "options", adapter.options.model_copy(update=changes))


def stream_chunk(content: str = "", tool_calls=(), **kw) -> llm_pb.StreamGenerateResponse:
    """A StreamGenerateResponse carrying a delta: content and tool-call fragments as dicts."""
    return llm_pb.StreamGenerateResponse(
        delta=llm_pb.AssistantDelta(
            content=content, tool_calls=[llm_pb.ToolCallDelta(**tc) for tc in tool_calls]
        ),
        **kw,
    )
