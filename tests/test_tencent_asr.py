"""Tencent Cloud ASR flash recognition (Dify's ``tencent``) through the real gRPC server against the mock."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import grpc
import httpx
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import speech2text_service_pb2 as stt_pb

from providers.protocols.tencent_asr import protocol
from tests.helpers import failure_of, struct, target
from tests.mocks.tencent_asr_mock import (
    APP_ID,
    SECRET_ID,
    SECRET_KEY,
    TencentASRMock,
    expected_text,
    http_status,
    reply_code,
    tone_wav,
)


@pytest.fixture(scope="module")
async def mock():
    async with TencentASRMock() as m:
        yield m


def transcribe(mock, audio: bytes, fmt: str = "", language: str = "", **creds) -> stt_pb.TranscribeRequest:
    return stt_pb.TranscribeRequest(target=target("tencent", "tencent", mock.credentials(**creds)), audio=audio,
                                    format=fmt, language=language)


# ---- catalog ---------------------------------------------------------------------------------


async def test_provider_is_speech2text_only_with_difys_form(stubs):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    tencent = providers["tencent"]
    assert list(tencent.configurate_methods) == [prov_pb.CONFIGURATE_METHOD_PREDEFINED_MODEL]
    assert list(tencent.supported_model_types) == [common_pb2.MODEL_TYPE_SPEECH2TEXT]
    assert [f.variable for f in tencent.provider_credential_fields] == ["app_id", "secret_id", "secret_key",
                                                                       "tencent_asr_endpoint"]
    assert [f.required for f in tencent.provider_credential_fields] == [True, True, True, False]
    models = (await stubs.providers.ListModels(prov_pb.ListModelsRequest(provider="tencent"))).models
    assert [(m.name, m.model_type) for m in models] == [("tencent", common_pb2.MODEL_TYPE_SPEECH2TEXT)]


def test_signature_matches_the_documented_recipe():
    params = {"secretid": "AKIDx", "timestamp": "1700000000", "engine_type": "16k_zh", "voice_format": "wav"}
    text = protocol.string_to_sign("asr.cloud.tencent.com", protocol.path_for("1259220000"), params)
    assert text == ("POSTasr.cloud.tencent.com/asr/flash/v1/1259220000?engine_type=16k_zh&secretid=AKIDx"
                    "&timestamp=1700000000&voice_format=wav")
    url, auth = protocol.signed_url("https", "asr.cloud.tencent.com", "1259220000", params, "key")
    assert url == "https://asr.cloud.tencent.com/asr/flash/v1/1259220000?" + text.split("?", 1)[1]
    import base64
    import hashlib
    import hmac

    assert auth == base64.b64encode(hmac.new(b"key", text.encode(), hashlib.sha1).digest()).decode()


# ---- transcription ---------------------------------------------------------------------------


async def test_transcribe_wav_signed_request(stubs, mock):
    audio = tone_wav([True])
    response = await stubs.stt.Transcribe(transcribe(mock, audio))
    assert response.text == expected_text(0, 250)
    sent = mock.requests[-1]
    assert sent.path == f"/asr/flash/v1/{APP_ID}" and sent.body == audio
    query = dict(parse_qsl(sent.target.split("?", 1)[1]))
    assert query["engine_type"] == "16k_zh" and query["voice_format"] == "wav" and query["secretid"] == SECRET_ID
    assert abs(int(query["timestamp"]) - time.time()) < 10
    assert query["first_channel_only"] == "0" and query["convert_num_mode"] == "1"
    assert sent.headers["content-type"] == "application/octet-stream"
    # The mock accepted the signature; it covers the host the request really went to.
    assert sent.headers["host"] == mock.url.removeprefix("http://")
    assert SECRET_KEY not in sent.target and SECRET_KEY not in str(sent.headers)


async def test_language_picks_the_engine_and_format_is_sniffed(stubs, mock):
    mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64
    response = await stubs.stt.Transcribe(transcribe(mock, mp3, language="en-US"))
    query = dict(parse_qsl(mock.requests[-1].target.split("?", 1)[1]))
    assert query["voice_format"] == "mp3" and query["engine_type"] == "16k_en"
    assert response.text == expected_text(0, 1000)


async def test_several_channels_are_joined(stubs, mock):
    response = await stubs.stt.Transcribe(transcribe(mock, tone_wav([True, False, True]), fmt="wav"))
    assert response.text == f"{expected_text(0, 250)}\n{expected_text(2, 250)}"


async def test_bad_signature_is_4002_under_200_and_hides_the_secret(stubs, mock):
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, tone_wav([True]), secret_key="wrong-secret-key-123")))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert SECRET_ID not in f.message and "wrong-secret-key-123" not in f.message and "鉴权" not in f.message
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, tone_wav([True]), app_id="1250000001")))
    assert f.reason == "InvokeAuthorizationError"


async def test_bad_audio_code_is_a_bad_request(stubs, mock):
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, b"RIFF\x00\x00\x00\x00WAVEjunkjunk", fmt="wav")))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeBadRequestError"
    assert "4007" in f.message and "voice_format=wav" in f.message
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, b"\x00\x01not an amr file", fmt="amr")))
    assert f.reason == "InvokeBadRequestError" and "4007" in f.message


async def test_formats_tencent_cannot_decode_are_refused_locally(stubs, mock):
    before = len(mock.requests)
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, b"fLaC\x00\x00\x00\x22" + b"\x00" * 40)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "format" in f.violations and "flac" in f.message
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, b"\x01\x02\x03\x04 unknown bytes")))
    assert "format" in f.violations
    assert len(mock.requests) == before


async def test_other_codes_and_http_errors(stubs, mock):
    mock.enqueue(reply_code(4005, "账户欠费"))
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, tone_wav([True]))))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError" and "4005" in f.message
    mock.enqueue(reply_code(5001, "后台识别服务器识别失败"))
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, tone_wav([True]))))
    assert f.code == grpc.StatusCode.UNAVAILABLE and "5001" in f.message
    mock.enqueue(http_status(502, "bad gateway"))
    f = await failure_of(stubs.stt.Transcribe(transcribe(mock, tone_wav([True]))))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.metadata["upstreamStatus"] == "502"


async def test_endpoint_override_must_be_scheme_and_host_only(stubs, mock):
    f = await failure_of(stubs.stt.Transcribe(transcribe(
        mock, tone_wav([True]), tencent_asr_endpoint=mock.url + "/asr/flash/v1")))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and "credentials.tencent_asr_endpoint" in f.violations


# ---- the mock checks what Tencent checks -----------------------------------------------------


async def test_mock_recomputes_the_signature_over_host_and_window(mock):
    host = mock.url.removeprefix("http://")
    audio = tone_wav([True])

    async def post(host_signed: str, stamp: int) -> dict:
        params = {"secretid": SECRET_ID, "timestamp": str(stamp), "engine_type": "16k_zh", "voice_format": "wav"}
        url, auth = protocol.signed_url("http", host, APP_ID, params, SECRET_KEY)
        _, auth = protocol.signed_url("http", host_signed, APP_ID, params, SECRET_KEY)
        async with httpx.AsyncClient() as client:
            response = await client.post(url, content=audio, headers={"authorization": auth})
        assert response.status_code == 200
        return response.json()

    now = int(time.time())
    assert (await post(host, now))["code"] == 0
    assert (await post("asr.cloud.tencent.com", now))["code"] == 4002  # signed for another host
    stale = await post(host, now - 600)
    assert stale["code"] == 4002 and "expired" in stale["message"]


# ---- credentials -----------------------------------------------------------------------------


async def test_validate_provider_credentials_transcribes_a_generated_wav(stubs, mock):
    response = await stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="tencent", credentials=struct(mock.credentials())))
    assert response.credentials["secret_key"] != SECRET_KEY and response.credentials["app_id"] == APP_ID
    sent = mock.requests[-1]
    assert sent.body.startswith(b"RIFF") and dict(parse_qsl(sent.target.split("?", 1)[1]))["voice_format"] == "wav"

    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="tencent", credentials=struct(mock.credentials(secret_key="not-the-key-9876")))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    assert "not-the-key-9876" not in f.message and SECRET_ID not in f.message
    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider="tencent", credentials=struct({"app_id": APP_ID, "secret_id": SECRET_ID}))))
    assert "credentials.secret_key" in f.violations
