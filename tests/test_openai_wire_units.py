"""Unit tests of the OpenAI wire adapters for embeddings, rerank, audio and moderation.

The real :class:`Egress` is used with its client swapped for one on ``httpx.MockTransport``,
and schemas come from the real OpenAI provider YAML.
"""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import wave
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from engine._http._httpx import HttpxTransport
from engine._http.egress import Egress
from engine.adapter import CallContext
from engine.entities import AIModelEntity, FetchFrom, ModelType
from engine.errors import (
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeError,
    InvokeRateLimitError,
)
from engine.loader import load_provider
from engine.tokenizers import count_text
from providers.kit.audio import silent_wav, sniff_format
from providers.protocols.openai.audio import OpenAISpeech, OpenAITranscription
from providers.protocols.openai.embeddings import OpenAIEmbeddings
from providers.protocols.openai.moderation import OpenAIModeration
from providers.protocols.openai.options import OpenAIOptions
from providers.protocols.openai.rerank import OpenAIRerank

OPENAI = load_provider(Path(__file__).resolve().parents[1] / "providers" / "definitions" / "openai")
KEY = "sk-test-key"

Handler = Callable[[httpx.Request], Any]


class Recorder:
    """Collects requests and answers them with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        result = self.handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def json(self, i: int = 0) -> Any:
        return orjson.loads(self.requests[i].content)


def make_ctx(
    handler: Handler,
    model: str,
    model_type: ModelType,
    *,
    schema: AIModelEntity | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[CallContext, Recorder]:
    recorder = Recorder(handler)
    egress = Egress(transport=HttpxTransport(client=httpx.AsyncClient(transport=httpx.MockTransport(recorder))))
    if schema is None:
        schema = OPENAI.predefined(model_type, model)
    ctx = CallContext(
        provider_entity=OPENAI.entity, model=model, model_type=model_type, schema=schema,
        credentials={"openai_api_key": KEY}, http=egress,
        options=OpenAIOptions.model_validate({**OPENAI.entity.runtime, **(options or {})}),
    )
    return ctx, recorder


def custom_schema(model: str, model_type: ModelType, **props: Any) -> AIModelEntity:
    return AIModelEntity(model=model, model_type=model_type, fetch_from=FetchFrom.CUSTOMIZABLE_MODEL,
                         model_properties=props)


def b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_reply(request: httpx.Request, vector_of: Callable[[str], list[float]], *,
                     reverse: bool = False, as_b64: bool = True, usage: bool = True) -> httpx.Response:
    body = orjson.loads(request.content)
    data = [{"object": "embedding", "index": i,
             "embedding": b64(vector_of(t)) if as_b64 else vector_of(t)} for i, t in enumerate(body["input"])]
    if reverse:
        data.reverse()
    reply: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
    if usage:
        reply["usage"] = {"prompt_tokens": 7 * len(data), "total_tokens": 7 * len(data)}
    return httpx.Response(200, json=reply)


# ------------------------------------------------------------------------------- embeddings


async def test_embeddings_request_and_base64_decoding() -> None:
    ctx, rec = make_ctx(lambda r: embeddings_reply(r, lambda t: [0.5, -0.25, float(len(t))]),
                        "text-embedding-3-small", ModelType.TEXT_EMBEDDING)
    result = await OpenAIEmbeddings().embed(ctx, ["hi", "there"], "document", 256, "user-1")
    request = rec.requests[0]
    assert str(request.url) == "https://api.openai.com/v1/embeddings"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert rec.json() == {"model": "text-embedding-3-small", "encoding_format": "base64", "dimensions": 256,
                          "user": "user-1", "input": ["hi", "there"]}
    assert result.embeddings == [[0.5, -0.25, 2.0], [0.5, -0.25, 5.0]]
    assert result.tokens == 14


async def test_embeddings_float_default_and_float_reply_to_base64_request() -> None:
    # The option defaults to float; and a float list is accepted even when base64 was asked.
    ctx, rec = make_ctx(lambda r: embeddings_reply(r, lambda t: [1.0, 2.0], as_b64=False),
                        "text-embedding-3-small", ModelType.TEXT_EMBEDDING)
    ctx.options = OpenAIOptions.model_validate(
        {k: v for k, v in OPENAI.entity.runtime.items() if k != "embedding_encoding"})
    result = await OpenAIEmbeddings().embed(ctx, [""], "query", None, "")
    assert rec.json() == {"model": "text-embedding-3-small", "encoding_format": "float", "input": [""]}
    assert result.embeddings == [[1.0, 2.0]]


async def test_embeddings_out_of_order_and_batches() -> None:
    texts = [f"text {i}" for i in range(70)]
    ctx, rec = make_ctx(lambda r: embeddings_reply(r, lambda t: [float(t.split()[1])], reverse=True),
                        "text-embedding-3-small", ModelType.TEXT_EMBEDDING)
    result = await OpenAIEmbeddings().embed(ctx, texts, "document", None, "")
    assert sorted(len(rec.json(i)["input"]) for i in range(len(rec.requests))) == [6, 32, 32]
    assert [v[0] for v in result.embeddings] == [float(i) for i in range(70)]
    assert result.tokens == 7 * 70


async def test_embeddings_unknown_model_sends_one_text_per_request() -> None:
    schema = custom_schema("my-embed", ModelType.TEXT_EMBEDDING, context_size=512)
    ctx, rec = make_ctx(lambda r: embeddings_reply(r, lambda t: [1.0], usage=False),
                        "my-embed", ModelType.TEXT_EMBEDDING, schema=schema)
    result = await OpenAIEmbeddings().embed(ctx, ["a b c", "d", "e"], "document", None, "")
    assert len(rec.requests) == 3
    assert all(len(rec.json(i)["input"]) == 1 for i in range(3))
    # No usage reported: counted locally.
    assert result.tokens == count_text("a b c") + count_text("d") + count_text("e")


async def test_embeddings_long_text_split_weighted_and_normalised() -> None:
    schema = custom_schema("tiny", ModelType.TEXT_EMBEDDING, context_size=10, max_chunks=8)
    text = " ".join(["hello"] * 25)  # 25 tokens: pieces of 10, 10, 5
    pieces: list[str] = []

    def vector(piece: str) -> list[float]:
        pieces.append(piece)
        return [1.0, 0.0] if len(pieces) < 3 else [0.0, 1.0]

    ctx, rec = make_ctx(lambda r: embeddings_reply(r, vector, as_b64=False),
                        "tiny", ModelType.TEXT_EMBEDDING, schema=schema)
    result = await OpenAIEmbeddings().embed(ctx, [text, "short"], "document", None, "")
    sent = rec.json()["input"]
    assert len(sent) == 4 and "".join(sent[:3]) == text and sent[3] == "short"
    assert [count_text(p) for p in sent[:3]] == [10, 10, 5]
    x, y = result.embeddings[0]
    assert math.isclose(math.hypot(x, y), 1.0)
    assert math.isclose(x / y, 20 / 5)  # weighted by piece length
    assert result.embeddings[1] == [0.0, 1.0]


async def test_embeddings_short_text_is_not_tokenised(monkeypatch: pytest.MonkeyPatch) -> None:
    import providers.kit.embeddings as module

    def boom(*_: Any) -> None:
        raise AssertionError("tokenised a text that cannot need splitting")

    monkeypatch.setattr(module, "split_text", boom)
    ctx, _ = make_ctx(lambda r: embeddings_reply(r, lambda t: [1.0]), "text-embedding-3-small",
                      ModelType.TEXT_EMBEDDING)
    await OpenAIEmbeddings().embed(ctx, ["x" * 8191], "document", None, "")


async def test_embeddings_nan_raises() -> None:
    ctx, _ = make_ctx(lambda r: embeddings_reply(r, lambda t: [float("nan"), 1.0]),
                      "text-embedding-3-small", ModelType.TEXT_EMBEDDING)
    with pytest.raises(InvokeError, match="NaN"):
        await OpenAIEmbeddings().embed(ctx, ["x"], "document", None, "")


async def test_embeddings_input_type_field() -> None:
    options = {"embedding_input_type_field": "input_type",
               "embedding_input_type_values": {"document": "passage", "query": "query"}}
    ctx, rec = make_ctx(lambda r: embeddings_reply(r, lambda t: [1.0]), "text-embedding-3-small",
                        ModelType.TEXT_EMBEDDING, options=options)
    await OpenAIEmbeddings().embed(ctx, ["x"], "document", None, "")
    await OpenAIEmbeddings().embed(ctx, ["x"], "query", None, "")
    assert rec.json(0)["input_type"] == "passage"
    assert rec.json(1)["input_type"] == "query"
    ctx2, rec2 = make_ctx(lambda r: embeddings_reply(r, lambda t: [1.0]), "text-embedding-3-small",
                          ModelType.TEXT_EMBEDDING)
    await OpenAIEmbeddings().embed(ctx2, ["x"], "query", None, "")
    assert "input_type" not in rec2.json()


async def test_embeddings_count_tokens() -> None:
    ctx, rec = make_ctx(lambda r: httpx.Response(500), "text-embedding-3-small", ModelType.TEXT_EMBEDDING)
    assert await OpenAIEmbeddings().count_tokens(ctx, ["hello world", ""]) == [2, 0]
    assert not rec.requests


async def test_error_mapping_401_and_429() -> None:
    ctx, _ = make_ctx(lambda r: httpx.Response(401, json={"error": {"message": "Incorrect API key"}}),
                      "text-embedding-3-small", ModelType.TEXT_EMBEDDING)
    with pytest.raises(InvokeAuthorizationError, match="Incorrect model credentials provided"):
        await OpenAIEmbeddings().embed(ctx, ["x"], "document", None, "")
    ctx, _ = make_ctx(
        lambda r: httpx.Response(429, headers={"retry-after": "2"}, json={"error": {"message": "slow down"}}),
        "tts-1", ModelType.TTS)
    with pytest.raises(InvokeRateLimitError) as info:
        async for _ in OpenAISpeech().synthesize(ctx, "hi", "alloy", "mp3", None, ""):
            pass
    assert info.value.retry_after == 2.0


# ------------------------------------------------------------------------------- rerank


async def test_rerank_threshold_sort_top_n() -> None:
    reply = {"results": [
        {"index": 0, "relevance_score": 0.2, "document": "a"},
        {"index": 2, "relevance_score": 0.9, "document": {"text": "c"}},
        {"index": 1, "relevance_score": 0.5},
        {"index": 3, "relevance_score": 0.05},
    ]}
    schema = custom_schema("rr", ModelType.RERANK, context_size=512)
    ctx, rec = make_ctx(lambda r: httpx.Response(200, json=reply), "rr", ModelType.RERANK, schema=schema)
    result = await OpenAIRerank().rerank(ctx, "q", ["A", "B", "C", "D"], 0.1, 2, "")
    assert str(rec.requests[0].url) == "https://api.openai.com/v1/rerank"
    assert rec.json() == {"model": "rr", "query": "q", "documents": ["A", "B", "C", "D"], "top_n": 2}
    assert [(d.index, d.text, d.score) for d in result.docs] == [(2, "C", 0.9), (1, "B", 0.5)]

    all_docs = await OpenAIRerank().rerank(ctx, "q", ["A", "B", "C", "D"], None, None, "")
    assert [d.index for d in all_docs.docs] == [2, 1, 0, 3]


async def test_rerank_empty_docs_no_call() -> None:
    ctx, rec = make_ctx(lambda r: httpx.Response(500), "rr", ModelType.RERANK,
                        schema=custom_schema("rr", ModelType.RERANK))
    result = await OpenAIRerank().rerank(ctx, "q", [], None, 3, "")
    assert result.docs == [] and not rec.requests


# ------------------------------------------------------------------------------- transcription


def test_silent_wav_and_sniffing() -> None:
    data = silent_wav(0.05)
    with wave.open(BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getnframes() > 0
    assert sniff_format(data) == "wav"
    assert sniff_format(b"ID3\x03rest") == "mp3"
    assert sniff_format(b"\xff\xfb\x90\x00") == "mp3"
    assert sniff_format(b"OggS\x00") == "ogg"
    assert sniff_format(b"fLaC\x00") == "flac"
    assert sniff_format(b"\x1a\x45\xdf\xa3\x01") == "webm"
    assert sniff_format(b"\x00\x00\x00\x20ftypM4A \x00") == "m4a"
    assert sniff_format(b"\x00\x00\x00\x20ftypisom\x00") == "mp4"
    assert sniff_format(b"garbage") == ""


async def test_transcription_multipart() -> None:
    ctx, rec = make_ctx(lambda r: httpx.Response(200, json={"text": "hello"}), "whisper-1", ModelType.SPEECH2TEXT)
    text = await OpenAITranscription().transcribe(ctx, silent_wav(), "", "en", "names: Ada", "u")
    assert text == "hello"
    request = rec.requests[0]
    assert str(request.url) == "https://api.openai.com/v1/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.content
    for field, value in (("model", b"whisper-1"), ("response_format", b"json"), ("language", b"en"),
                         ("prompt", b"names: Ada")):
        assert f'name="{field}"\r\n\r\n'.encode() + value + b"\r\n" in body
    assert b'name="file"; filename="audio.wav"' in body
    assert b"Content-Type: audio/wav" in body


async def test_transcription_rejects_format_and_size() -> None:
    ctx, rec = make_ctx(lambda r: httpx.Response(200, json={"text": ""}), "whisper-1", ModelType.SPEECH2TEXT)
    with pytest.raises(InvokeBadRequestError) as info:
        await OpenAITranscription().transcribe(ctx, b"data", "aiff", "", "", "")
    assert info.value.field_violations[0].field == "format"
    big = b"RIFF\x00\x00\x00\x00WAVE" + bytes(26 * 1024 * 1024)
    with pytest.raises(InvokeBadRequestError) as info:
        await OpenAITranscription().transcribe(ctx, big, "wav", "", "", "")
    assert info.value.field_violations[0].field == "audio"
    assert not rec.requests


# ------------------------------------------------------------------------------- speech


async def test_speech_streams_chunks_as_they_arrive() -> None:
    first_seen = asyncio.Event()

    async def body() -> Any:
        yield b"A" * (40 * 1024)  # more than one 32 KiB chunk
        # The second part is only sent once the consumer got the first: proves no buffering.
        await asyncio.wait_for(first_seen.wait(), 5)
        yield b"B" * 10

    ctx, rec = make_ctx(lambda r: httpx.Response(200, headers={"content-type": "audio/mpeg"}, content=body()),
                        "tts-1", ModelType.TTS)
    chunks = []
    async for chunk in OpenAISpeech().synthesize(ctx, "Hello.", "nova", "mp3", 1.5, ""):
        chunks.append(chunk)
        first_seen.set()
    assert rec.json() == {"model": "tts-1", "input": "Hello.", "voice": "nova", "response_format": "mp3",
                          "speed": 1.5}
    assert str(rec.requests[0].url) == "https://api.openai.com/v1/audio/speech"
    assert [len(c.data) for c in chunks] == [32 * 1024, 8 * 1024, 10]
    assert all(c.encoding == "mp3" and c.mime_type == "audio/mpeg" and c.sample_rate_hz == 0 for c in chunks)


async def test_speech_pcm_and_long_text_split() -> None:
    ctx, rec = make_ctx(lambda r: httpx.Response(200, content=b"\x00\x01" * 4), "tts-1", ModelType.TTS)
    assert ctx.schema is not None
    ctx.schema = ctx.schema.model_copy(update={"model_properties": {**ctx.schema.model_properties,
                                                                    "word_limit": 20}})
    text = "First sentence. Second one! Third?\nFourth。"
    chunks = [c async for c in OpenAISpeech().synthesize(ctx, text, "", "pcm", None, "")]
    inputs = [rec.json(i)["input"] for i in range(len(rec.requests))]
    assert len(inputs) > 1 and all(len(p) <= 20 for p in inputs) and "".join(inputs) == text
    assert all(rec.json(i)["voice"] == "alloy" and "speed" not in rec.json(i) for i in range(len(inputs)))
    assert len(chunks) == len(inputs)
    assert all(c.mime_type == "audio/pcm" and c.sample_rate_hz == 24000 for c in chunks)


async def test_speech_validates_voice_and_encoding() -> None:
    ctx, rec = make_ctx(lambda r: httpx.Response(200, content=b"x"), "tts-1", ModelType.TTS)
    with pytest.raises(InvokeBadRequestError) as info:
        async for _ in OpenAISpeech().synthesize(ctx, "hi", "marin", "mp3", None, ""):
            pass
    violation = info.value.field_violations[0]
    assert violation.field == "voice" and "alloy" in violation.description and "shimmer" in violation.description
    with pytest.raises(InvokeBadRequestError) as info:
        async for _ in OpenAISpeech().synthesize(ctx, "hi", "alloy", "ogg", None, ""):
            pass
    assert info.value.field_violations[0].field == "encoding"
    assert not rec.requests


# ------------------------------------------------------------------------------- moderation


def _moderation_reply(request: httpx.Request) -> httpx.Response:
    inputs = orjson.loads(request.content)["input"]
    results = []
    for text in inputs:
        bad = "hate" in text
        results.append({
            "flagged": bad,
            "categories": {"hate": bad, "hate/threatening": False},
            "category_scores": {"hate": 0.9 if bad else 0.01, "hate/threatening": 0.02},
        })
    return httpx.Response(200, json={"id": "modr-1", "model": "omni-moderation-latest", "results": results})


async def test_moderation_chunking_and_merge() -> None:
    ctx, rec = make_ctx(_moderation_reply, "omni-moderation-latest", ModelType.MODERATION)
    text = "a" * 2000 * 33 + "hate"  # 34 pieces of <= 2000 characters: 2 requests (32 + 2)
    result = await OpenAIModeration().moderate(ctx, text, "")
    sizes = sorted(len(rec.json(i)["input"]) for i in range(len(rec.requests)))
    assert sizes == [2, 32]
    assert all(len(p) <= 2000 for i in range(len(rec.requests)) for p in rec.json(i)["input"])
    assert rec.json(0)["model"] == "omni-moderation-latest"
    assert str(rec.requests[0].url) == "https://api.openai.com/v1/moderations"
    assert result.flagged
    cats = {c.name: (c.flagged, c.score) for c in result.categories}
    assert cats == {"hate": (True, 0.9), "hate/threatening": (False, 0.02)}


async def test_moderation_mistral_results_without_flagged() -> None:
    replies = iter([
        {"results": [{"categories": {"sexual": False, "hate_and_discrimination": True},
                      "category_scores": {"sexual": 0.1, "hate_and_discrimination": 0.8}}]},
        {"results": [{"categories": {"sexual": False}, "category_scores": {"sexual": 0.3}}]},
    ])
    schema = custom_schema("mistral-moderation-latest", ModelType.MODERATION)
    ctx, _ = make_ctx(lambda r: httpx.Response(200, json=next(replies)), "mistral-moderation-latest",
                      ModelType.MODERATION, schema=schema)
    result = await OpenAIModeration().moderate(ctx, "something", "")
    assert result.flagged
    assert {c.name: c.flagged for c in result.categories} == {"sexual": False, "hate_and_discrimination": True}
    clean = await OpenAIModeration().moderate(ctx, "fine", "")
    assert not clean.flagged and clean.categories[0].score == pytest.approx(0.3)



def test_split_never_cuts_inside_a_character() -> None:
    from providers.kit.embeddings import split_text as _split_text

    text = "你好世界，天气很好。" * 40 + "héllo wörld " * 30
    for size in (7, 10, 33):
        pieces = _split_text(text, "text-embedding-3-small", size)
        assert "".join(p for p, _ in pieces) == text
        assert all(count_text(p) <= size for p, _ in pieces)
        assert sum(n for _, n in pieces) == count_text(text)


async def test_speech_json_error_under_200() -> None:
    ctx, _ = make_ctx(lambda r: httpx.Response(200, json={"error": {"message": "model busy", "code": 503}}),
                      "tts-1", ModelType.TTS)
    with pytest.raises(InvokeError, match="model busy"):
        async for _ in OpenAISpeech().synthesize(ctx, "hi", "alloy", "mp3", None, ""):
            pass
