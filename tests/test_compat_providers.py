"""Every OpenAI-compatible provider, through the real gRPC server, against a mock that speaks
its dialect (tests/mocks/compat_dialects.py): catalog, chat (unary and streamed tool calls),
every other model type it offers, auth failures, rate limits and credential validation.

Providers with a fixed public base URL are pointed at their mock by rewriting only the
scheme and host of the URLs in their YAML ``runtime`` block, so the path layout under test is
the one the YAML declares; self-hosted ones (and Azure) get the mock's URL as a credential.
"""

from __future__ import annotations

import json
from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import (
    common_pb2,
)
from modelruntime.v1 import (
    llm_service_pb2 as llm_pb,
)
from modelruntime.v1 import (
    moderation_service_pb2 as mod_pb,
)
from modelruntime.v1 import (
    provider_service_pb2 as prov_pb,
)
from modelruntime.v1 import (
    rerank_service_pb2 as rr_pb,
)
from modelruntime.v1 import (
    speech2text_service_pb2 as stt_pb,
)
from modelruntime.v1 import (
    text_embedding_service_pb2 as emb_pb,
)
from modelruntime.v1 import (
    tts_service_pb2 as tts_pb,
)

from engine.entities import ConfigurateMethod, ModelType
from engine.loader import load_provider
from providers import DEFINITIONS
from providers.kit.audio import silent_wav
from tests.helpers import failure_of, stream_failure, struct, user
from tests.mocks import compat_mock
from tests.mocks.compat_dialects import DIALECTS, with_type
from tests.mocks.compat_mock import assert_authenticated, path_of, tgt, wire_model
from tests.mocks.openai_chat import _prompt_tokens, expected_tool_arguments
from tests.mocks.openai_media import expected_embedding

PROVIDERS = list(DIALECTS)
pool, upstream = compat_mock.pool, compat_mock.upstream  # the shared fixtures
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TYPES_PB = {"llm": common_pb2.MODEL_TYPE_LLM, "text-embedding": common_pb2.MODEL_TYPE_TEXT_EMBEDDING,
            "rerank": common_pb2.MODEL_TYPE_RERANK, "speech2text": common_pb2.MODEL_TYPE_SPEECH2TEXT,
            "tts": common_pb2.MODEL_TYPE_TTS, "moderation": common_pb2.MODEL_TYPE_MODERATION}


def offering(model_type: str) -> list[str]:
    return [name for name, d in DIALECTS.items() if with_type(model_type, d)]


def _methods(name: str) -> list[ConfigurateMethod]:
    return load_provider(DEFINITIONS / name).entity.configurate_methods


PREDEFINED = [p for p in PROVIDERS if ConfigurateMethod.PREDEFINED_MODEL in _methods(p)]
CUSTOMIZABLE_ONLY = [p for p in PROVIDERS if p not in PREDEFINED]


# ---- catalog -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_list_providers_shows_types_and_credential_form(stubs, name):
    schema = load_provider(DEFINITIONS / name).entity
    listed = {p.name: p for p in (await stubs.providers.ListProviders(prov_pb.ListProvidersRequest())).providers}
    assert name in listed
    p = listed[name]
    assert [TYPES_PB[t.value] for t in schema.supported_model_types] == list(p.supported_model_types)
    assert p.label.en_us == schema.label.en_US and p.icon_small.en_us == "icon_s_en.svg" and p.help.url.en_us
    assert (DEFINITIONS / name / "_assets" / "icon_s_en.svg").read_text().startswith("<svg")
    form = schema.provider_credential_schema
    assert [f.variable for f in p.provider_credential_fields] == (
        [f.variable for f in form.credential_form_schemas] if form else [])
    model_form = schema.model_credential_schema
    assert [f.variable for f in p.model_credential_fields] == (
        [f.variable for f in model_form.credential_form_schemas] if model_form else [])
    secrets = [f.variable for f in (p.provider_credential_fields or p.model_credential_fields)
               if f.type == prov_pb.FORM_TYPE_SECRET_INPUT]
    assert DIALECTS[name].key_var in secrets or (not secrets and DIALECTS[name].key_var is None)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_list_models_returns_the_predefined_schemas(stubs, name):
    schema = load_provider(DEFINITIONS / name)
    response = await stubs.providers.ListModels(prov_pb.ListModelsRequest(provider=name))
    expected = [m for t in schema.entity.supported_model_types for m in schema.models.get(t, [])]
    assert [m.name for m in response.models] == [m.model for m in expected]
    for got, want in zip(response.models, expected):
        assert [r.name for r in got.parameter_rules] == [r.name for r in want.parameter_rules]
        assert got.HasField("pricing") == (want.pricing is not None)
        if want.pricing is not None:
            assert Decimal(got.pricing.input) == want.pricing.input and got.pricing.currency == want.pricing.currency
        if want.model_type is ModelType.LLM:
            assert got.properties.fields["context_size"].number_value == want.model_properties["context_size"]
    if name in CUSTOMIZABLE_ONLY:
        assert expected == []


