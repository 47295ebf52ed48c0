"""ProviderService through the real server: catalog, schemas, credential validation."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from modelruntime.v1 import common_pb2
from modelruntime.v1 import provider_service_pb2 as pb

from tests.helpers import failure_of, struct
from tests.mocks.openai_mock import OpenAIMock

KEY = "sk-catalog-key"


@pytest.fixture(scope="module")
async def mock():
    async with OpenAIMock(api_keys=[KEY]) as m:
        yield m


async def test_list_providers_with_types_and_forms(stubs):
    response = await stubs.providers.ListProviders(pb.ListProvidersRequest())
    by_name = {p.name: p for p in response.providers}
    openai = by_name["openai"]
    assert openai.label.en_us == "OpenAI"
    assert set(openai.supported_model_types) == {
        common_pb2.MODEL_TYPE_LLM, common_pb2.MODEL_TYPE_TEXT_EMBEDDING, common_pb2.MODEL_TYPE_SPEECH2TEXT,
        common_pb2.MODEL_TYPE_MODERATION, common_pb2.MODEL_TYPE_TTS}
    fields = {f.variable: f for f in openai.provider_credential_fields}
    assert fields["openai_api_key"].type == pb.FORM_TYPE_SECRET_INPUT and fields["openai_api_key"].required
    assert not fields["openai_organization"].required
    compat = by_name["openai_api_compatible"]
    assert list(compat.configurate_methods) == [pb.CONFIGURATE_METHOD_CUSTOMIZABLE_MODEL]
    context_fields = [f for f in compat.model_credential_fields if f.variable == "context_size"]
    assert {f.show_on[0].value for f in context_fields} == {"llm", "text-embedding", "rerank"}
    only_rerank = await stubs.providers.ListProviders(pb.ListProvidersRequest(model_type=common_pb2.MODEL_TYPE_RERANK))
    assert "openai" not in {p.name for p in only_rerank.providers}


async def test_list_and_get_model_schema(stubs):
    models = (await stubs.providers.ListModels(pb.ListModelsRequest(
        provider="openai", model_type=common_pb2.MODEL_TYPE_LLM))).models
    names = [m.name for m in models]
    assert "gpt-4o" in names and "gpt-3.5-turbo" not in names  # deprecated hidden by default
    with_deprecated = await stubs.providers.ListModels(pb.ListModelsRequest(
        provider="openai", model_type=common_pb2.MODEL_TYPE_LLM, include_deprecated=True))
    assert "gpt-3.5-turbo" in [m.name for m in with_deprecated.models]
    model = (await stubs.providers.GetModel(pb.GetModelRequest(
        provider="openai", model_type=common_pb2.MODEL_TYPE_LLM, model="gpt-4o"))).model
    assert model.properties["mode"] == "chat" and model.properties["context_size"] == 128000
    assert pb.MODEL_FEATURE_TOOL_CALL in model.features and pb.MODEL_FEATURE_VISION in model.features
    rules = {r.name: r for r in model.parameter_rules}
    assert rules["temperature"].use_template == "temperature" and rules["temperature"].type == pb.PARAMETER_TYPE_FLOAT
    assert rules["temperature"].label.en_us == "Temperature"  # merged from the template
    assert rules["max_tokens"].HasField("max")
    assert Decimal(model.pricing.input) == Decimal("2.5") and model.pricing.currency == "USD"


async def test_customizable_schema_needs_credentials(stubs):
    f = await failure_of(stubs.providers.GetModel(pb.GetModelRequest(
        provider="openai_api_compatible", model_type=common_pb2.MODEL_TYPE_LLM, model="my-llama")))
    assert f.code == grpc.StatusCode.NOT_FOUND and "credentials" in f.violations
    model = (await stubs.providers.GetModel(pb.GetModelRequest(
        provider="openai_api_compatible", model_type=common_pb2.MODEL_TYPE_LLM, model="my-llama",
        credentials=struct({"endpoint_url": "http://127.0.0.1:1/v1", "mode": "completion",
                            "context_size": "8192", "function_calling_type": "tool_call",
                            "vision_support": "support", "max_tokens_to_sample": "2048"})))).model
    assert model.fetch_from == pb.FETCH_FROM_CUSTOMIZABLE_MODEL
    assert model.properties["mode"] == "completion" and model.properties["context_size"] == 8192
    assert {pb.MODEL_FEATURE_TOOL_CALL, pb.MODEL_FEATURE_MULTI_TOOL_CALL, pb.MODEL_FEATURE_VISION} <= set(model.features)
    assert {r.name: r for r in model.parameter_rules}["max_tokens"].max == 2048


async def test_unknown_provider_in_catalog(stubs):
    f = await failure_of(stubs.providers.GetProvider(pb.GetProviderRequest(provider="nope")))
    assert f.code == grpc.StatusCode.NOT_FOUND and f.reason == "InvokeBadRequestError"


async def test_validate_provider_credentials_masks_secrets(stubs, mock):
    response = await stubs.providers.ValidateProviderCredentials(pb.ValidateProviderCredentialsRequest(
        provider="openai", credentials=struct({"openai_api_key": KEY, "openai_api_base": mock.url, "junk": "x"})))
    assert response.credentials["openai_api_key"] == "[__HIDDEN__]"
    assert response.credentials["openai_api_base"] == mock.url and "junk" not in response.credentials
    assert mock.requests[-1].path == "/v1/models"  # free check: no tokens spent


async def test_validate_provider_credentials_failure(stubs, mock):
    f = await failure_of(stubs.providers.ValidateProviderCredentials(pb.ValidateProviderCredentialsRequest(
        provider="openai", credentials=struct({"openai_api_key": "sk-bad", "openai_api_base": mock.url}))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    assert "sk-bad" not in f.message
    f = await failure_of(stubs.providers.ValidateProviderCredentials(pb.ValidateProviderCredentialsRequest(
        provider="openai", credentials=struct({}))))
    assert "credentials.openai_api_key" in f.violations


async def test_validate_model_credentials_for_compatible_llm(stubs, mock):
    response = await stubs.providers.ValidateModelCredentials(pb.ValidateModelCredentialsRequest(
        provider="openai_api_compatible", model_type=common_pb2.MODEL_TYPE_LLM, model="gpt-4o-mini",
        credentials=struct({"endpoint_url": mock.base_url, "api_key": KEY, "mode": "chat", "context_size": "4096"})))
    assert response.credentials["api_key"] == "[__HIDDEN__]"
    sent = mock.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.json["max_tokens"] == 5
    f = await failure_of(stubs.providers.ValidateModelCredentials(pb.ValidateModelCredentialsRequest(
        provider="openai_api_compatible", model_type=common_pb2.MODEL_TYPE_LLM, model="gpt-4o-mini",
        credentials=struct({"endpoint_url": mock.base_url, "api_key": "wrong", "mode": "chat", "context_size": "4096"}))))
    assert f.reason == "CredentialsValidateFailedError"


async def test_list_remote_models_with_credentials(stubs, mock):
    response = await stubs.providers.ListModels(pb.ListModelsRequest(
        provider="openai_api_compatible", model_type=common_pb2.MODEL_TYPE_LLM,
        credentials=struct({"endpoint_url": mock.base_url, "api_key": KEY, "mode": "chat", "context_size": "4096"})))
    names = {m.name for m in response.models}
    assert "gpt-4o-mini" in names and all(m.fetch_from == pb.FETCH_FROM_CUSTOMIZABLE_MODEL
                                          for m in response.models)
