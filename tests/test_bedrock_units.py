"""Bedrock building blocks without the server: SigV4 against AWS's published vectors, the
event-stream decoder against the AWS SDK's test vectors, and the pure Converse transforms."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import uuid
import zlib
from datetime import UTC, datetime

import httpx
import pytest

from engine.adapter import LLMRequest
from engine.errors import (
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    NotFoundError,
)
from engine.messages import (
    ContentPart,
    FinishReason,
    PartKind,
    PromptMessage,
    Role,
    Tool,
    ToolCall,
    ToolChoice,
)
from providers.kit.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    decode_message,
    parse_headers,
)
from providers.protocols.bedrock import sigv4
from providers.protocols.bedrock.client import encode_model_id, error_from
from providers.protocols.bedrock.transform import (
    ModelTraits,
    StreamAssembler,
    build_converse_body,
    document_name,
    model_family,
    parse_converse,
)
from tests.mocks.bedrock_wire import encode_frame

# ---- SigV4: AWS's published examples ------------------------------------------------------------
# aws-sig-v4-test-suite "get-vanilla" / "post-vanilla" and the IAM ListUsers walk-through in
# the AWS General Reference ("Examples of the complete Signature Version 4 signing process").

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VANILLA_HEADERS = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}


def _sign(method, path, query, headers, service, payload_hash=sigv4.EMPTY_SHA256):
    canonical, signed = sigv4.canonical_request(method, path, query, headers, payload_hash)
    scope = sigv4.credential_scope("20150830", "us-east-1", service)
    to_sign = sigv4.string_to_sign("20150830T123600Z", scope, canonical)
    key = sigv4.signing_key(SECRET, "20150830", "us-east-1", service)
    return canonical, to_sign, key, sigv4.signature(key, to_sign), signed


def test_sigv4_get_vanilla_vector():
    canonical, to_sign, _, sig, signed = _sign("GET", "/", "", VANILLA_HEADERS, "service")
    assert canonical == ("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                         "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert to_sign == ("AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                       "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
    assert sig == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    assert sigv4.authorization("AKIDEXAMPLE", "20150830/us-east-1/service/aws4_request", signed, sig) == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


def test_sigv4_post_vanilla_vector():
    *_, sig, _ = _sign("POST", "/", "", VANILLA_HEADERS, "service")
    assert sig == "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"


def test_sigv4_iam_list_users_example_step_by_step():
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Host": "iam.amazonaws.com",
               "X-Amz-Date": "20150830T123600Z"}
    canonical, _, key, sig, signed = _sign("GET", "/", "Action=ListUsers&Version=2010-05-08", headers, "iam")
    assert signed == "content-type;host;x-amz-date"
    assert hashlib.sha256(canonical.encode()).hexdigest() == \
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    assert sig == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"


def test_sign_request_end_to_end_reproduces_the_iam_example():
    when = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
    headers = sigv4.sign_request(
        "GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}, b"",
        sigv4.AwsCredentials("AKIDEXAMPLE", SECRET), "us-east-1", "iam", now=when, content_sha256_header=False,
    )
    assert headers["host"] == "iam.amazonaws.com" and headers["x-amz-date"] == "20150830T123600Z"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")


def test_canonical_uri_double_encodes_for_non_s3_services():
    # The path is signed as sent, encoded once more: a raw ":" becomes %3A, and an ARN's "/",
    # sent as %2F, becomes %252F (botocore's %3A would likewise be signed as %253A).
    sent = "/model/" + encode_model_id("us.anthropic.claude-haiku-4-5-20251001-v1:0") + "/converse"
    assert sent == "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/converse"
    assert sigv4.canonical_uri(sent) == "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse"
    arn = "/model/" + encode_model_id("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x.y:0") + "/invoke"
    assert arn == "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.x.y:0/invoke"
    assert sigv4.canonical_uri(arn) == \
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%252Fus.x.y%3A0/invoke"
    assert sigv4.canonical_uri("/model/a-v1%3A0/converse") == "/model/a-v1%253A0/converse"
    assert sigv4.canonical_uri("/a b/~x") == "/a%20b/~x"
    assert sigv4.canonical_uri("/a/./b/../c//d/") == "/a/c/d/"
    assert sigv4.canonical_uri("") == "/"
    assert sigv4.canonical_uri("/a%3Ab", double_encode=False) == "/a%3Ab"  # S3 rules: encoded once


def test_canonical_query_and_headers_rules():
    assert sigv4.canonical_query("b=2&a=2&a=1&c") == "a=1&a=2&b=2&c="
    assert sigv4.canonical_query([("k y", "v/1*")]) == "k%20y=v%2F1%2A"
    block, signed = sigv4.canonical_headers({"X-Amz-Date": " 1 ", "My-Header": "a   b  c", "Host": "h"})
    assert block == "host:h\nmy-header:a b c\nx-amz-date:1\n" and signed == "host;my-header;x-amz-date"


def test_sign_request_headers_session_token_and_host_port():
    body = b'{"messages":[]}'
    headers = sigv4.sign_request(
        "POST", "http://127.0.0.1:8123/model/m%3A0/converse", {"content-type": "application/json", "accept": "x"},
        body, sigv4.AwsCredentials("ASIAEXAMPLE", SECRET, "tok/en=="), "us-west-2", "bedrock",
        now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert headers["host"] == "127.0.0.1:8123" and headers["x-amz-date"] == "20260102T030405Z"
    assert headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert headers["x-amz-security-token"] == "tok/en=="
    assert headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20260102/us-west-2/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=")
    assert "accept" in headers and "accept" not in headers["authorization"]
    assert sigv4.host_header("https://bedrock-runtime.us-east-1.amazonaws.com:443/x") == \
        "bedrock-runtime.us-east-1.amazonaws.com"
    assert SECRET not in repr(sigv4.AwsCredentials("AKID", SECRET))


# ---- event stream: the AWS SDK's test vectors ---------------------------------------------------
# aws/aws-sdk-js-v3 packages/eventstream-marshaller/src/TestVectors.fixture.ts

FOO_BAR = b"{'foo':'bar'}"
VECTORS = {
    "empty_message": (bytes([0, 0, 0, 16, 0, 0, 0, 0, 5, 194, 72, 235, 125, 152, 200, 255]), {}, b""),
    "int32_header": (bytes([0, 0, 0, 43, 0, 0, 0, 14, 52, 139, 236, 123, 8, 101, 118, 101, 110, 116, 45, 105, 100, 4,
                            0, 0, 160, 12, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39, 125, 211, 137, 2, 133]),
                     {"event-id": 0xA00C}, FOO_BAR),
    "payload_no_headers": (bytes([0, 0, 0, 29, 0, 0, 0, 0, 253, 82, 140, 90, 123, 39, 102, 111, 111, 39, 58, 39, 98,
                                  97, 114, 39, 125, 195, 101, 57, 54]), {}, FOO_BAR),
    "payload_one_str_header": (bytes([0, 0, 0, 61, 0, 0, 0, 32, 7, 253, 131, 150, 12, 99, 111, 110, 116, 101, 110, 116,
                                      45, 116, 121, 112, 101, 7, 0, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111,
                                      110, 47, 106, 115, 111, 110, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39,
                                      125, 141, 156, 8, 177]), {"content-type": "application/json"}, FOO_BAR),
}
CORRUPTED = {
    "corrupted_headers": bytes([0, 0, 0, 61, 0, 0, 0, 32, 7, 253, 131, 150, 12, 99, 111, 110, 116, 101, 110, 116, 43,
                                116, 121, 112, 101, 7, 0, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111, 110, 47,
                                106, 115, 111, 110, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39, 125, 141, 156,
                                8, 177]),
    "corrupted_header_len": bytes([0, 0, 0, 61, 0, 0, 1, 32, 7, 253, 131, 150, 12, 99, 111, 110, 116, 101, 110, 116,
                                   45, 116, 121, 112, 101, 7, 0, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111,
                                   110, 47, 106, 115, 111, 110, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39,
                                   125, 141, 156, 8, 177]),
    "corrupted_length": bytes([1, 0, 0, 29, 0, 0, 0, 0, 253, 82, 140, 90, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97,
                               114, 39, 125, 195, 101, 57, 54]),
    "corrupted_payload": bytes([0, 0, 0, 29, 0, 0, 0, 0, 253, 82, 140, 90, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97,
                                114, 39, 141, 195, 101, 57, 54]),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_eventstream_decodes_the_sdk_vectors(name):
    encoded, headers, payload = VECTORS[name]
    message = decode_message(encoded)
    assert message.headers == headers and message.payload == payload
    decoder = EventStreamDecoder()
    assert [(m.headers, m.payload) for m in decoder.feed(encoded)] == [(headers, payload)]
    assert decoder.pending == 0


@pytest.mark.parametrize("name", sorted(CORRUPTED))
def test_eventstream_rejects_the_corrupted_vectors(name):
    with pytest.raises(EventStreamError) as info:
        EventStreamDecoder().feed(CORRUPTED[name])
    assert isinstance(info.value, InvokeConnectionError)  # surfaces as a connection error
    with pytest.raises(EventStreamError):
        decode_message(CORRUPTED[name])


def test_eventstream_any_split_of_a_concatenated_stream():
    frames = [encoded for encoded, _, _ in VECTORS.values()] * 3
    stream = b"".join(frames)
    expected = [(h, p) for _, h, p in VECTORS.values()] * 3
    rng = random.Random(3)
    for _ in range(50):
        decoder, got, pos = EventStreamDecoder(), [], 0
        while pos < len(stream):
            size = rng.randint(1, 17)
            got += [(m.headers, m.payload) for m in decoder.feed(stream[pos:pos + size])]
            pos += size
        assert got == expected and decoder.pending == 0
    decoder, got = EventStreamDecoder(), []
    for i in range(len(stream)):  # one byte at a time: every prelude split point
        got += decoder.feed(stream[i:i + 1])
    assert len(got) == len(frames)


def test_eventstream_every_header_type():
    when = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    frame = encode_frame([
        ("t", True, 0), ("f", False, 1), ("byte", -7, 2), ("short", -300, 3), ("int", 70000, 4),
        ("long", -(2**40), 5), ("bytes", b"\x00\xff", 6), ("str", "héllo", 7),
        ("ts", int(when.timestamp() * 1000), 8), ("id", ident, 9),
    ], b"{}")
    message = decode_message(frame)
    assert message.headers == {"t": True, "f": False, "byte": -7, "short": -300, "int": 70000, "long": -(2**40),
                               "bytes": b"\x00\xff", "str": "héllo", "ts": when, "id": ident}
    with pytest.raises(EventStreamError):
        parse_headers(b"\x01a\x0a")  # unknown value type 10
    with pytest.raises(EventStreamError):
        parse_headers(b"\x01a\x07\x00\x05ab")  # string runs past the block


def test_eventstream_prelude_checked_before_buffering_a_bogus_length():
    frame = bytearray(VECTORS["payload_no_headers"][0])
    frame[9] ^= 0x01  # prelude CRC
    decoder = EventStreamDecoder()
    assert decoder.feed(bytes(frame[:11])) == []  # not yet 12 bytes: nothing to check
    with pytest.raises(EventStreamError, match="prelude"):
        decoder.feed(bytes(frame[11:12]))
    huge = struct.pack(">II", 1 << 30, 0)
    with pytest.raises(EventStreamError, match="length"):
        EventStreamDecoder().feed(huge + struct.pack(">I", zlib.crc32(huge)))


# ---- transforms ---------------------------------------------------------------------------------


def test_model_family_from_ids_profiles_and_arns():
    assert model_family("us.anthropic.claude-sonnet-4-6") == "anthropic"
    assert model_family("global.anthropic.claude-sonnet-4-5-20250929-v1:0") == "anthropic"
    assert model_family("amazon.nova-pro-v1:0") == "nova"
    assert model_family("amazon.titan-embed-text-v2:0") == "amazon"
    assert model_family("arn:aws:bedrock:us-east-1:1:inference-profile/eu.meta.llama3-2-3b-instruct-v1:0") == "meta"
    assert model_family("cohere.embed-v4:0") == "cohere"


def _text(role, text):
    return PromptMessage(role, [ContentPart(PartKind.TEXT, text=text)])


def test_converse_body_messages_tools_and_inference_config():
    weather = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = LLMRequest(
        messages=[
            _text(Role.SYSTEM, "be brief"),
            _text(Role.USER, "weather?"),
            _text(Role.USER, "   "),  # blank: dropped
            PromptMessage(Role.ASSISTANT, [ContentPart(PartKind.TEXT, text="Checking.")], tool_calls=[
                ToolCall("t1", "get_weather", '{"city":"Paris"}'), ToolCall("t2", "get_weather", "")]),
            PromptMessage(Role.TOOL, [ContentPart(PartKind.TEXT, text="21C")], tool_call_id="t1"),
            PromptMessage(Role.TOOL, [ContentPart(PartKind.TEXT, text="25C")], tool_call_id="t2"),
            _text(Role.USER, "thanks"),
        ],
        parameters={"temperature": 0.2, "top_p": 0.9, "top_k": 40, "max_tokens": 300, "custom_field": "x"},
        tools=[Tool("get_weather", "", weather)],
        tool_choice=ToolChoice("function", "get_weather"),
        stop=["END"],
    )
    body = build_converse_body(request, ModelTraits.from_schema("us.anthropic.claude-sonnet-4-6", None))
    assert body["system"] == [{"text": "be brief"}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "weather?"}]},
        {"role": "assistant", "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "t2", "name": "get_weather", "input": {}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "21C"}], "status": "success"}},
            {"toolResult": {"toolUseId": "t2", "content": [{"text": "25C"}], "status": "success"}},
            {"text": "thanks"}]},
    ]
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}
    assert body["additionalModelRequestFields"] == {"top_k": 40, "custom_field": "x"}
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": weather}}}],
                                  "toolChoice": {"tool": {"name": "get_weather"}}}
    nova = build_converse_body(LLMRequest([_text(Role.USER, "hi")], {"top_k": 5}),
                               ModelTraits.from_schema("amazon.nova-lite-v1:0", None))
    assert nova == {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                    "additionalModelRequestFields": {"inferenceConfig": {"topK": 5}}}


def test_tool_choice_none_keeps_a_config_only_when_the_history_needs_it():
    tools = [Tool("a", "desc", {})]
    plain = LLMRequest([_text(Role.USER, "hi")], {}, tools=tools, tool_choice=ToolChoice("none"))
    assert "toolConfig" not in build_converse_body(plain, ModelTraits())
    history = LLMRequest([
        _text(Role.USER, "hi"),
        PromptMessage(Role.ASSISTANT, tool_calls=[ToolCall("x1", "b", "{}")]),
        PromptMessage(Role.TOOL, [ContentPart(PartKind.TEXT, text="ok")], tool_call_id="x1"),
    ], {}, tools=tools, tool_choice=ToolChoice("none"))
    config = build_converse_body(history, ModelTraits())["toolConfig"]
    assert config == {"tools": [{"toolSpec": {"name": "b", "inputSchema": {"json": {
        "type": "object", "properties": {}}}}}]}  # declared for the history, no choice


def test_thinking_drops_sampling_and_checks_the_budget():
    traits = ModelTraits.from_schema("us.anthropic.claude-haiku-4-5-20251001-v1:0", None)
    body = build_converse_body(LLMRequest([_text(Role.USER, "x")], {
        "thinking": True, "thinking_budget": 2048, "max_tokens": 4096, "temperature": 0.5, "top_k": 3}), traits)
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert body["inferenceConfig"] == {"maxTokens": 4096}
    with pytest.raises(InvokeBadRequestError) as info:
        build_converse_body(LLMRequest([_text(Role.USER, "x")], {"thinking": True, "thinking_budget": 4096,
                                                                 "max_tokens": 2048}), traits)
    assert info.value.field_violations[0].field == "model_parameters.thinking_budget"


def test_media_blocks_and_document_names():
    png = b"\x89PNG\r\n\x1a\n"
    message = PromptMessage(Role.USER, [
        ContentPart(PartKind.IMAGE, data=png, mime_type="image/png"),
        ContentPart(PartKind.IMAGE, url="data:image/jpeg;base64,AAEC"),
        ContentPart(PartKind.DOCUMENT, data=b"%PDF", mime_type="application/pdf", filename="Q3 report.v2.pdf"),
        ContentPart(PartKind.DOCUMENT, data=b"a,b", mime_type="text/csv", filename="Q3 report.v2.csv"),
    ])
    content = build_converse_body(LLMRequest([message], {}), ModelTraits())["messages"][0]["content"]
    assert content[0] == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
    assert content[1]["image"]["format"] == "jpeg" and content[1]["image"]["source"]["bytes"] == "AAEC"
    assert content[2]["document"] == {"format": "pdf", "name": "Q3 report-v2", "source": {"bytes": "JVBERg=="}}
    assert content[3]["document"]["name"] == "Q3 report-v2 (2)" and content[3]["document"]["format"] == "csv"
    assert document_name("..", set()) == "document"
    with pytest.raises(InvokeBadRequestError):
        build_converse_body(LLMRequest([PromptMessage(Role.USER, [
            ContentPart(PartKind.IMAGE, url="https://example.com/cat.png")])], {}), ModelTraits())


def test_parse_converse_response_and_usage():
    result = parse_converse({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
            {"text": "Let me "}, {"text": "check."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "f", "input": {"a": 1}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 45, "cacheReadInputTokens": 20,
                  "cacheWriteInputTokens": 10},
    }, "m")
    assert result.message.content == "Let me check." and result.message.reasoning_content == "hmm"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in result.message.tool_calls] == [("tooluse_1", "f", {"a": 1})]
    assert result.finish_reason is FinishReason.TOOL_CALLS and result.provider_finish_reason == "tool_use"
    assert (result.counts.prompt_tokens, result.counts.completion_tokens, result.counts.cached_prompt_tokens) == (40, 5, 20)
    for raw, reason in [("end_turn", FinishReason.STOP), ("stop_sequence", FinishReason.STOP),
                        ("max_tokens", FinishReason.LENGTH), ("content_filtered", FinishReason.CONTENT_FILTER),
                        ("guardrail_intervened", FinishReason.CONTENT_FILTER), ("malformed_tool_use", FinishReason.OTHER)]:
        assert parse_converse({"stopReason": raw}, "m").finish_reason is reason


def test_stream_assembler_waits_for_metadata_after_message_stop():
    a = StreamAssembler("m")
    assert a.feed("messageStart", {"role": "assistant", "p": "abc"}) is None
    assert a.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}).content == "Hi"
    start = a.feed("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}})
    assert (start.tool_calls[0].index, start.tool_calls[0].id, start.tool_calls[0].name) == (0, "t", "f")
    frag = a.feed("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a"'}}})
    assert (frag.tool_calls[0].index, frag.tool_calls[0].arguments) == (0, '{"a"')
    a.feed("messageStop", {"stopReason": "tool_use"})
    assert a.stopped and not a.done
    a.feed("metadata", {"usage": {"inputTokens": 3, "outputTokens": 4}})
    assert a.done
    final = a.final()
    assert final.finish_reason is FinishReason.TOOL_CALLS and final.counts.prompt_tokens == 3


# ---- errors -------------------------------------------------------------------------------------


def test_error_mapping_by_aws_error_type():
    headers = httpx.Headers({"retry-after": "3"})
    assert isinstance(error_from("ThrottlingException:http://x", "slow down", 429, {}, headers), InvokeRateLimitError)
    assert error_from("ThrottlingException", "x", 429, {}, headers).retry_after == 3.0
    auth = error_from("InvalidSignatureException", "The Canonical String was ...", 403)
    assert isinstance(auth, InvokeAuthorizationError) and "Canonical" not in str(auth)
    assert "InvalidSignatureException" in str(auth)
    assert isinstance(error_from("ValidationException", "bad", 400), InvokeBadRequestError)
    assert isinstance(error_from("ResourceNotFoundException", "no", 404), NotFoundError)
    assert isinstance(error_from("ServiceUnavailableException", "", 503), InvokeServerUnavailableError)
    assert isinstance(error_from("ModelErrorException", "m", 424, {"originalStatusCode": 500}),
                      InvokeServerUnavailableError)
    bad = error_from("ModelErrorException", "m", 424, {"originalStatusCode": 400})
    assert isinstance(bad, InvokeBadRequestError) and "HTTP 400" in str(bad)
    # in-stream exceptions: camelCase names, no HTTP status
    assert isinstance(error_from("throttlingException", "x", None), InvokeRateLimitError)
    assert isinstance(error_from("modelStreamErrorException", "x", None), InvokeServerUnavailableError)
    assert isinstance(error_from("validationException", "x", None), InvokeBadRequestError)
    assert isinstance(error_from("internalServerException", "x", None), InvokeServerUnavailableError)
    assert isinstance(error_from("somethingNewException", "x", None), InvokeServerUnavailableError)


def test_stream_error_frames_and_endpoints():
    from engine.adapter import CallContext
    from engine.entities import ModelType
    from engine.loader import load_provider
    from providers import DEFINITIONS
    from providers.protocols.bedrock import client
    from providers.protocols.bedrock.chat import body_error as stream_error

    frame = encode_frame([(":message-type", "error", None), (":error-code", "ThrottlingException", None),
                          (":error-message", "slow down", None)], b"")
    err = stream_error(decode_message(frame))
    assert isinstance(err, InvokeRateLimitError) and "slow down" in str(err) and err.upstream_status is None
    plain = encode_frame([(":message-type", "exception", None), (":exception-type", "internalServerException", None)],
                         b"oops, not json")
    err = stream_error(decode_message(plain))
    assert isinstance(err, InvokeServerUnavailableError) and "oops, not json" in str(err)

    entity = load_provider(DEFINITIONS / "bedrock").entity

    def ctx(**credentials):
        return CallContext(provider_entity=entity, model="m", model_type=ModelType.LLM, schema=None,
                           credentials=credentials, http=None, options=dict(entity.runtime))

    assert client.model_url(ctx(aws_region="eu-west-1"), "amazon.nova-pro-v1:0", "converse") == \
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/amazon.nova-pro-v1:0/converse"
    assert client.agent_runtime_base(ctx(aws_region="us-east-1", bedrock_endpoint_url="https://vpce.example")) == \
        "https://bedrock-agent-runtime.us-east-1.amazonaws.com"
    assert client.runtime_base(ctx(aws_region="cn-north-1")) == "https://bedrock-runtime.cn-north-1.amazonaws.com.cn"
    assert client.foundation_model_arn(ctx(aws_region="us-gov-west-1"), "amazon.rerank-v1:0") == \
        "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/amazon.rerank-v1:0"
    with pytest.raises(InvokeBadRequestError) as info:
        client.runtime_base(ctx(aws_region="us-east-1", bedrock_endpoint_url="ftp://x"))
    assert info.value.field_violations[0].field == "credentials.bedrock_endpoint_url"
    bearer = client.auth_headers(ctx(aws_region="us-east-1", bedrock_api_key="ABSK123", aws_access_key_id="A",
                                     aws_secret_access_key="S"), "POST", "https://h/x", {}, b"")
    assert bearer == {"authorization": "Bearer ABSK123"}