# ---- chat --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_unary_chat_speaks_the_dialect(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    response = await stubs.llm.Generate(llm_pb.GenerateRequest(
        target=tgt(d, mock), messages=[user("hello there")], model_parameters=struct({"max_tokens": 64})))
    assert response.message.content == mock.expected_reply("hello there")
    sent = mock.requests[-1]
    assert sent.path == path_of(d, "/chat/completions")
    assert sent.json["model"] == wire_model(d) and sent.json["max_tokens"] == 64
    assert_authenticated(d, sent)
    if d.usage != "none":
        assert response.usage.prompt_tokens == _prompt_tokens(sent.json)  # the provider's count, not ours
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_streamed_tool_calls_and_provider_usage(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    tool = llm_pb.Tool(name="get_weather", description="weather", parameters=struct(WEATHER))
    chunks = [c async for c in stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(
        target=tgt(d, mock), messages=[user("Paris please")], tools=[tool]))]
    sent = mock.requests[-1]
    assert sent.json["stream"] is True and sent.json["tools"][0]["function"]["parameters"] == WEATHER
    fragments = [t for c in chunks for t in c.delta.tool_calls]
    assert fragments[0].id and fragments[0].name == "get_weather"
    assert json.loads("".join(f.arguments for f in fragments)) == expected_tool_arguments(WEATHER, "Paris please")
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS
    # Usage comes from wherever this provider puts it (choices[0], x_groq, last chunk, ...);
    # servers that report none are counted locally.
    if d.usage != "none":
        assert final.usage.prompt_tokens == _prompt_tokens(sent.json)
    assert final.usage.total_tokens > 0


