"""Model types that OpenAI-compatible providers serve through another wire package, composed by
``runtime.capabilities`` (providers/protocols/openai/provider.py), through the real gRPC server against
faithful mocks of the native dialects (tests/mocks/compat_native.py):

- Tongyi: gte-rerank-v2 and Qwen-TTS over DashScope's native HTTP API (providers/protocols/dashscope);
- MiniMax: embo-01 embeddings through the retrieval family's data-driven embeddings.

The generic checks (catalog, one call per model type) live in test_compat_providers.py; these are
the dialects' own behaviours and failure modes.
"""

from __future__ import annotations

import shutil

import grpc
import orjson
import pytest
import yaml
from modelruntime.v1 import common_pb2
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import rerank_service_pb2 as rr_pb
from modelruntime.v1 import text_embedding_service_pb2 as emb_pb
from modelruntime.v1 import tts_service_pb2 as tts_pb

from engine.entities import ModelType
from engine.registry import DefinitionsError, Registry
from providers import DEFINITIONS, PROTOCOLS, builtin_registry
from tests.helpers import failure_of, stream_failure, struct
from tests.mocks import compat_mock
from tests.mocks.compat_dialects import DIALECTS
from tests.mocks.compat_mock import tgt
from tests.mocks.compat_native import RERANK_PATH, TTS_PATH, dashscope_error, throttled
from tests.mocks.openai_common import approx_tokens
from tests.mocks.openai_media import SAMPLE_RATE, expected_embedding, pcm_for
from tests.mocks.openai_scenarios import raw_response, stream_error_after

pool, upstream = compat_mock.pool, compat_mock.upstream  # the shared fixtures
DOCS = ["paris is the capital of france", "bananas are yellow", "france borders spain",
        "the capital city of france is paris", "spain has a capital too"]
QUERY = "capital of france"


async def tongyi(upstream):
    return DIALECTS["tongyi"], await upstream("tongyi")


async def minimax(upstream):
    return DIALECTS["minimax"], await upstream("minimax")


def test_capabilities_are_declared_data_not_provider_code():
    registry = builtin_registry()
    ds, mm = registry.adapter("tongyi"), registry.adapter("minimax")
    assert type(ds.capability(ModelType.RERANK)).__module__ == "providers.protocols.dashscope.rerank"
    assert type(ds.capability(ModelType.TTS)).__module__ == "providers.protocols.dashscope.tts"
    assert type(ds.llm).__module__ == "providers.protocols.openai.chat"  # chat stays in compatible mode
    assert type(ds.text_embedding).__module__ == "providers.protocols.openai.embeddings"
    assert type(mm.capability(ModelType.TEXT_EMBEDDING)).__module__ == "providers.protocols.retrieval.embeddings"
    assert mm.capability(ModelType.RERANK) is None and mm.capability(ModelType.TTS) is None
    # The composed protocol has its own typed options: the native base URL, the inherited key name.
    native = ds.serving(ModelType.RERANK).options
    assert native.base_url == "https://dashscope.aliyuncs.com/api/v1"
    assert native.api_key_credential == ds.options.api_key_credential == "dashscope_api_key"


@pytest.mark.parametrize(("capabilities", "problem"), [
    ({"speech2text": "dashscope"}, "does not declare speech2text"),
    ({"reranking-ish": "dashscope"}, "not a model type"),
    ({"rerank": "dashscop"}, "unknown protocol 'dashscop' \\(did you mean 'dashscope'\\?\\)"),
])
def test_capability_mistakes_name_the_provider_and_key(tmp_path, capabilities, problem):
    folder = tmp_path / "tongyi"
    shutil.copytree(DEFINITIONS / "tongyi", folder)
    raw = yaml.safe_load((folder / "tongyi.yaml").read_text())
    raw["runtime"]["capabilities"] = capabilities
    (folder / "tongyi.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(DefinitionsError, match=problem) as raised:
        Registry([tmp_path], PROTOCOLS)
    assert str(raised.value).split("\n")[1].strip().startswith("provider tongyi (")


# ---- Tongyi rerank (DashScope native) ------------------------------------------------------------


async def test_tongyi_rerank_wire_shape_threshold_and_top_n(stubs, upstream):
    d, mock = await tongyi(upstream)
    response = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=tgt(d, mock, "rerank"), query=QUERY, documents=DOCS, top_n=3, score_threshold=0.5))
    # Scores: 1.0, 0, 1/3, 1.0, 1/3; the threshold drops the thirds, top_n would allow three.
    assert [(r.index, r.text) for r in response.documents] == [(0, DOCS[0]), (3, DOCS[3])]
    assert [r.score for r in response.documents] == [1.0, 1.0]
    sent = mock.requests[-1]
    assert sent.path == RERANK_PATH and sent.headers["authorization"] == f"Bearer {d.key}"
    assert sent.json == {"model": "gte-rerank-v2", "input": {"query": QUERY, "documents": DOCS},
                         "parameters": {"top_n": 3, "return_documents": False}}

    response = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=tgt(d, mock, "rerank"), query=QUERY, documents=DOCS[:3], top_n=10))
    assert [r.index for r in response.documents] == [0, 2, 1]  # all of them, best first
    assert mock.requests[-1].json["parameters"]["top_n"] == 3  # never above the document count


