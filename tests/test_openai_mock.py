"""Tests of the mock servers themselves (tests/mocks): the raw HTTP/1.1 toolkit and the OpenAI dialect."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import time

import httpx
import openai
import pytest

try:
    from tests.mocks import openai_mock as om
    from tests.mocks.httpserver import MockServer, Request, Response, ServerThread
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from mocks import openai_mock as om
    from mocks.httpserver import MockServer, Request, Response, ServerThread

KEY = "sk-test"
AUTH = {"authorization": f"Bearer {KEY}"}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}}}}


def parse_sse(raw: bytes) -> list[dict]:
    """Spec-style SSE parsing of a whole body: any line ending, comments, multi-line data."""
    events, cur = [], {"data": []}
    for line in re.split(r"\r\n|\r|\n", raw.decode("utf-8")):
        if line == "":
            if cur["data"]:
                events.append({"event": cur.get("event"), "data": "\n".join(cur["data"])})
            cur = {"data": []}
        elif not line.startswith(":"):  # ":" starts a comment
            field, _, value = line.partition(":")
            cur["data"].append(value.removeprefix(" ")) if field == "data" else cur.update({field: value[1:]})
    return events


def data_events(raw: bytes) -> list:
    return [e["data"] if e["data"] == "[DONE]" else json.loads(e["data"]) for e in parse_sse(raw)]


@pytest.fixture
async def mock():
    async with om.OpenAIMock(api_keys=[KEY]) as m:
        yield m


@pytest.fixture
async def client(mock):
    async with httpx.AsyncClient(base_url=mock.base_url, headers=AUTH, timeout=10) as c:
        yield c


@pytest.fixture
async def sdk(mock):
    async with openai.AsyncOpenAI(base_url=mock.base_url, api_key=KEY, max_retries=0) as c:
        yield c


async def stream_raw(client, path, body) -> tuple[list[bytes], bytes]:
    async with client.stream("POST", path, json=body) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        pieces = [piece async for piece in r.aiter_raw()]
    return pieces, b"".join(pieces)


def chat(text="hello", **kw):
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **kw}


async def test_http_keepalive_headers_query_json_and_chunked_request_body():
    async def handler(req: Request, resp: Response) -> None:
        await resp.send(200, {"content-type": "application/json"}, json.dumps({"len": len(req.body)}))

    async def gen():
        yield b'{"part": '
        yield b'"two"}'

    async with MockServer(handler) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as c:
            r1 = await c.post("/a/b?x=1&x=2&y=z", json={"k": "v"}, headers={"X-Custom": "Yes"})
            r2 = await c.post("/chunked", content=gen())
            assert r1.json() == {"len": len(b'{"k":"v"}')} and r2.status_code == 200
        await srv.wait_connection_closed(timeout=2)
    a, b = srv.requests
    assert (a.method, a.path, a.query) == ("POST", "/a/b", {"x": ["1", "2"], "y": ["z"]})
    assert a.headers["x-custom"] == "Yes" and a.json == {"k": "v"}
    assert b.headers["transfer-encoding"] == "chunked" and b.json == {"part": "two"}
    assert len(srv.connections) == 1 and a.connection_id == b.connection_id  # keep-alive
    assert srv.connections[0].closed_by == "peer" and len(srv.connections[0].requests) == 2


async def test_http_per_write_control_and_abort():
    async def handler(req: Request, resp: Response) -> None:
        await resp.start(200, {"content-type": "text/plain"})
        for part in (b"one", b"two", b"three"):
            await resp.write(part)
            await asyncio.sleep(0.02)
        if req.path == "/abort":
            await resp.abort()
        else:
            await resp.end()

    async with MockServer(handler) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        async with c.stream("GET", "/ok") as r:
            pieces = [p async for p in r.aiter_raw()]
        assert pieces == [b"one", b"two", b"three"]
        got = []
        with pytest.raises(httpx.RemoteProtocolError):
            async with c.stream("GET", "/abort") as r:
                async for p in r.aiter_raw():
                    got.append(p)
        assert got == [b"one", b"two", b"three"]
        assert srv.connection(srv.requests[-1].connection_id).closed_by == "server"


async def test_http_peer_close_detected_promptly_and_handler_cancelled():
    cancelled = asyncio.Event()

    async def handler(req: Request, resp: Response) -> None:
        await resp.start(200, {"content-type": "text/event-stream"})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with MockServer(handler) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        async with c.stream("GET", "/hang") as r:
            assert r.status_code == 200
            t0 = time.monotonic()
        rec = await srv.wait_connection_closed(timeout=2)
        assert rec.closed_by_peer and rec.closed_at - t0 < 0.1
        await asyncio.wait_for(cancelled.wait(), 1)


async def test_http_multipart_raw_socket_expect_continue_and_http10():
    async def handler(req: Request, resp: Response) -> None:
        if req.path == "/form":
            form = req.form()
            await resp.send(200, {"content-type": "application/json"}, json.dumps(
                {"names": form.names(), "file": form.get("file").filename, "size": len(form.get("file").data),
                 "ct": form.get("file").content_type, "gran": form.values("g[]")}))
        else:
            await resp.send(200, {"content-type": "text/plain"}, req.body)

    async with MockServer(handler) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as c:
            r = await c.post("/form", data={"model": "m", "g[]": ["a", "b"]},
                             files={"file": ("clip.wav", b"\x00\r\n--x" * 10, "audio/wav")})
            assert r.json() == {"names": ["model", "g[]", "g[]", "file"], "file": "clip.wav", "size": 60,
                                "ct": "audio/wav", "gran": ["a", "b"]}
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 5" in head
        assert await reader.readexactly(5) == b"abcde"
        writer.write(b"GET /x HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive: server closes
        assert b"connection: close" in await reader.read()
        writer.close()
        assert srv.connections[-1].closed_by == "server"
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400 Bad Request")
        writer.close()


def test_server_thread_for_sync_code():
    st = ServerThread(om.OpenAIMock())
    with st as mock:
        r = httpx.post(mock.base_url + "/chat/completions", json=chat("sync"), headers=AUTH)
        assert r.json()["choices"][0]["message"]["content"] == "Echo: sync"
        assert st.call(mock.wait_connection_closed(2)).closed_by_peer


async def test_auth_errors_and_headers(mock, client):
    r = await client.get("/models", headers={"authorization": "Bearer sk-wrong-key-123456"})
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", None, "invalid_api_key")
    assert "sk-wrong-key-123456" not in err["message"] and "3456" in err["message"]
    r = await client.get("/models", headers={"authorization": ""})
    assert r.status_code == 401 and "didn't provide an API key" in r.json()["error"]["message"]
    r = await client.get("/models")
    assert r.status_code == 200 and r.headers["x-request-id"].startswith("req_")
    assert r.headers["openai-version"] == "2020-10-01" and "x-ratelimit-remaining-requests" in r.headers
    r = await client.post("/nope", json={})
    assert r.status_code == 404 and r.json()["error"]["message"] == "Invalid URL (POST /v1/nope)"
    r = await client.get("/chat/completions")
    assert r.status_code == 405


async def test_organization_header():
    async with om.OpenAIMock(api_keys=None, organization="org-good") as m, \
            httpx.AsyncClient(base_url=m.base_url, headers={"authorization": "Bearer anything"}) as c:
        r = await c.get("/models", headers={"openai-organization": "org-good", "openai-project": "proj_1"})
        assert r.status_code == 200 and r.headers["openai-organization"] == "org-good"
        assert r.headers["openai-project"] == "proj_1"
        r = await c.get("/models", headers={"openai-organization": "org-bad"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "mismatched_organization"


async def test_models_and_unknown_model(client):
    data = (await client.get("/models")).json()
    assert data["object"] == "list" and {"id": "gpt-4o", "object": "model", "created": 1715367049,
                                         "owned_by": "system"} in data["data"]
    assert (await client.get("/models/whisper-1")).json()["id"] == "whisper-1"
    r = await client.get("/models/gpt-9")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = await client.post("/chat/completions", json=chat(model="gpt-9"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = await client.post("/chat/completions", json=chat(model="gpt-3.5-turbo-instruct"))
    assert r.status_code == 404 and "not a chat model" in r.json()["error"]["message"]


async def test_chat_non_stream_echo_and_usage_matches_stream(mock, client):
    r = await client.post("/chat/completions", json=chat("héllo there"))
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-2024-08-06"
    msg = body["choices"][0]["message"]
    assert msg["content"] == mock.expected_reply("héllo there") == "Echo: héllo there"
    assert body["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in msg
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    _, raw = await stream_raw(client, "/chat/completions",
                              chat("héllo there", stream=True, stream_options={"include_usage": True}))
    evs = data_events(raw)
    assert evs[-1] == "[DONE]"
    chunks = evs[:-1]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]) == "Echo: héllo there"
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    _, raw = await stream_raw(client, "/chat/completions", chat("x", stream=True))
    assert all("usage" not in c for c in data_events(raw)[:-1])  # no usage without include_usage


async def test_default_stream_style_is_adversarial(client):
    pieces, raw = await stream_raw(client, "/chat/completions", chat("naïve café " * 3, stream=True))
    assert b"\r\n\r\n" in raw and b": keep-alive" in raw
    assert any(not p.endswith(b"\n") for p in pieces)  # an event split across writes
    assert any(p.endswith(b"\r") for p in pieces)  # ... even between CR and LF
    assert any(p.count(b"data:") >= 2 for p in pieces)  # several events in one write
    with pytest.raises(UnicodeDecodeError):  # ... and inside a multi-byte character
        for p in pieces:
            p.decode("utf-8")
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in data_events(raw)[:-1]) \
        == "Echo: " + "naïve café " * 3


async def test_plain_style_and_sdk_streaming_through_chaotic_style(mock, sdk):
    stream = await sdk.chat.completions.create(**chat("hi ünïcode"), stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: hi ünïcode"
    mock.stream_style = om.StreamStyle.plain()
    async with httpx.AsyncClient(base_url=mock.base_url, headers=AUTH) as c:
        pieces, raw = await stream_raw(c, "/chat/completions", chat("hi", stream=True))
    assert b"\r" not in raw and b":" not in raw.replace(b"data:", b"").split(b"{")[0]
    assert all(p.endswith(b"\n\n") and p.count(b"data:") == 1 for p in pieces)


async def test_streamed_tool_call_fragments(client):
    _, raw = await stream_raw(client, "/chat/completions", chat("Paris", stream=True, tools=[WEATHER, TIME]))
    chunks = data_events(raw)[:-1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    frags = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert len(frags) > 5 and {f["index"] for f in frags} == {0}
    head, rest = frags[0], frags[1:]
    assert head["id"].startswith("call_") and head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in rest)
    args = [f["function"]["arguments"] for f in rest]
    i = next(k for k, a in enumerate(args) if a.endswith("\\u00"))
    assert args[i + 1].startswith("e9")
    assert any(a.count('"') == 1 for a in args)  # split inside a string
    full = "".join(args)
    assert json.loads(full) == om.expected_tool_arguments(WEATHER["function"]["parameters"], "Paris") \
        == {"city": "Paris café", "days": 5}


async def test_parallel_tool_calls_interleaved_and_sdk_reassembly(client, sdk):
    body = chat("Rome", stream=True, tools=[WEATHER, TIME], parallel_tool_calls=True)
    _, raw = await stream_raw(client, "/chat/completions", body)
    frags = [tc for c in data_events(raw)[:-1] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    order = [f["index"] for f in frags]
    assert order[:4] == [0, 1, 0, 1]
    heads = [f for f in frags if "id" in f]
    assert [h["index"] for h in heads] == [0, 1] and heads[0]["id"] != heads[1]["id"]
    # the SDK's own accumulation gives valid JSON arguments
    async with sdk.chat.completions.stream(**{k: v for k, v in body.items() if k != "stream"}) as s:
        async for _ in s:
            pass
        final = await s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Rome café", "days": 4}
    assert json.loads(calls[1].function.arguments) == {"tz": "UTC"}
    r = await sdk.chat.completions.create(**chat("Rome", tools=[WEATHER]))
    assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None


async def test_tool_result_turn_and_sequencing_validation(client):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    r = await client.post("/chat/completions", json={"model": "gpt-4o", "messages": msgs, "tools": [WEATHER]})
    assert r.json()["choices"][0]["message"]["content"] == "Tool result received: sunny"
    r = await client.post("/chat/completions", json={"model": "gpt-4o", "messages": msgs[:2]})
    assert r.status_code == 400 and "call_1" in r.json()["error"]["message"]
    r = await client.post("/chat/completions", json={"model": "gpt-4o", "messages": [msgs[0], msgs[2]]})
    assert r.status_code == 400 and "must be a response to a preceeding message" in r.json()["error"]["message"]


@pytest.mark.parametrize("patch, param, code", [
    ({"messages": None}, "messages", "missing_required_parameter"),
    ({"messages": []}, "messages", "empty_array"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
     "tools[0].function.parameters", "invalid_function_parameters"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
     "response_format.json_schema.name", "missing_required_parameter"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "response_format.json_schema.schema", "missing_required_parameter"),
    ({"stream_options": {"include_usage": True}}, "stream_options", None),
    ({"model": "o3-mini", "max_tokens": 5}, "max_tokens", "unsupported_parameter"),
    ({"temperature": 3}, "temperature", "invalid_value"),
])
async def test_chat_validation(client, patch, param, code):
    body = chat(**{k: v for k, v in patch.items() if v is not None})
    if patch.get("messages", 1) is None:
        del body["messages"]
    r = await client.post("/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, code)


async def test_response_formats_stop_max_tokens_and_n(client):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                               "tags": {"type": "array", "items": {"type": "string"}}}}
    r = await client.post("/chat/completions", json=chat("Bob", response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}))
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"name": "Bob", "age": 3, "tags": ["Bob"]}
    r = await client.post("/chat/completions", json=chat("no j-word", response_format={"type": "json_object"}))
    assert r.status_code == 400
    r = await client.post("/chat/completions", json=chat("give json", response_format={"type": "json_object"}))
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"reply": "Echo: give json"}
    r = (await client.post("/chat/completions", json=chat("one two three", stop=["two"]))).json()
    assert r["choices"][0]["message"]["content"] == "Echo: one " and r["choices"][0]["finish_reason"] == "stop"
    r = (await client.post("/chat/completions", json=chat("a long sentence here", max_completion_tokens=2))).json()
    assert r["choices"][0]["message"]["content"] == "Echo: a " and r["choices"][0]["finish_reason"] == "length"
    r = (await client.post("/chat/completions", json=chat("x", n=2))).json()
    assert [c["index"] for c in r["choices"]] == [0, 1]


async def test_legacy_completions(client):
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}
    r = (await client.post("/completions", json=body)).json()
    assert r["object"] == "text_completion" and r["choices"][0]["text"] == " Echo: Say hi"
    assert r["choices"][0]["finish_reason"] == "stop" and r["usage"]["total_tokens"] > 0
    r = (await client.post("/completions", json={**body, "prompt": "word " * 40})).json()
    assert r["choices"][0]["finish_reason"] == "length" and len(r["choices"][0]["text"]) == 64  # max_tokens 16
    _, raw = await stream_raw(client, "/completions", {**body, "stream": True, "stream_options": {"include_usage": True}})
    chunks = data_events(raw)[:-1]
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == " Echo: Say hi"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    r = await client.post("/completions", json={"model": "gpt-4o", "prompt": "x"})
    assert r.status_code == 404 and "chat model" in r.json()["error"]["message"]


async def test_embeddings_float_base64_dimensions_and_order(mock, client, sdk):
    base = {"model": "text-embedding-3-small", "input": ["alpha", "beta"]}
    f = (await client.post("/embeddings", json={**base, "encoding_format": "float"})).json()
    b = (await client.post("/embeddings", json=base)).json()  # omitted → base64
    assert isinstance(b["data"][0]["embedding"], str)
    dec = list(struct.unpack("<1536f", base64.b64decode(b["data"][1]["embedding"])))
    assert dec == f["data"][1]["embedding"] == om.expected_embedding("beta", 1536)
    assert f["usage"] == {"prompt_tokens": 3, "total_tokens": 3} and f["model"] == "text-embedding-3-small"
    d = (await client.post("/embeddings", json={**base, "encoding_format": "float", "dimensions": 8})).json()
    assert len(d["data"][0]["embedding"]) == 8 and abs(sum(x * x for x in d["data"][0]["embedding"]) - 1) < 1e-5
    res = await sdk.embeddings.create(model="text-embedding-3-small", input="alpha")  # SDK asks for base64
    assert mock.requests[-1].json["encoding_format"] == "base64"
    assert res.data[0].embedding == pytest.approx(f["data"][0]["embedding"])
    mock.enqueue(om.embeddings_out_of_order())
    o = (await client.post("/embeddings", json={**base, "encoding_format": "float"})).json()
    assert [x["index"] for x in o["data"]] == [1, 0]
    r = await client.post("/embeddings", json={"model": "text-embedding-ada-002", "input": "x", "dimensions": 8})
    assert r.status_code == 400
    r = await client.post("/embeddings", json={**base, "input": ""})
    assert r.status_code == 400
    t = (await client.post("/embeddings", json={**base, "input": [[1, 2, 3]], "encoding_format": "float"})).json()
    assert t["usage"]["prompt_tokens"] == 3


def wav_bytes(seconds: float) -> bytes:
    pcm = b"\x00\x00" * int(16000 * seconds)
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000,
            32000, 2, 16) + b"data" + struct.pack("<I", len(pcm)) + pcm)


async def test_transcriptions(client, sdk):
    files = {"file": ("a.wav", wav_bytes(1.5), "audio/wav")}
    r = await client.post("/audio/transcriptions", data={"model": "whisper-1"}, files=files)
    assert r.json()["text"] == "Mock transcription of a.wav, 1.50 seconds."
    r = await client.post("/audio/transcriptions", data={"model": "whisper-1", "response_format": "text"},
                          files={"file": ("t.mp3", b"hello world", "audio/mpeg")})
    assert r.headers["content-type"].startswith("text/plain") and r.text == "hello world\n"
    r = await client.post("/audio/transcriptions", files=files, data={
        "model": "whisper-1", "response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]})
    v = r.json()
    assert v["task"] == "transcribe" and v["duration"] == 1.5 and len(v["segments"]) == 1 and len(v["words"]) == 6
    r = await client.post("/audio/transcriptions", data={"model": "whisper-1", "response_format": "srt"}, files=files)
    assert "00:00:00,000 --> 00:00:01,500" in r.text
    r = await client.post("/audio/transcriptions", data={"model": "whisper-1"},
                          files={"file": ("x.txt", b"hi", "text/plain")})
    assert r.status_code == 400 and "Invalid file format" in r.json()["error"]["message"]
    t = await sdk.audio.transcriptions.create(model="gpt-4o-transcribe", file=("b.ogg", b"from sdk", "audio/ogg"))
    assert t.text == "from sdk"


@pytest.mark.parametrize("fmt, ctype, magic", [("mp3", "audio/mpeg", b"ID3"), ("opus", "audio/opus", b"OggS"),
                                               ("aac", "audio/aac", b"\xff\xf1"), ("flac", "audio/flac", b"fLaC"),
                                               ("wav", "audio/wav", b"RIFF"), ("pcm", "audio/pcm", b"")])
async def test_speech_formats(client, fmt, ctype, magic):
    body = {"model": "tts-1", "input": "Hello there, this is a test." * 3, "voice": "alloy", "response_format": fmt}
    async with client.stream("POST", "/audio/speech", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"] == ctype
        assert r.headers["transfer-encoding"] == "chunked"
        pieces = [p async for p in r.aiter_raw()]
    audio = b"".join(pieces)
    assert audio.startswith(magic) and len(pieces) > 1
    if fmt == "wav":
        assert struct.unpack("<I", audio[24:28])[0] == 24000 and len(audio) - 44 == struct.unpack("<I", audio[40:44])[0]


async def test_speech_sse_and_validation(client):
    body = {"model": "gpt-4o-mini-tts", "input": "hi", "voice": "coral", "stream_format": "sse"}
    _, raw = await stream_raw(client, "/audio/speech", body)
    evs = data_events(raw)
    assert evs[0]["type"] == "speech.audio.delta" and evs[-1]["type"] == "speech.audio.done"
    r = await client.post("/audio/speech", json={**body, "voice": "nobody"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "voice"


async def test_moderations(client, sdk):
    r = (await client.post("/moderations", json={"input": ["I will kill it", "nice day"]})).json()
    assert r["id"].startswith("modr-") and len(r["results"]) == 2
    bad, good = r["results"]
    assert bad["flagged"] and bad["categories"]["violence"] and bad["categories"]["harassment/threatening"]
    assert not good["flagged"] and not any(good["categories"].values())
    assert set(bad["categories"]) == set(bad["category_scores"]) == set(om.MODERATION_CATEGORIES)
    assert {"self-harm/instructions", "sexual/minors", "illicit/violent"} <= set(bad["categories"])
    assert bad["category_scores"]["violence"] > 0.9 > good["category_scores"]["violence"]
    assert bad["category_applied_input_types"]["violence"] == ["text"]
    m = await sdk.moderations.create(model="omni-moderation-latest", input=[
        {"type": "text", "text": "gore"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
    res = m.results[0]
    assert res.flagged and res.category_applied_input_types.violence == ["text", "image"]
    assert res.category_applied_input_types.hate == ["text"]


async def test_rate_limit_then_sdk_retry(mock, client):
    mock.enqueue(om.rate_limit(retry_after=2, retry_after_ms=20), path="/chat/completions")
    await client.get("/models")  # path filter: not consumed here
    r = await client.post("/chat/completions", json=chat())
    assert r.status_code == 429 and r.headers["retry-after"] == "2" and r.headers["retry-after-ms"] == "20"
    assert r.headers["x-ratelimit-remaining-requests"] == "0" and r.json()["error"]["code"] == "rate_limit_exceeded"
    mock.enqueue(om.rate_limit(retry_after_ms=10), times=2)
    async with openai.AsyncOpenAI(base_url=mock.base_url, api_key=KEY, max_retries=2) as c:
        t0 = time.monotonic()
        res = await c.chat.completions.create(**chat("retry me"))
    assert res.choices[0].message.content == "Echo: retry me" and time.monotonic() - t0 < 1.5
    assert [q.headers.get("x-stainless-retry-count") for q in mock.requests[-3:]] == ["0", "1", "2"]


@pytest.mark.parametrize("scenario, code, check", [
    (om.status(500, html=True), 500, lambda r: r.headers["content-type"] == "text/html" and "<html>" in r.text),
    (om.status(503), 503, lambda r: r.content == b""),
    (om.status(401), 401, lambda r: r.json()["error"]["code"] == "invalid_api_key"),
    (om.context_length_exceeded(), 400, lambda r: r.json()["error"]["code"] == "context_length_exceeded"),
    (om.status(500), 500, lambda r: r.json()["error"]["type"] == "server_error"),
    (om.raw_response(418, {"content-type": "text/plain"}, "teapot"), 418, lambda r: r.text == "teapot"),
])
async def test_status_scenarios(mock, client, scenario, code, check):
    mock.enqueue(scenario)
    r = await client.post("/chat/completions", json=chat())
    assert r.status_code == code and check(r)
    assert (await client.post("/chat/completions", json=chat())).status_code == 200  # consumed once


async def test_sdk_error_mapping(mock, sdk):
    for sc, exc in ((om.status(401), openai.AuthenticationError), (om.status(404), openai.NotFoundError),
                    (om.context_length_exceeded(), openai.BadRequestError), (om.status(503), openai.InternalServerError)):
        mock.enqueue(sc)
        with pytest.raises(exc):
            await sdk.chat.completions.create(**chat())


async def test_stream_error_after(mock, client, sdk):
    mock.enqueue(om.stream_error_after(2))
    _, raw = await stream_raw(client, "/chat/completions", chat("a b c d", stream=True))
    evs = data_events(raw)
    assert len(evs) == 3 and evs[2]["error"]["type"] == "server_error" and "[DONE]" not in evs
    mock.enqueue(om.stream_error_after(3))
    got = []
    with pytest.raises(openai.APIError):
        async for c in await sdk.chat.completions.create(**chat("a b c d"), stream=True):
            got.append(c)
    assert len(got) == 3


async def test_truncation_variants(mock, client):
    mock.enqueue(om.truncate_after(3))
    with pytest.raises(httpx.RemoteProtocolError):
        await stream_raw(client, "/chat/completions", chat("a b c d e", stream=True))
    mock.enqueue(om.truncate_after(2, mid_line=True, clean_eof=True))
    _, raw = await stream_raw(client, "/chat/completions", chat("a b c d e", stream=True))
    assert raw.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].startswith(b"data: {") and not raw.endswith(b"\n")
    assert b"[DONE]" not in raw and len(parse_sse(raw)) == 2  # the unterminated fragment is no event
    mock.enqueue(om.truncate_after(0))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/chat/completions", json=chat())


async def test_slow_first_byte_and_slow_stream(mock, client):
    mock.enqueue(om.slow_first_byte(0.3))
    t0 = time.monotonic()
    r = await client.post("/chat/completions", json=chat())
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.3
    mock.enqueue(om.slow_first_byte(0.3))
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/chat/completions", json=chat(), timeout=0.1)
    mock.enqueue(om.slow_stream(0.05))
    t0 = time.monotonic()
    await stream_raw(client, "/chat/completions", chat("a b", stream=True))
    assert time.monotonic() - t0 >= 0.2


async def test_hang_and_client_cancellation_closes_connection_quickly(mock, client):
    mock.enqueue(om.hang())
    async with client.stream("POST", "/chat/completions", json=chat(stream=True)) as r:
        assert r.status_code == 200
        t0 = time.monotonic()
    rec = await mock.wait_connection_closed(timeout=2)
    assert rec.closed_by_peer and rec.closed_at - t0 < 0.1
    mock.enqueue(om.hang(send_headers=False))
    task = asyncio.ensure_future(client.post("/chat/completions", json=chat()))
    await mock.wait_requests(len(mock.requests) + 1)
    t0 = time.monotonic()
    task.cancel()
    rec = await mock.wait_connection_closed(timeout=2)
    assert rec.closed_by_peer and rec.closed_at - t0 < 0.1


async def test_stream_shape_scenarios(mock, client, sdk):
    mock.enqueue(om.first_chunk_empty_choices() | om.finish_length())
    _, raw = await stream_raw(client, "/chat/completions", chat("abcdefgh", stream=True))
    chunks = data_events(raw)[:-1]
    assert chunks[0]["choices"] == [] and "prompt_filter_results" in chunks[0]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[1:]) == "Echo: a"
    mock.enqueue(om.content_filter())
    r = await sdk.chat.completions.create(**chat("abcdefgh"))
    assert r.choices[0].finish_reason == "content_filter" and r.choices[0].message.content == "Echo: a"
    mock.enqueue(om.finish_length(), path="/chat/completions")
    _, raw = await stream_raw(client, "/chat/completions", chat("Paris", stream=True, tools=[WEATHER]))
    args = "".join(tc["function"]["arguments"] for c in data_events(raw)[:-1]
                   for tc in c["choices"][0]["delta"].get("tool_calls", []))
    with pytest.raises(json.JSONDecodeError):
        json.loads(args)
    mock.stream_style = om.StreamStyle.plain()
    mock.enqueue(om.keepalive_comments_and_crlf())
    _, raw = await stream_raw(client, "/chat/completions", chat(stream=True))
    assert b": keep-alive\r\n" in raw


async def test_reply_and_raw_sse_scenarios(mock, client, sdk):
    mock.enqueue(om.reply(content="scripted", tool_calls=[{"name": "get_time", "arguments": {"tz": "CET"}}]))
    r = await sdk.chat.completions.create(**chat("x", tools=[TIME]))
    msg = r.choices[0].message
    assert msg.content == "scripted" and msg.tool_calls[0].function.arguments == '{"tz":"CET"}'
    assert r.choices[0].finish_reason == "tool_calls"
    mock.enqueue(om.raw_sse([{"choices": [{"index": 0, "delta": {"content": "raw"}}]}], done=False))
    _, raw = await stream_raw(client, "/chat/completions", chat(stream=True))
    assert data_events(raw) == [{"choices": [{"index": 0, "delta": {"content": "raw"}}]}]
    assert len(mock.consumed) == 2 and not mock.pending