@pytest.mark.parametrize("name", [p for p in PROVIDERS if DIALECTS[p].key_var])  # keyless servers cannot refuse
async def test_bad_key_is_an_authorization_error(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    wrong = "wrong-key.zz" if d.auth == "zhipu" else "sk-wrong-key-000"
    f = await failure_of(stubs.llm.Generate(llm_pb.GenerateRequest(
        target=tgt(d, mock, key=wrong), messages=[user("hi")])))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert wrong not in f.message
    # MiniMax says so under HTTP 200 (base_resp 1004); everyone else with a 401.
    assert f.metadata.get("upstreamStatus") == (None if d.errors_in_body else "401")


@pytest.mark.parametrize("name", PROVIDERS)
async def test_rate_limit_is_resource_exhausted_with_retry_info(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    mock.enqueue(mock.rate_limited(retry_after=2), path=d.chat_path)
    received, f = await stream_failure(stubs.llm.StreamGenerate(llm_pb.StreamGenerateRequest(
        target=tgt(d, mock), messages=[user("hi")])))
    assert received == []
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"
    assert f.retry_delay == 2.0


# ---- credential validation ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PREDEFINED)
async def test_validate_provider_credentials_pings_like_dify(stubs, upstream, grpc_server, name):
    d, mock = DIALECTS[name], await upstream(name)
    creds = d.credentials(mock.url)
    reply = await stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider=name, credentials=struct(creds)))
    if d.key_var:
        assert reply.credentials.fields[d.key_var].string_value == "[__HIDDEN__]"
    sent = mock.requests[-1]
    options = grpc_server.runtime.registry.adapter(name).options
    if d.validate_models:  # a free listing proves the key
        assert sent.method == "GET" and sent.path == path_of(d, "/models")
    else:
        assert sent.method == "POST" and sent.path == path_of(d, "/chat/completions")
        assert sent.json["model"] == options.validate_model and sent.json["max_tokens"] == 5
        assert sent.json["messages"] == [{"role": "user", "content": "ping"}]
    if not d.key_var:
        return
    bad = dict(creds, **{d.key_var: "bad.key" if d.auth == "zhipu" else "sk-bad"})
    f = await failure_of(stubs.providers.ValidateProviderCredentials(prov_pb.ValidateProviderCredentialsRequest(
        provider=name, credentials=struct(bad))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"


@pytest.mark.parametrize("name", [p for p in PROVIDERS if DIALECTS[p].customizable is not None])
async def test_validate_model_credentials(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)

    def request(key=None):
        return prov_pb.ValidateModelCredentialsRequest(
            provider=name, model_type=common_pb2.MODEL_TYPE_LLM, model=d.chat_model,
            credentials=struct(d.credentials(mock.url, key)))

    reply = await stubs.providers.ValidateModelCredentials(request())
    sent = mock.requests[-1]
    if d.validate_get:  # Xinference: GET /v1/models/{uid}; its abilities come back as credentials
        assert sent.method == "GET" and sent.path == f"/v1/models/{wire_model(d)}"
        assert reply.credentials.fields["mode"].string_value == "chat"
        assert reply.credentials.fields["function_calling_type"].string_value == "tool_call"
        assert reply.credentials.fields["context_size"].string_value == "32768"
    else:
        assert sent.method == "POST" and sent.path == path_of(d, "/chat/completions")
        assert sent.json["max_tokens"] == 5 and sent.json["model"] == wire_model(d)
    if d.key_var:
        f = await failure_of(stubs.providers.ValidateModelCredentials(request(key="sk-bad")))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"


_PINGED = {"text-embedding": "/embeddings", "rerank": "/rerank", "speech2text": "/audio/transcriptions",
           "tts": "/audio/speech"}


@pytest.mark.parametrize(("name", "model_type"), [
    (p, t) for p in PROVIDERS for t in _PINGED
    if DIALECTS[p].customizable is not None and t in DIALECTS[p].customizable and not DIALECTS[p].validate_get
])
async def test_validate_model_credentials_pings_each_model_type(stubs, upstream, name, model_type):
    """A customizable model of every type is checked with a tiny real request of that type."""
    d, mock = DIALECTS[name], await upstream(name)
    await stubs.providers.ValidateModelCredentials(prov_pb.ValidateModelCredentialsRequest(
        provider=name, model_type=TYPES_PB[model_type], model=with_type(model_type, d),
        credentials=struct(d.credentials(mock.url, None, model_type))))
    sub = d.rerank_path or "/rerank" if model_type == "rerank" else _PINGED[model_type]
    assert mock.requests[-1].path == path_of(d, sub, model_type)


# ---- the other model types ---------------------------------------------------------------------


@pytest.mark.parametrize("name", offering("text-embedding"))
async def test_embeddings(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    response = await stubs.embedding.Embed(emb_pb.EmbedRequest(
        target=tgt(d, mock, "text-embedding"), texts=["first text", "second"],
        input_type=emb_pb.EMBEDDING_INPUT_TYPE_QUERY))
    for got, text in zip(response.embeddings, ["first text", "second"]):
        assert list(got.values) == pytest.approx(expected_embedding(text, 16), abs=1e-6)
    sent = mock.requests[-1]
    assert sent.path == path_of(d, "/embeddings", "text-embedding")
    assert sent.json["model"] == wire_model(d, "text-embedding")
    assert_authenticated(d, sent)
    if d.embedding_input_type:
        assert sent.json["input_type"] == "query"
    if d.embedding_style == "minimax":  # MiniMax's own shape, and its GroupId as a query parameter
        assert sent.json["texts"] == ["first text", "second"] and sent.json["type"] == "query"
        assert sent.query["GroupId"] == [d.extra_credentials["minimax_group_id"]]
    assert response.usage.tokens > 0


@pytest.mark.parametrize("name", offering("rerank"))
async def test_rerank(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    docs = ["paris is the capital of france", "bananas are yellow", "france borders spain"]
    response = await stubs.rerank.Rerank(rr_pb.RerankRequest(
        target=tgt(d, mock, "rerank"), query="capital of france", documents=docs, top_n=2))
    assert [r.index for r in response.documents] == [0, 2]
    assert [r.text for r in response.documents] == [docs[0], docs[2]]
    assert all(0.0 <= r.score <= 1.0 for r in response.documents)
    assert response.documents[0].score > response.documents[1].score
    sent = mock.requests[-1]
    assert sent.path == path_of(d, d.rerank_path or "/rerank", "rerank")
    assert sent.json["model"] == wire_model(d, "rerank")
    assert_authenticated(d, sent)


@pytest.mark.parametrize("name", offering("speech2text"))
async def test_speech2text(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    response = await stubs.stt.Transcribe(stt_pb.TranscribeRequest(
        target=tgt(d, mock, "speech2text"), audio=silent_wav(0.5), format="wav"))
    assert response.text.startswith("Mock transcription of audio.wav")
    sent = mock.requests[-1]
    assert sent.path == path_of(d, "/audio/transcriptions", "speech2text")
    assert sent.form().value("model") == wire_model(d, "speech2text")
    assert_authenticated(d, sent)


@pytest.mark.parametrize("name", offering("tts"))
async def test_tts(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    chunks = [c async for c in stubs.tts.StreamSynthesize(tts_pb.StreamSynthesizeRequest(
        target=tgt(d, mock, "tts"), text="Hello there."))]
    audio = b"".join(c.audio for c in chunks)
    sent = mock.requests[-1]
    assert sent.path == path_of(d, "/audio/speech", "tts") and sent.json["model"] == wire_model(d, "tts")
    voices = await stubs.tts.ListVoices(tts_pb.ListVoicesRequest(target=tgt(d, mock, "tts")))
    if d.native == "dashscope":  # Qwen-TTS: streamed PCM behind a WAV header; the voice is an input
        assert audio.startswith(b"RIFF") and chunks[0].mime_type == "audio/wav"
        assert sent.json["input"]["voice"] == voices.voices[0].id
    else:
        assert audio.startswith(b"ID3") and chunks[0].mime_type == "audio/mpeg"
        assert sent.json["voice"] == voices.voices[0].id


@pytest.mark.parametrize("name", offering("moderation"))
async def test_moderation(stubs, upstream, name):
    d, mock = DIALECTS[name], await upstream(name)
    calm = await stubs.moderation.Moderate(mod_pb.ModerateRequest(
        target=tgt(d, mock, "moderation"), text="a calm sentence"))
    assert calm.flagged is False
    angry = await stubs.moderation.Moderate(mod_pb.ModerateRequest(
        target=tgt(d, mock, "moderation"), text="I will kill the process"))
    assert angry.flagged is True  # Mistral sends no `flagged`: derived from the categories
    flagged = {c.name for c in angry.categories if c.flagged}
    assert flagged == {"violence_and_threats"}
    assert mock.requests[-1].path == path_of(d, "/moderations", "moderation")


@pytest.mark.parametrize("name", PROVIDERS)
async def test_every_offered_type_is_tested(name):
    schema = load_provider(DEFINITIONS / name).entity
    for model_type in schema.supported_model_types:
        assert with_type(model_type.value, DIALECTS[name]), f"{name}: no test model for {model_type.value}"
