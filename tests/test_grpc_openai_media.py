"""Embeddings, speech-to-text, text-to-speech and moderation through the real server."""

from __future__ import annotations

import math
from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import (
    moderation_service_pb2 as mod_pb,
)
from modelruntime.v1 import (
    speech2text_service_pb2 as stt_pb,
)
from modelruntime.v1 import (
    text_embedding_service_pb2 as te_pb,
)
from modelruntime.v1 import (
    tts_service_pb2 as tts_pb,
)

from providers.kit.audio import silent_wav
from tests.helpers import failure_of, target
from tests.mocks.openai_mock import OpenAIMock, embeddings_out_of_order, expected_embedding, rate_limit

KEY = "sk-media"


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


def tgt(mock, model):
    return target("openai", model, {"openai_api_key": KEY, "openai_api_base": mock.url})


async def test_embed_base64_in_order_with_usage(stubs, mock):
    mock.enqueue(embeddings_out_of_order(), path="/embeddings")
    texts = ["alpha", "beta", "gamma"]
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(target=tgt(mock, "text-embedding-3-small"), texts=texts))
    sent = mock.requests[-1].json
    assert sent["encoding_format"] == "base64" and sent["input"] == texts
    assert len(response.embeddings) == 3
    for text, emb in zip(texts, response.embeddings, strict=True):
        want = expected_embedding(text, 1536) if callable(expected_embedding) else None
        if want is not None:
            assert all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(emb.values, want, strict=True))
    u = response.usage
    assert u.tokens > 0 and Decimal(u.unit_price) == Decimal("0.02") and u.currency == "USD"


async def test_embed_dimensions_and_query_type(stubs, mock):
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=tgt(mock, "text-embedding-3-large"), texts=["q"], dimensions=256,
        input_type=te_pb.EMBEDDING_INPUT_TYPE_QUERY))
    assert mock.requests[-1].json["dimensions"] == 256
    assert len(response.embeddings[0].values) == 256


async def test_embed_rate_limited(stubs, mock):
    mock.enqueue(rate_limit(retry_after=3), path="/embeddings")
    f = await failure_of(stubs.embedding.Embed(te_pb.EmbedRequest(target=tgt(mock, "text-embedding-3-small"),
                                                                   texts=["x"])))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.retry_delay == 3.0


async def test_count_embedding_tokens(stubs, mock):
    from engine.tokenizers import get_encoding

    response = await stubs.embedding.CountEmbeddingTokens(te_pb.CountEmbeddingTokensRequest(
        target=tgt(mock, "text-embedding-3-small"), texts=["hello world", "a"]))
    enc = get_encoding("cl100k_base")
    assert list(response.tokens) == [len(enc.encode("hello world")), 1]
    assert response.total_tokens == sum(response.tokens)


async def test_transcribe_multipart(stubs, mock):
    response = await stubs.stt.Transcribe(stt_pb.TranscribeRequest(
        target=tgt(mock, "whisper-1"), audio=silent_wav(), language="en"))
    sent = mock.requests[-1]
    assert sent.path == "/v1/audio/transcriptions"
    form = sent.form()
    assert form.value("model") == "whisper-1" and form.value("language") == "en"
    assert form.get("file").filename.endswith(".wav")
    assert isinstance(response.text, str)


async def test_transcribe_rejects_unsupported_format(stubs, mock):
    f = await failure_of(stubs.stt.Transcribe(stt_pb.TranscribeRequest(
        target=tgt(mock, "whisper-1"), audio=b"abc", format="exe")))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "format" in f.violations


async def test_tts_streams_audio_chunks(stubs, mock):
    chunks = [c async for c in stubs.tts.StreamSynthesize(tts_pb.StreamSynthesizeRequest(
        target=tgt(mock, "tts-1"), text="Hello there. How are you?", voice="nova",
        encoding=tts_pb.AUDIO_ENCODING_MP3))]
    assert chunks and all(c.encoding == tts_pb.AUDIO_ENCODING_MP3 and c.mime_type == "audio/mpeg" for c in chunks)
    assert sum(len(c.audio) for c in chunks) > 0
    assert mock.requests[-1].json["voice"] == "nova"


async def test_tts_rejects_unknown_voice_and_lists_voices(stubs, mock):
    call = stubs.tts.StreamSynthesize(tts_pb.StreamSynthesizeRequest(target=tgt(mock, "tts-1"), text="x",
                                                                     voice="nobody"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    voices = await stubs.tts.ListVoices(tts_pb.ListVoicesRequest(target=tgt(mock, "tts-1")))
    assert "alloy" in {v.id for v in voices.voices}


async def test_moderation_flags_with_categories(stubs, mock):
    clean = await stubs.moderation.Moderate(mod_pb.ModerateRequest(
        target=tgt(mock, "omni-moderation-latest"), text="a nice day"))
    assert clean.flagged is False
    trigger = next(iter(mock.moderation_triggers))
    bad = await stubs.moderation.Moderate(mod_pb.ModerateRequest(
        target=tgt(mock, "omni-moderation-latest"), text=f"this has {trigger} in it"))
    assert bad.flagged is True
    flagged = {c.name for c in bad.categories if c.flagged}
    assert flagged and flagged <= {c.name for c in bad.categories}


async def test_capability_not_offered(stubs, mock):
    from modelruntime.v1 import rerank_service_pb2 as rr_pb

    f = await failure_of(stubs.rerank.Rerank(rr_pb.RerankRequest(target=tgt(mock, "x"), query="q",
                                                                 documents=["a"])))
    assert f.code == grpc.StatusCode.UNIMPLEMENTED
