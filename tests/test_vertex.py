"""The vertex_ai provider through the real gRPC server against the Vertex AI + OAuth token mock.

Service-account keys are RSA keys made here with ``cryptography``; the mock verifies the
JWT signatures with their public keys.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import math
import time
from decimal import Decimal
from types import SimpleNamespace

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import provider_service_pb2 as pv_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb

from providers.protocols.vertex import endpoint
from providers.protocols.vertex.auth import make_assertion, parse_service_account
from tests.helpers import failure_of, stream_failure, struct, target, user
from tests.mocks.anthropic_mock import count_input_tokens, expected_tool_input
from tests.mocks.gemini_mock import expected_args, hang, rate_limit
from tests.mocks.gemini_replies import count_tokens, expected_embedding
from tests.mocks.vertex_mock import VertexMock

PROJECT = "test-project"
GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-haiku-4-5@20251001"
BASE = f"/v1/projects/{PROJECT}/locations/us-central1/publishers"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city"],
}
_names = itertools.count()


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys():
    return SimpleNamespace(good=_key(), other=_key())


@pytest.fixture(scope="module")
async def mock():
    async with VertexMock(project=PROJECT) as m:
        yield m


class Account:
    """A service account registered with the mock; ``signing_key`` may differ (an impostor key)."""

    def __init__(self, mock: VertexMock, key: rsa.RSAPrivateKey, signing_key: rsa.RSAPrivateKey | None = None,
                 register: bool = True) -> None:
        n = next(_names)
        self.email = f"sa-{n}@{PROJECT}.iam.gserviceaccount.com"
        self.kid = f"{n:040x}"
        self.pem = (signing_key or key).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        self.mock = mock
        if register:
            mock.add_account(self.email, self.kid, key.public_key())

    def key_json(self) -> str:
        return json.dumps({
            "type": "service_account", "project_id": PROJECT, "private_key_id": self.kid, "private_key": self.pem,
            "client_email": self.email, "client_id": "1234567890", "token_uri": self.mock.token_url,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        })

    def creds(self, **overrides) -> dict:
        return {"vertex_project_id": PROJECT, "vertex_location": "us-central1",
                "vertex_service_account_key": self.key_json(), "vertex_endpoint_url": self.mock.url, **overrides}

    def assert_not_in(self, text: str) -> None:
        assert "PRIVATE KEY" not in text
        for line in self.pem.strip().splitlines()[1:-1]:
            assert line not in text


@pytest.fixture
def account(mock, keys) -> Account:
    """A fresh service account: nothing of it is in the token cache yet."""
    return Account(mock, keys.good)


def req(acct: Account, model=GEMINI, messages=None, cls=llm_pb.GenerateRequest, creds=None, **kw):
    return cls(target=target("vertex_ai", model, creds or acct.creds()), messages=messages or [user("hello there")],
               **kw)


def sreq(acct: Account, **kw):
    return req(acct, cls=llm_pb.StreamGenerateRequest, **kw)


def tool(name: str = "get_weather") -> llm_pb.Tool:
    return llm_pb.Tool(name=name, description=f"{name} tool", parameters=struct(WEATHER))


def jwt_parts(assertion: str) -> tuple[dict, dict]:
    header, claims, _ = assertion.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)
    return json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(base64.urlsafe_b64decode(pad(claims)))


# ---- catalog and URLs ------------------------------------------------------------------------


async def test_provider_form_and_models_are_listed(stubs):
    providers = {p.name: p for p in (await stubs.providers.ListProviders(pv_pb.ListProvidersRequest())).providers}
    vertex = providers["vertex_ai"]
    assert set(vertex.supported_model_types) == {common_pb2.MODEL_TYPE_LLM, common_pb2.MODEL_TYPE_TEXT_EMBEDDING}
    fields = {f.variable: f for f in vertex.provider_credential_fields}
    assert fields["vertex_service_account_key"].type == pv_pb.FORM_TYPE_SECRET_INPUT
    assert fields["vertex_project_id"].required and fields["vertex_service_account_key"].required
    location = fields["vertex_location"]
    assert location.type == pv_pb.FORM_TYPE_SELECT
    assert {"global", "us-central1", "europe-west4", "asia-northeast1"} <= {o.value for o in location.options}
    assert not fields["vertex_endpoint_url"].required and not fields["vertex_token_uri"].required
    llms = [m.name for m in (await stubs.providers.ListModels(pv_pb.ListModelsRequest(
        provider="vertex_ai", model_type=common_pb2.MODEL_TYPE_LLM))).models]
    assert {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "claude-sonnet-4-6", CLAUDE} <= set(llms)
    embeddings = [m.name for m in (await stubs.providers.ListModels(pv_pb.ListModelsRequest(
        provider="vertex_ai", model_type=common_pb2.MODEL_TYPE_TEXT_EMBEDDING))).models]
    assert {"text-embedding-005", "gemini-embedding-001"} <= set(embeddings)


def test_regional_and_global_hosts():
    def ctx(**creds):
        return SimpleNamespace(credentials={"vertex_project_id": "p-1", **creds}, options={})

    assert endpoint.model_url(ctx(vertex_location="europe-west4"), "google", "gemini-2.5-pro", "generateContent") == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p-1/locations/europe-west4"
        "/publishers/google/models/gemini-2.5-pro:generateContent")
    assert endpoint.model_url(ctx(vertex_location="global"), "anthropic", CLAUDE, "rawPredict") == (
        "https://aiplatform.googleapis.com/v1/projects/p-1/locations/global"
        f"/publishers/anthropic/models/{CLAUDE}:rawPredict")
    assert endpoint.host(ctx(vertex_endpoint_url="http://h:8/v1/")) == "http://h:8"
    with pytest.raises(Exception, match="location"):
        endpoint.host(ctx(vertex_location="evil.example/x"))


def test_key_forms_and_the_assertion(keys):
    acct = Account(VertexMock(), keys.good, register=False)
    raw = acct.key_json()
    wrapped = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    wrapped = "\n".join(wrapped[i:i + 76] for i in range(0, len(wrapped), 76))  # pasted with line breaks
    for form in (raw, "\ufeff  " + raw, base64.b64encode(raw.encode()).decode(), wrapped):
        parsed = parse_service_account(form)
        assert (parsed.client_email, parsed.private_key_id) == (acct.email, acct.kid)
        assert acct.pem not in repr(parsed)
    header, claims = jwt_parts(make_assertion(parsed, "https://oauth2.googleapis.com/token", now=1_700_000_000))
    assert header["kid"] == acct.kid and claims == {
        "iss": acct.email, "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": "https://oauth2.googleapis.com/token", "iat": 1_700_000_000, "exp": 1_700_003_600}


# ---- Gemini on Vertex ------------------------------------------------------------------------


async def test_gemini_unary_with_bearer_token_and_priced_usage(stubs, mock, account):
    response = await stubs.llm.Generate(req(account, model_parameters=struct({"max_tokens": 200})))
    assert response.message.content == mock.gemini.expected_reply("hello there")
    sent = mock.api_requests[-1]
    assert sent.path == f"{BASE}/google/models/{GEMINI}:generateContent"
    token = mock.token_requests[-1]
    assert sent.headers["authorization"].startswith("Bearer ya29.mock-") and "x-goog-api-key" not in sent.headers
    assert sent.json["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
    assert sent.json["generationConfig"] == {"maxOutputTokens": 200}
    reply = mock.gemini.replies[-1]
    assert response.usage.prompt_tokens == reply.prompt_tokens
    assert Decimal(response.usage.prompt_unit_price) == Decimal("0.3")
    header, claims = jwt_parts(dict(x.split("=", 1) for x in token.body.decode().split("&"))["assertion"])
    assert header == {"alg": "RS256", "typ": "JWT", "kid": account.kid}
    assert claims["iss"] == account.email and claims["aud"] == mock.token_url
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert claims["exp"] - claims["iat"] == 3600


async def test_gemini_stream_with_function_calls(stubs, mock, account):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(
        account, messages=[user("Paris")], tools=[tool("get_weather"), tool("get_forecast")]))]
    sent = mock.api_requests[-1]
    assert sent.path == f"{BASE}/google/models/{GEMINI}:streamGenerateContent" and sent.query_one("alt") == "sse"
    deltas = [d for c in chunks for d in c.delta.tool_calls]
    assert [(d.index, d.id, d.name) for d in deltas] == [(0, "call_0", "get_weather"), (1, "call_1", "get_forecast")]
    parameters = sent.json["tools"][0]["functionDeclarations"][0]["parameters"]
    assert json.loads(deltas[0].arguments) == expected_args(parameters, "Paris")
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and final.usage.total_tokens > 0


async def test_gemini_count_tokens_uses_vertex_count_tokens(stubs, mock, account):
    response = await stubs.llm.CountTokens(llm_pb.CountTokensRequest(
        target=target("vertex_ai", GEMINI, account.creds()), messages=[user("hello world")], tools=[tool()]))
    sent = mock.api_requests[-1]
    assert sent.path == f"{BASE}/google/models/{GEMINI}:countTokens"
    assert "generateContentRequest" not in sent.json and sent.json["contents"][0]["parts"] == [{"text": "hello world"}]
    assert response.tokens > count_tokens("hello world")  # the tool declaration counts too


# ---- Claude on Vertex ------------------------------------------------------------------------


async def test_claude_stream_with_a_split_tool_use(stubs, mock, account):
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(account, model=CLAUDE, messages=[user("Paris please")],
                                                             tools=[tool()]))]
    sent = mock.api_requests[-1]
    assert sent.path == f"{BASE}/anthropic/models/{CLAUDE}:streamRawPredict"
    assert sent.headers["authorization"].startswith("Bearer ") and "x-api-key" not in sent.headers
    body = sent.json
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body and body["stream"] is True
    assert body["tools"][0]["input_schema"] == WEATHER
    assert "".join(c.delta.content for c in chunks) == "Let me check that."
    fragments = [d for c in chunks for d in c.delta.tool_calls]
    assert len(fragments) > 5 and fragments[0].id.startswith("toolu_") and fragments[0].name == "get_weather"
    assert json.loads("".join(f.arguments for f in fragments)) == expected_tool_input(WEATHER, "Paris please")
    final = chunks[-1]
    assert final.finish_reason == llm_pb.FINISH_REASON_TOOL_CALLS and final.provider_finish_reason == "tool_use"
    assert Decimal(final.usage.prompt_unit_price) == Decimal(1)


async def test_claude_unary_and_count_tokens(stubs, mock, account):
    response = await stubs.llm.Generate(req(account, model="claude-sonnet-4-6"))
    sent = mock.api_requests[-1]
    assert sent.path == f"{BASE}/anthropic/models/claude-sonnet-4-6:rawPredict" and "stream" not in sent.json
    assert response.message.content == mock.claude.expected_reply("hello there")
    assert response.finish_reason == llm_pb.FINISH_REASON_STOP and response.usage.completion_tokens > 0
    counted = await stubs.llm.CountTokens(llm_pb.CountTokensRequest(
        target=target("vertex_ai", CLAUDE, account.creds()), messages=[user("hello world")]))
    sent = mock.api_requests[-1]
    assert sent.path == f"{BASE}/anthropic/models/count-tokens:rawPredict"
    assert sent.json["model"] == CLAUDE and sent.json["anthropic_version"] == "vertex-2023-10-16"
    assert counted.tokens == count_input_tokens({k: v for k, v in sent.json.items() if k != "anthropic_version"})


# ---- embeddings ------------------------------------------------------------------------------


async def test_embeddings_through_predict(stubs, mock, account):
    docs = ["first document", "second document", "third"]
    response = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("vertex_ai", "text-embedding-005", account.creds()), texts=docs,
        input_type=te_pb.EMBEDDING_INPUT_TYPE_DOCUMENT, dimensions=256))
    sent = mock.api_requests[-1]
    assert sent.path == f"{BASE}/google/models/text-embedding-005:predict"
    assert sent.json == {"instances": [{"content": d, "task_type": "RETRIEVAL_DOCUMENT"} for d in docs],
                         "parameters": {"outputDimensionality": 256}}
    for text, emb in zip(docs, response.embeddings):
        assert len(emb.values) == 256
        assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(
            emb.values, expected_embedding(text, "RETRIEVAL_DOCUMENT", 256, 768)))
    assert response.usage.tokens == sum(count_tokens(d) for d in docs)  # Vertex's own counts
    before = len(mock.api_requests)
    query = await stubs.embedding.Embed(te_pb.EmbedRequest(
        target=target("vertex_ai", "gemini-embedding-001", account.creds()), texts=["a question?", "another"],
        input_type=te_pb.EMBEDDING_INPUT_TYPE_QUERY))
    sent = mock.api_requests[before:]
    assert len(sent) == 2, "gemini-embedding-001 takes one instance per request on Vertex"
    assert all(len(r.json["instances"]) == 1 and r.json["instances"][0]["task_type"] == "RETRIEVAL_QUERY"
               for r in sent)
    assert len(query.embeddings[0].values) == 3072 and Decimal(query.usage.unit_price) == Decimal("0.15")


# ---- the token: cache, concurrency, refresh --------------------------------------------------


async def test_token_is_cached_across_calls(stubs, mock, account):
    before = len(mock.token_requests)
    await stubs.llm.Generate(req(account))
    _ = [c async for c in stubs.llm.StreamGenerate(sreq(account, model=CLAUDE))]
    await stubs.embedding.Embed(te_pb.EmbedRequest(target=target("vertex_ai", "text-embedding-005", account.creds()),
                                                   texts=["x"]))
    assert len(mock.token_requests) == before + 1
    tokens = {r.headers["authorization"] for r in mock.api_requests[-3:]}
    assert len(tokens) == 1


async def test_one_exchange_for_concurrent_calls(stubs, mock, account):
    before = len(mock.token_requests)
    results = await asyncio.gather(*[stubs.llm.Generate(req(account, messages=[user(f"call {i}")])) for i in range(8)])
    assert [r.message.content for r in results] == [mock.gemini.expected_reply(f"call {i}") for i in range(8)]
    assert len(mock.token_requests) == before + 1


async def test_a_token_refused_with_401_is_replaced_and_the_call_retried(stubs, mock, account):
    await stubs.llm.Generate(req(account))
    before_tokens, before_api = len(mock.token_requests), len(mock.api_requests)
    mock.expire_all()
    response = await stubs.llm.Generate(req(account))
    assert response.message.content == mock.gemini.expected_reply("hello there")
    assert len(mock.token_requests) == before_tokens + 1 and len(mock.api_requests) == before_api + 2
    first, second = mock.api_requests[-2:]
    assert first.headers["authorization"] != second.headers["authorization"]
    mock.expire_all()  # a stream too, and Claude: nothing had been streamed yet
    chunks = [c async for c in stubs.llm.StreamGenerate(sreq(account, model=CLAUDE))]
    assert "".join(c.delta.content for c in chunks) == mock.claude.expected_reply("hello there")
    assert len(mock.token_requests) == before_tokens + 2


async def test_short_lived_tokens_are_refreshed_before_they_expire(stubs, keys):
    async with VertexMock(project=PROJECT, token_lifetime=61.0) as short:
        acct = Account(short, keys.good)
        await stubs.llm.Generate(req(acct))
        await stubs.llm.Generate(req(acct))
        assert len(short.token_requests) == 1  # valid for 1 s more than the 60 s margin
        await asyncio.sleep(1.1)
        await stubs.llm.Generate(req(acct))
        assert len(short.token_requests) == 2 and len(short.api_requests) == 3  # refreshed ahead: no 401


async def test_vertex_token_uri_overrides_the_keys_token_uri(stubs, mock, account):
    creds = account.creds(vertex_service_account_key=account.key_json().replace(mock.token_url, "http://127.0.0.1:9/t"),
                          vertex_token_uri=mock.token_url)
    before = len(mock.token_requests)
    await stubs.llm.Generate(req(account, creds=creds))
    assert len(mock.token_requests) == before + 1


async def test_base64_encoded_key_is_accepted(stubs, mock, account):
    encoded = base64.b64encode(account.key_json().encode()).decode()
    response = await stubs.llm.Generate(req(account, creds=account.creds(vertex_service_account_key=encoded)))
    assert response.message.content == mock.gemini.expected_reply("hello there")


# ---- errors ------------------------------------------------------------------------------------


async def test_rejected_service_account_is_an_authorization_error(stubs, mock, keys, caplog):
    impostor = Account(mock, keys.good, signing_key=keys.other)  # registered key != signing key
    caplog.set_level(logging.DEBUG)
    f = await failure_of(stubs.llm.Generate(req(impostor)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert "invalid_grant" in f.message and "Invalid JWT Signature" in f.message
    assert "credentials.vertex_service_account_key" in f.violations
    assert f.metadata["upstreamStatus"] == "400"
    unknown = Account(mock, keys.good, register=False)
    f2 = await failure_of(stubs.llm.Generate(req(unknown)))
    assert f2.reason == "InvokeAuthorizationError" and "account not found" in f2.message
    for text in (f.message + repr(f.violations), f2.message + repr(f2.violations), caplog.text):
        impostor.assert_not_in(text)
        unknown.assert_not_in(text)


async def test_malformed_keys_never_echo_the_key(stubs, mock, account):
    header = account.pem.splitlines()[0]  # the PEM's BEGIN line, as JSON escapes it below
    broken = account.key_json().replace(header + "\\n", header + "\\nAAAA")
    cases = {"not json": "{" + account.pem, "broken PEM": broken,
             "no private_key": json.dumps({"client_email": account.email, "type": "service_account"})}
    for name, value in cases.items():
        f = await failure_of(stubs.llm.Generate(req(account, creds=account.creds(vertex_service_account_key=value))))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError", name
        assert "credentials.vertex_service_account_key" in f.violations, name
        account.assert_not_in(f.message + repr(f.violations))


async def test_token_endpoint_failures(stubs, mock, account):
    mock.fail_next_token(503, {"error": "internal_failure", "error_description": "Backend Error"})
    f = await failure_of(stubs.llm.Generate(req(account)))
    assert f.code == grpc.StatusCode.UNAVAILABLE and f.reason == "InvokeServerUnavailableError"
    mock.fail_next_token(400, {"error": "invalid_grant", "error_description": "Invalid grant: account not found"})
    f = await failure_of(stubs.llm.Generate(req(account)))
    assert f.reason == "InvokeAuthorizationError" and "account not found" in f.message
    response = await stubs.llm.Generate(req(account))  # nothing bad was cached
    assert response.message.content


async def test_rate_limits_are_resource_exhausted(stubs, mock, account):
    mock.gemini.enqueue(rate_limit("3s"), method="generateContent")
    f = await failure_of(stubs.llm.Generate(req(account)))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError" and f.retry_delay == 3
    mock.fail_next(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/"
                   "online_prediction_requests_per_base_model with base model: anthropic-claude-haiku-4-5.")
    received, f = await stream_failure(stubs.llm.StreamGenerate(sreq(account, model=CLAUDE)))
    assert received == [] and f.code == grpc.StatusCode.RESOURCE_EXHAUSTED and f.reason == "InvokeRateLimitError"


async def test_permission_denied_is_not_retried(stubs, mock, account):
    await stubs.llm.Generate(req(account))
    before_tokens, before_api = len(mock.token_requests), len(mock.api_requests)
    f = await failure_of(stubs.llm.Generate(req(account, creds=account.creds(vertex_project_id="someone-else"))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "InvokeAuthorizationError"
    assert f.metadata["upstreamStatus"] == "403"
    assert len(mock.token_requests) == before_tokens and len(mock.api_requests) == before_api + 1


async def test_cancel_closes_the_upstream_connection(stubs, mock, account):
    await stubs.llm.Generate(req(account))  # the token is cached: the stream goes straight to Vertex
    mock.gemini.enqueue(hang(), method="streamGenerateContent")
    call = stubs.llm.StreamGenerate(sreq(account))
    await mock.server.wait_requests(len(mock.server.requests) + 1)
    await asyncio.sleep(0.05)
    conn = next(c for c in mock.server.connections if c.id == mock.api_requests[-1].connection_id)
    assert not conn.closed
    cancelled_at = time.monotonic()
    call.cancel()
    record = await mock.server.wait_connection_closed(timeout=2.0, conn_id=conn.id)
    assert record.closed_by_peer and record.closed_at - cancelled_at < 0.1


# ---- credential validation -------------------------------------------------------------------


async def test_validate_provider_credentials_pings_a_cheap_model(stubs, mock, keys, account):
    response = await stubs.providers.ValidateProviderCredentials(pv_pb.ValidateProviderCredentialsRequest(
        provider="vertex_ai", credentials=struct(account.creds())))
    assert response.credentials["vertex_service_account_key"] == "[__HIDDEN__]"
    assert response.credentials["vertex_project_id"] == PROJECT
    sent = mock.api_requests[-1]
    assert sent.path == f"{BASE}/google/models/gemini-2.5-flash-lite:generateContent"
    assert sent.json["generationConfig"]["maxOutputTokens"] == 5
    impostor = Account(mock, keys.good, signing_key=keys.other)
    f = await failure_of(stubs.providers.ValidateProviderCredentials(pv_pb.ValidateProviderCredentialsRequest(
        provider="vertex_ai", credentials=struct(impostor.creds()))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and f.reason == "CredentialsValidateFailedError"
    impostor.assert_not_in(f.message + repr(f.violations))
    f = await failure_of(stubs.providers.ValidateProviderCredentials(pv_pb.ValidateProviderCredentialsRequest(
        provider="vertex_ai", credentials=struct({"vertex_project_id": PROJECT}))))
    assert f.reason == "CredentialsValidateFailedError"
    assert "credentials.vertex_service_account_key" in f.violations


# ---- parameter checks of the publishers' models ------------------------------------------------


async def test_model_checks_apply_on_vertex_before_any_call(stubs, mock, account):
    before = len(mock.api_requests)
    prefill = [user("Name a colour."), llm_pb.Message(role=llm_pb.ROLE_ASSISTANT,
                                                      content=[llm_pb.ContentPart(text="The colour is")])]
    f = await failure_of(stubs.llm.Generate(req(account, model="claude-sonnet-4-6", messages=prefill)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and set(f.violations) == {"messages[1]"}
    f = await failure_of(stubs.llm.Generate(req(account, model="gemini-3.1-pro-preview",
                                                model_parameters=struct({"thinking_budget": 2048}))))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT and set(f.violations) == {"model_parameters.thinking_budget"}
    assert len(mock.api_requests) == before
