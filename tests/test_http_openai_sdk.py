"""The OpenAI-compatible HTTP endpoint, driven by the official `openai` SDK (sync and async).

Upstream is the faithful OpenAI mock; the endpoint runs in the same event loop and on the same
runtime as the gRPC server, exactly as `serve()` wires it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import wave

import httpx
import openai
import pytest

from server.app import start_server
from server.config import Config, EgressConfig, GrpcConfig, HttpConfig, ProviderCredentials
from server.http.app import start_http
from tests.mocks.httpserver import MockServer
from tests.mocks.openai_media import encode_audio, expected_embedding, pcm_for
from tests.mocks.openai_mock import (
    OpenAIMock,
    expected_tool_arguments,
    hang,
    rate_limit,
    slow_stream,
    status,
    stream_error_after,
)

KEY = "sk-test-0123456789abcdef"
RERANK_KEY = "rr-key"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": WEATHER}}


def _config(providers: dict, allow_request_credentials: bool = False) -> Config:
    return Config(
        grpc=GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.5),
        http=HttpConfig(enabled=True, host="127.0.0.1", port=0, allow_request_credentials=allow_request_credentials),
        egress=EgressConfig(allowed_cidrs=["127.0.0.1/32"], retries=1, connect_timeout=5, read_timeout=30),
        providers=providers,
    )


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


@pytest.fixture(scope="module")
async def rerank_upstream():
    async def handler(req, resp):
        if req.headers.get("authorization") != f"Bearer {RERANK_KEY}":
            await resp.send(401, {"content-type": "application/json"}, b'{"error":{"message":"bad key"}}')
            return
        body = req.json
        scored = [{"index": i, "relevance_score": round(len(set(body["query"]) & set(d)) / 10, 3)}
                  for i, d in enumerate(body["documents"])]
        await resp.send(200, {"content-type": "application/json"},
                        json.dumps({"model": body["model"], "results": scored}).encode())

    async with MockServer(handler) as srv:
        yield srv


@pytest.fixture(scope="module")
async def servers(mock):
    """(main endpoint URL, open endpoint URL): main has server-side OpenAI credentials; open has
    none but accepts X-Provider-Credentials. Both share one runtime with the gRPC server."""
    config = _config({"openai": ProviderCredentials(credentials={"openai_api_key": KEY, "openai_api_base": mock.url})})
    running = await start_server(config)
    main = await start_http(config, running.runtime)
    open_ = await start_http(_config({}, allow_request_credentials=True), running.runtime)
    yield f"http://127.0.0.1:{main.port}", f"http://127.0.0.1:{open_.port}"
    await open_.stop()
    await main.stop()
    await running.stop(0)


@pytest.fixture(scope="module")
def base(servers) -> str:
    return servers[0]


@pytest.fixture(scope="module")
async def aclient(base):
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="ignored", max_retries=0)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def client(base):
    client = openai.OpenAI(base_url=base + "/v1", api_key="ignored", max_retries=0)
    yield client
    client.close()


def wav_bytes(seconds: float = 0.5) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x01\x00" * int(16000 * seconds))
    return buffer.getvalue()


# ---- models ----------------------------------------------------------------------------------


async def test_models_listed_in_both_forms(aclient, base):
    ids = [m.id async for m in aclient.models.list()]
    for expected in ("openai/gpt-4o", "openai/text-embedding-3-small", "openai/whisper-1", "openai/tts-1",
                     "openai/omni-moderation-latest"):
        assert expected in ids
    assert all(i.startswith("openai/") for i in ids)  # only providers with server credentials
    assert (await aclient.models.retrieve("openai/gpt-4o")).owned_by == "openai"
    async with openai.AsyncOpenAI(base_url=base + "/openai/v1", api_key="x", max_retries=0) as scoped:
        bare = [m.id async for m in scoped.models.list()]
    assert "gpt-4o" in bare and not any("/" in i for i in bare)


# ---- chat ------------------------------------------------------------------------------------


async def test_chat_plain_sync_client_passes_parameters(client, mock):
    completion = await asyncio.to_thread(
        client.chat.completions.create, model="openai/gpt-4o",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        temperature=0.5, max_tokens=100, seed=7, stop="END", user="u-1", logit_bias={"50256": -100},
    )
    assert completion.choices[0].message.content == mock.expected_reply("hello there")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "openai/gpt-4o-2024-08-06"
    u = completion.usage
    assert u.prompt_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.model_extra["cost"] > 0  # the runtime's price rides along
    sent = mock.requests[-1].json
    assert sent["model"] == "gpt-4o" and sent["temperature"] == 0.5 and sent["max_tokens"] == 100
    assert sent["seed"] == 7 and sent["stop"] == ["END"] and sent["user"] == "u-1"
    assert "logit_bias" not in sent  # no rule for it on this model: dropped (Dify semantics)


async def test_chat_provider_path_form_and_max_completion_tokens(base, mock):
    async with openai.AsyncOpenAI(base_url=base + "/openai/v1", api_key="x", max_retries=0) as scoped:
        completion = await scoped.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=50,
        )
    assert completion.model == "gpt-4o-2024-08-06"  # bare names in the provider form
    assert completion.choices[0].message.content == mock.expected_reply("hi")
    assert mock.requests[-1].json["max_tokens"] == 50  # gpt-4o's rule is max_tokens


async def test_chat_stream_with_include_usage(aclient, mock):
    stream = await aclient.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "stream this please"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == mock.expected_reply("stream this please")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_chat_stream_without_usage_has_no_usage_chunk(client):
    def run():
        stream = client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
        return list(stream)

    chunks = await asyncio.to_thread(run)
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage is None


async def test_stream_tool_calls_reassembled_by_sdk_helper(aclient):
    async with aclient.chat.completions.stream(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "Paris please"}], tools=[WEATHER_TOOL],
        tool_choice="auto",
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id and call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == expected_tool_arguments(WEATHER, "Paris please")


async def test_tool_round_trip_non_stream(aclient, mock):
    first = await aclient.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "Oslo"}], tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = first.choices[0].message.tool_calls[0]
    assert mock.requests[-1].json["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    second = await aclient.chat.completions.create(
        model="openai/gpt-4o", tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Oslo"},
                  {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                  {"role": "tool", "tool_call_id": call.id, "content": "12 C"}],
    )
    sent = mock.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[2] == {"role": "tool", "tool_call_id": call.id,
                                                                     "content": "12 C"}
    assert "12 C" in second.choices[0].message.content


async def test_response_format_json_schema_reaches_upstream(aclient, mock):
    schema = {"name": "city", "schema": {"type": "object", "properties": {"name": {"type": "string"}},
                                         "required": ["name"]}, "strict": True}
    completion = await aclient.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "a city"}],
        response_format={"type": "json_schema", "json_schema": schema},
    )
    assert mock.requests[-1].json["response_format"] == {"type": "json_schema", "json_schema": schema}
    assert isinstance(json.loads(completion.choices[0].message.content), dict)
    await aclient.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_object"},
    )
    assert mock.requests[-1].json["response_format"] == {"type": "json_object"}


async def test_image_url_parts_data_and_http(aclient, mock):
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    await aclient.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}])
    parts = mock.requests[-1].json["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "what is this"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": png, "detail": "low"}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}


# ---- errors ----------------------------------------------------------------------------------


async def test_upstream_401_is_sdk_authentication_error(aclient, mock):
    mock.enqueue(status(401), path="/chat/completions")
    with pytest.raises(openai.AuthenticationError) as info:
        await aclient.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401 and info.value.type == "authentication_error"
    assert info.value.response.headers["x-model-runtime-error"] == "InvokeAuthorizationError"
    assert KEY not in info.value.message


async def test_upstream_429_is_rate_limit_error_with_retry_after(client, aclient, mock):
    mock.enqueue(rate_limit(retry_after=2), path="/chat/completions")
    with pytest.raises(openai.RateLimitError) as info:
        await asyncio.to_thread(client.chat.completions.create, model="openai/gpt-4o",
                                messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.code == "rate_limit_exceeded"
    # Streamed requests too: no 200 goes out before the provider accepted the request.
    mock.enqueue(rate_limit(retry_after=1.2), path="/chat/completions")
    with pytest.raises(openai.RateLimitError) as info:
        await aclient.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}],
                                              stream=True)
    assert info.value.response.headers["retry-after"] == "2"  # integer seconds, rounded up


async def test_out_of_range_parameter_is_bad_request_naming_the_field(aclient):
    with pytest.raises(openai.BadRequestError) as info:
        await aclient.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}],
                                              temperature=5)
    assert info.value.param == "temperature" and info.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as info:
        await aclient.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}],
                                              max_completion_tokens=10**7)
    assert info.value.param == "max_completion_tokens"


async def test_unknown_model_and_provider_are_not_found(aclient):
    with pytest.raises(openai.NotFoundError) as info:  # the provider answers 404 model_not_found
        await aclient.chat.completions.create(model="openai/gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await aclient.chat.completions.create(model="nope/gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as info:
        await aclient.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.param == "model"


async def test_provider_without_credentials_is_401(aclient):
    with pytest.raises(openai.AuthenticationError) as info:
        await aclient.chat.completions.create(model="openai_api_compatible/m", messages=[{"role": "user", "content": "x"}])
    assert "No credentials are configured" in info.value.message


async def test_error_inside_200_stream_becomes_sdk_api_error(aclient, mock):
    mock.enqueue(stream_error_after(2), path="/chat/completions")
    received = []
    stream = await aclient.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "one two three four five six"}], stream=True)
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            received.append(chunk)
    assert received and not isinstance(info.value, openai.APIStatusError)
    assert "The server had an error" in info.value.message
    assert info.value.type == "server_error"


async def test_bad_json_and_unknown_route(base):
    async with httpx.AsyncClient(base_url=base) as http:
        # JSON Content-Type: without one the request is refused (415) before the JSON is parsed
        r = await http.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        r = await http.post("/v1/nothing", json={})
        assert r.status_code == 404 and "Invalid URL" in r.json()["error"]["message"]
        r = await http.get("/v1/chat/completions")
        assert r.status_code == 405


# ---- cancellation ------------------------------------------------------------------------------


async def test_client_disconnect_mid_stream_closes_upstream(base, mock):
    mock.enqueue(slow_stream(0.25), path="/chat/completions")
    words = " ".join(f"w{i}" for i in range(40))
    body = {"model": "openai/gpt-4o", "stream": True, "messages": [{"role": "user", "content": words}]}
    async with (httpx.AsyncClient(base_url=base, timeout=10) as http,
                http.stream("POST", "/v1/chat/completions", json=body) as response):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break  # one event, then hang up
    record = await mock.wait_connection_closed(timeout=3.0)
    assert record.closed_by_peer
    assert record.closed_at - record.opened_at < 5.0  # long before the 10 s stream would have ended


async def test_client_disconnect_before_headers_cancels_upstream(base, mock):
    mock.enqueue(hang(), path="/chat/completions")
    seen = len(mock.requests)
    http = httpx.AsyncClient(base_url=base, timeout=30)
    request = asyncio.ensure_future(http.post("/v1/chat/completions", json={
        "model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]}))
    await mock.wait_requests(seen + 1)
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    await http.aclose()
    record = await mock.wait_connection_closed(timeout=3.0)
    assert record.closed_by_peer


# ---- embeddings, rerank ---------------------------------------------------------------------------


async def test_embeddings_sdk_default_base64_and_float(client, aclient):
    texts = ["first text", "second text"]
    default = await aclient.embeddings.create(model="openai/text-embedding-3-small", input=texts, dimensions=8)
    assert [d.embedding for d in default.data] == [expected_embedding(t, 8) for t in texts]
    assert default.usage.total_tokens > 0 and default.model == "openai/text-embedding-3-small"
    floats = await asyncio.to_thread(client.embeddings.create, model="openai/text-embedding-3-small",
                                     input="first text", encoding_format="float")
    assert floats.data[0].embedding == expected_embedding("first text", 1536)


async def test_embeddings_raw_base64_is_little_endian_float32(base):
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/openai/v1/embeddings", json={
            "model": "text-embedding-3-small", "input": "abc", "dimensions": 4, "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert list(struct.unpack("<4f", raw)) == expected_embedding("abc", 4)


async def test_rerank_with_request_credentials(servers, rerank_upstream):
    open_base = servers[1]
    creds = json.dumps({"endpoint_url": rerank_upstream.url + "/v1", "api_key": RERANK_KEY, "context_size": "512"})
    body = {"model": "openai_api_compatible/bge-reranker", "query": "abc",
            "documents": ["xyz", {"text": "abcdef"}, "ab"], "top_n": 2}
    async with httpx.AsyncClient(base_url=open_base) as http:
        r = await http.post("/v1/rerank", json=body)
        assert r.status_code == 401 and "X-Provider-Credentials" in r.json()["error"]["message"]
        r = await http.post("/v1/rerank", json=body, headers={"X-Provider-Credentials": creds})
        assert r.status_code == 200, r.text
        out = r.json()
        assert [x["index"] for x in out["results"]] == [1, 2]
        assert out["results"][0]["document"] == {"text": "abcdef"}
        assert out["results"][0]["relevance_score"] >= out["results"][1]["relevance_score"]
        r = await http.post("/v1/rerank", json={**body, "return_documents": False},
                            headers={"X-Provider-Credentials": creds})
        assert "document" not in r.json()["results"][0]


async def test_rerank_unsupported_by_provider_is_400(aclient):
    with pytest.raises(openai.BadRequestError):
        await aclient.post("/rerank", cast_to=object, body={"model": "openai/gpt-4o", "query": "q", "documents": ["a"]})


# ---- audio, moderation --------------------------------------------------------------------------


async def test_transcription_multipart_json_and_text(client, aclient, mock):
    audio = wav_bytes(0.5)
    result = await aclient.audio.transcriptions.create(
        model="openai/whisper-1", file=("speech.wav", audio, "audio/wav"), language="en", prompt="names")
    assert result.text == "Mock transcription of audio.wav, 0.50 seconds."
    form = mock.requests[-1].form()
    assert form.value("language") == "en" and form.value("prompt") == "names"
    assert form.get("file").data == audio
    text = await asyncio.to_thread(client.audio.transcriptions.create, model="openai/whisper-1",
                                   file=("speech.wav", audio), response_format="text")
    assert text.strip() == "Mock transcription of audio.wav, 0.50 seconds."


async def test_speech_streams_audio_bytes(aclient):
    async with aclient.audio.speech.with_streaming_response.create(
        model="openai/tts-1", voice="alloy", input="Hello world", response_format="wav",
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        assert "content-length" not in response.headers  # streamed (chunked), not buffered
        received = b"".join([chunk async for chunk in response.iter_bytes()])
    assert received == encode_audio(pcm_for("Hello world", 1.0), "wav")


async def test_speech_sync_client_bytes(client):
    response = await asyncio.to_thread(client.audio.speech.create, model="openai/tts-1", voice="nova", input="Hi")
    assert response.content.startswith(b"ID3")  # the model's default audio type: mp3


async def test_moderation_results(aclient):
    result = await aclient.moderations.create(model="openai/omni-moderation-latest",
                                              input=["I will kill you", "what a nice day"])
    flagged, clean = result.results
    assert flagged.flagged and flagged.categories.violence and flagged.category_scores.violence > 0.9
    assert not clean.flagged and not clean.categories.violence
    assert result.model.startswith("openai/")


# ---- units ---------------------------------------------------------------------------------------


def test_multipart_parser_edge_cases():
    from server.http.multipart import parse_form

    body = (b"preamble\r\n--b0\"x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
            b"--b0\"x\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''caf%C3%A9.wav\r\n"
            b"Content-Type: audio/wav\r\n\r\nRIFF\r\n--b0\"\r\n\r\n--b0\"x\r\n"
            b"Content-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--b0\"x--\r\nepilogue")
    form = parse_form(body, 'multipart/form-data; boundary="b0\\"x"')
    assert form["model"].text() == "whisper-1" and form["empty"].data == b""
    assert form["file"].filename == "café.wav" and form["file"].content_type == "audio/wav"
    assert form["file"].data == b"RIFF\r\n--b0\"\r\n"  # a near-boundary inside the data stays data
    lf = b"--zz\nContent-Disposition: form-data; name=\"a\"\n\n1\n--zz--\n"
    assert parse_form(lf, "multipart/form-data; boundary=zz")["a"].data == b"1"


async def test_credentials_header_ignored_unless_allowed_and_model_retrieve_404(base):
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v1/chat/completions", headers={"X-Provider-Credentials": '{"api_key": "x"}'},
                            json={"model": "openai_api_compatible/m", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 401
        r = await http.get("/v1/models/openai/no-such-model")
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


async def test_malformed_request_credentials_are_400(servers):
    async with openai.AsyncOpenAI(base_url=servers[1] + "/v1", api_key="x", max_retries=0,
                                  default_headers={"X-Provider-Credentials": "{}"}) as c:
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "openai_api_key" in info.value.message
    assert info.value.response.headers["x-model-runtime-error"] == "CredentialsValidateFailedError"