async def test_tongyi_rerank_splits_more_than_500_documents(stubs, upstream):
    d, mock = await tongyi(upstream)
    docs = [f"filler document number {i}" for i in range(501)]
    docs[500] = "paris is the capital of france"
    before = len(mock.requests)
    response = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=tgt(d, mock, "rerank"), query=QUERY, documents=docs, top_n=1))
    assert [(r.index, r.text) for r in response.documents] == [(500, docs[500])]
    assert sorted(len(r.json["input"]["documents"]) for r in mock.requests[before:]) == [1, 500]


async def test_tongyi_rerank_bad_key_is_an_authorization_error(stubs, upstream):
    d, mock = await tongyi(upstream)
    f = await failure_of(stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=tgt(d, mock, "rerank", key="sk-wrong-key-000"), query=QUERY, documents=DOCS)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert f.metadata.get("upstreamStatus") == "401" and "sk-wrong-key-000" not in f.message


async def test_tongyi_rerank_throttling_and_arrearage(stubs, upstream):
    d, mock = await tongyi(upstream)
    mock.enqueue(throttled(), path=RERANK_PATH)
    f = await failure_of(stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=tgt(d, mock, "rerank"), query=QUERY, documents=DOCS)))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert "Throttling.RateQuota" in f.message and f.metadata.get("upstreamStatus") == "429"
    # An unpaid account is answered with 400, but it is a quota problem, not a bad request.
    mock.enqueue(dashscope_error(400, "Arrearage", "Access denied, please make sure your account is in good "
                                                   "standing."), path=RERANK_PATH)
    f = await failure_of(stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=tgt(d, mock, "rerank"), query=QUERY, documents=DOCS)))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"


async def test_tongyi_rerank_model_credentials_are_checked_natively(stubs, upstream):
    d, mock = await tongyi(upstream)

    def request(key=None):
        return prov_pb.ValidateModelCredentialsRequest(
            provider="tongyi", model_type=common_pb2.MODEL_TYPE_RERANK, model="gte-rerank-v2",
            credentials=struct({**d.credentials(mock.url, key), "context_size": "4000"}))  # the model form

    await stubs.providers.ValidateModelCredentials(request())
    assert mock.requests[-1].path == RERANK_PATH
    f = await failure_of(stubs.providers.ValidateModelCredentials(request(key="sk-bad")))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"


# ---- Tongyi Qwen-TTS (DashScope native, streamed) ------------------------------------------------


def tts_req(d, mock, text="Hello there.", **kw):
    return tts_pb.StreamSynthesizeRequest(target=tgt(d, mock, "tts", model=kw.pop("model", None)), text=text, **kw)


async def test_tongyi_tts_streams_base64_pcm_decoded(stubs, upstream):
    d, mock = await tongyi(upstream)
    text = "Streaming speech from DashScope."
    chunks = [c async for c in stubs.tts.StreamSynthesize(tts_req(
        d, mock, text, voice="Ethan", encoding=tts_pb.AUDIO_ENCODING_PCM))]
    assert b"".join(c.audio for c in chunks) == pcm_for(text)  # every event's base64, decoded in order
    assert {(c.encoding, c.mime_type, c.sample_rate_hz) for c in chunks} == {
        (tts_pb.AUDIO_ENCODING_PCM, "audio/pcm", SAMPLE_RATE)}
    sent = mock.requests[-1]
    assert sent.path == TTS_PATH and sent.headers["x-dashscope-sse"] == "enable"
    assert sent.headers["authorization"] == f"Bearer {d.key}"
    assert sent.json == {"model": "qwen3-tts-flash", "input": {"text": text, "voice": "Ethan"}}


