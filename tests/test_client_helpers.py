"""Tests of the Python client's local helpers: stream accumulation, message builders, channel options."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[1] / "clients" / "python"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

from modelruntime import ToolCallAccumulator, accumulate, user
from modelruntime.v1 import common_pb2, llm_service_pb2

from tests.helpers import stream_chunk

# --------------------------------------------------------------------------- accumulation


def test_tool_call_accumulator_merges_interleaved_fragments():
    acc = ToolCallAccumulator()
    D = llm_service_pb2.ToolCallDelta
    acc.add(D(index=0, id="call_a", name="get_weather", type="function", arguments='{"ci'))
    acc.add(D(index=1, id="call_b", name="get_time", arguments=""))
    acc.add(D(index=0, arguments='ty": "Par'))
    acc.add([D(index=1, arguments='{"tz": '), D(index=0, arguments='is"}')])
    acc.add(D(index=1, arguments='"CET"}'))
    calls = acc.tool_calls
    assert len(acc) == 2
    assert [(c.id, c.name, c.type, c.arguments) for c in calls] == [
        ("call_a", "get_weather", "function", '{"city": "Paris"}'),
        ("call_b", "get_time", "function", '{"tz": "CET"}'),
    ]


def test_accumulate_stream_chunks():
    usage = common_pb2.LLMUsage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    chunks = [
        stream_chunk("Let me ", id="gen-1", model="gpt-4o-mini"),
        stream_chunk("check.", tool_calls=[{"index": 1, "id": "call_b", "name": "lookup", "arguments": '{"q'}]),
        stream_chunk(tool_calls=[{"index": 0, "id": "call_a", "name": "search", "arguments": "{"}]),
        stream_chunk(tool_calls=[{"index": 1, "arguments": '": 1}'}, {"index": 0, "arguments": '"x": [1, 2]'}]),
        stream_chunk(tool_calls=[{"index": 0, "arguments": "}"}]),
        llm_service_pb2.StreamGenerateResponse(
            finish_reason=llm_service_pb2.FINISH_REASON_TOOL_CALLS,
            provider_finish_reason="tool_calls",
            usage=usage,
            system_fingerprint="fp_1",
        ),
    ]
    resp = accumulate(chunks)
    assert isinstance(resp, llm_service_pb2.GenerateResponse)
    assert resp.id == "gen-1" and resp.model == "gpt-4o-mini"
    assert resp.message.content == "Let me check."
    assert [(c.id, c.name, c.arguments) for c in resp.message.tool_calls] == [
        ("call_a", "search", '{"x": [1, 2]}'),
        ("call_b", "lookup", '{"q": 1}'),
    ]
    assert resp.finish_reason == llm_service_pb2.FINISH_REASON_TOOL_CALLS
    assert resp.provider_finish_reason == "tool_calls"
    assert resp.usage.total_tokens == 15
    assert resp.system_fingerprint == "fp_1"


# --------------------------------------------------------------------------- message helpers


def test_message_helpers_and_dict_messages():
    from modelruntime import _convert, assistant, image, system, tool_result

    msgs = [
        system("Be brief."),
        user(["Describe", image(b"\x89PNG", "image/png", detail="low")]),
        assistant(tool_calls=[{"id": "c1", "name": "f", "arguments": {"a": 1}}]),
        tool_result("c1", "42"),
    ]
    assert msgs[0].role == llm_service_pb2.ROLE_SYSTEM and msgs[0].content[0].text == "Be brief."
    assert msgs[1].content[1].image.data == b"\x89PNG"
    assert msgs[1].content[1].image.detail == llm_service_pb2.IMAGE_DETAIL_LOW
    assert msgs[2].tool_calls[0].arguments == '{"a": 1}' and msgs[2].tool_calls[0].type == "function"
    assert msgs[3].role == llm_service_pb2.ROLE_TOOL and msgs[3].tool_call_id == "c1"

    m = _convert.to_message(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "high"}},
            ],
        }
    )
    assert m.role == llm_service_pb2.ROLE_USER
    assert m.content[1].image.url == "https://x/y.png"
    assert image("https://x/z.png").image.url == "https://x/z.png"
    with pytest.raises(ValueError):
        _convert.to_message({"role": "wizard", "content": "x"})
    s = _convert.to_struct({"temperature": 0.2, "stop": ("a", "b"), "nested": {"k": True}})
    assert (
        s["temperature"] == pytest.approx(0.2) and list(s["stop"]) == ["a", "b"] and s["nested"]["k"] is True
    )


def test_channel_options():
    from modelruntime.client import channel_options

    opts = dict(channel_options())
    assert opts["grpc.keepalive_time_ms"] >= 10_000
    assert opts["grpc.max_send_message_length"] == 32 * 1024 * 1024
    assert opts["grpc.max_receive_message_length"] == 32 * 1024 * 1024
    with pytest.raises(ValueError):
        channel_options({"grpc.keepalive_time_ms": 1000})