async def test_tongyi_tts_wav_and_long_text_in_pieces(stubs, upstream):
    d, mock = await tongyi(upstream)
    text = " ".join(f"This is sentence number {i} of a long text." for i in range(20))  # ~860 characters
    before = len(mock.requests)
    chunks = [c async for c in stubs.tts.StreamSynthesize(tts_req(d, mock, text, model="qwen-tts"))]
    audio = b"".join(c.audio for c in chunks)
    pieces = [r.json["input"]["text"] for r in mock.requests[before:]]
    assert len(pieces) >= 3 and all(len(p) <= 300 for p in pieces)  # word_limit, cut at sentence ends
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert audio[:4] == b"RIFF" and audio[8:16] == b"WAVEfmt " and chunks[0].mime_type == "audio/wav"
    assert audio[44:] == b"".join(pcm_for(p) for p in pieces)  # one header, then every piece's PCM
    assert {r.json["input"]["voice"] for r in mock.requests[before:]} == {"Cherry"}  # the default voice


async def test_tongyi_tts_error_event_mid_stream_is_mapped(stubs, upstream):
    d, mock = await tongyi(upstream)
    mock.enqueue(stream_error_after(2, message="Output data may contain inappropriate content.",
                                    code="DataInspectionFailed"), path=TTS_PATH)
    received, f = await stream_failure(stubs.tts.StreamSynthesize(tts_req(
        d, mock, "A sentence long enough for several audio events.", encoding=tts_pb.AUDIO_ENCODING_PCM)))
    assert received and b"".join(c.audio for c in received) == pcm_for(
        "A sentence long enough for several audio events.")[:2 * SAMPLE_RATE * 2 // 10]
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "DataInspectionFailed" in f.message and "upstreamStatus" not in f.metadata

    mock.enqueue(stream_error_after(1, message="Requests rate limit exceeded.", code="Throttling.RateQuota"),
                 path=TTS_PATH)
    _, f = await stream_failure(stubs.tts.StreamSynthesize(tts_req(d, mock, "Another sentence to speak.")))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"


async def test_tongyi_tts_stream_cut_before_stop_is_a_connection_error(stubs, upstream):
    d, mock = await tongyi(upstream)
    event = (b'id:1\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"finish_reason":"null","audio":'
             b'{"data":"AAAAAA==","id":"audio_1","expires_at":1}},"request_id":"r1"}\n\n')
    mock.enqueue(raw_response(200, {"content-type": "text/event-stream"}, event), path=TTS_PATH)
    received, f = await stream_failure(stubs.tts.StreamSynthesize(tts_req(
        d, mock, encoding=tts_pb.AUDIO_ENCODING_PCM)))
    assert b"".join(c.audio for c in received) == b"\x00" * 4
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeConnectionError"


async def test_tongyi_tts_refuses_before_calling(stubs, upstream):
    d, mock = await tongyi(upstream)
    before = len(mock.requests)
    cases = [({"voice": "alloy"}, "voice"), ({"encoding": tts_pb.AUDIO_ENCODING_MP3}, "encoding"),
             ({"speed": 1.5}, "speed")]
    for kw, field in cases:
        _, f = await stream_failure(stubs.tts.StreamSynthesize(tts_req(d, mock, **kw)))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError", kw
        assert field in f.violations, kw
    assert len(mock.requests) == before  # nothing was sent (or paid for)


async def test_tongyi_tts_auth_failure_before_any_audio(stubs, upstream):
    d, mock = await tongyi(upstream)
    received, f = await stream_failure(stubs.tts.StreamSynthesize(tts_pb.StreamSynthesizeRequest(
        target=tgt(d, mock, "tts", key="sk-wrong-key-000"), text="hi")))
    assert received == []  # not even the WAV header
    assert f.reason == "InvokeAuthorizationError" and f.metadata.get("upstreamStatus") == "401"


async def test_tongyi_tts_voices_and_model_credentials(stubs, upstream):
    d, mock = await tongyi(upstream)
    voices = await stubs.tts.ListVoices(tts_pb.ListVoicesRequest(target=tgt(d, mock, "tts"), language="ja-JP"))
    assert [v.id for v in voices.voices][:3] == ["Cherry", "Ethan", "Nofish"] and len(voices.voices) == 7
    await stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider="tongyi", model_type=common_pb2.MODEL_TYPE_TTS, model="qwen-tts",
        credentials=struct({**d.credentials(mock.url), "context_size": "8192"})))
    assert mock.requests[-1].path == TTS_PATH and mock.requests[-1].json["input"]["text"] == "ping"


# ---- MiniMax embeddings (retrieval family, status_envelope) --------------------------------------


@pytest.mark.parametrize(("input_type", "wire"), [(emb_pb.EMBEDDING_INPUT_TYPE_DOCUMENT, "db"),
                                                  (emb_pb.EMBEDDING_INPUT_TYPE_QUERY, "query"),
                                                  (emb_pb.EMBEDDING_INPUT_TYPE_UNSPECIFIED, "db")])
async def test_minimax_embeddings_map_input_type_to_db_or_query(stubs, upstream, input_type, wire):
    d, mock = await minimax(upstream)
    response = await stubs.embedding.Embed(emb_pb.EmbedRequest(
        target=tgt(d, mock, "text-embedding"), texts=["alpha", "beta"], input_type=input_type))
    assert [list(e.values) for e in response.embeddings] == [
        pytest.approx(expected_embedding(t, 16), abs=1e-6) for t in ("alpha", "beta")]
    sent = mock.requests[-1]
    assert sent.path == "/v1/embeddings" and sent.headers["authorization"] == f"Bearer {d.key}"
    assert sent.json == {"model": "embo-01", "texts": ["alpha", "beta"], "type": wire}
    assert response.usage.tokens == approx_tokens("alpha") + approx_tokens("beta")  # MiniMax's bare total_tokens
    assert response.usage.currency == "RMB"


async def test_minimax_embeddings_batches_and_optional_group_id(stubs, upstream):
    d, mock = await minimax(upstream)
    creds = {"minimax_api_key": d.key}  # no GroupId: none is sent
    before = len(mock.requests)
    response = await stubs.embedding.Embed(emb_pb.EmbedRequest(
        target=compat_mock.target("minimax", "embo-01", creds), texts=[f"text {i}" for i in range(40)]))
    assert len(response.embeddings) == 40
    sent = mock.requests[before:]
    assert sorted(len(r.json["texts"]) for r in sent) == [8, 32] and all("GroupId" not in r.query for r in sent)


@pytest.mark.parametrize(("code", "grpc_code", "reason"), [
    (1004, grpc.StatusCode.INVALID_ARGUMENT, "InvokeAuthorizationError"),
    (1002, grpc.StatusCode.RESOURCE_EXHAUSTED, "InvokeRateLimitError"),
    (1039, grpc.StatusCode.RESOURCE_EXHAUSTED, "InvokeRateLimitError"),
    (1008, grpc.StatusCode.RESOURCE_EXHAUSTED, "InvokeRateLimitError"),  # balance: a quota, no retry delay
    (2013, grpc.StatusCode.INVALID_ARGUMENT, "InvokeBadRequestError"),
])
async def test_minimax_embeddings_base_resp_error_under_http_200(stubs, upstream, code, grpc_code, reason):
    d, mock = await minimax(upstream)
    body = {"vectors": None, "total_tokens": 0, "base_resp": {"status_code": code, "status_msg": "refused"}}
    mock.enqueue(raw_response(200, {"content-type": "application/json"}, orjson.dumps(body)), path="/embeddings")
    f = await failure_of(stubs.embedding.Embed(emb_pb.EmbedRequest(
        target=tgt(d, mock, "text-embedding"), texts=["alpha"])))
    assert (f.code, f.reason) == (grpc_code, reason)
    assert "upstreamStatus" not in f.metadata  # HTTP said 200; the body carried the error
    if reason != "InvokeAuthorizationError":
        assert f"code {code}" in f.message


async def test_minimax_embeddings_bad_key_and_bad_request_from_the_server(stubs, upstream):
    d, mock = await minimax(upstream)
    f = await failure_of(stubs.embedding.Embed(emb_pb.EmbedRequest(
        target=tgt(d, mock, "text-embedding", key="sk-wrong-key-000"), texts=["alpha"])))
    assert f.reason == "InvokeAuthorizationError" and "sk-wrong-key-000" not in f.message
    assert mock.requests[-1].path == "/v1/embeddings"  # the mock said so with base_resp 1004 under 200
    # An empty text is refused by MiniMax itself (2013 under 200), not by the runtime.
    f = await failure_of(stubs.embedding.Embed(emb_pb.EmbedRequest(
        target=tgt(d, mock, "text-embedding"), texts=["alpha", ""])))
    assert f.reason == "InvokeBadRequestError" and "code 2013" in f.message
