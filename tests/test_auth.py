"""Caller keys, scopes, limits, budgets, stored credentials and the ledger, in one process on SQLite.

Driven through the typed admin client, raw gRPC stubs, grpcurl and the official openai SDK, against
the OpenAI mock (a real HTTP server on 127.0.0.1). Cross-process and Redis/PostgreSQL behaviour:
test_auth_shared.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import modelruntime
import openai
import pytest
from modelruntime import AsyncModelRuntimeClient, ModelRuntimeClient
from modelruntime.admin import AsyncAdminClient
from modelruntime.v1 import llm_service_pb2 as llm_pb

from server.auth import check_exposure
from server.auth.crypto import Keyring, generate_key_spec
from server.config import AuthConfig, Config, ConfigError, GrpcConfig
from tests.auth_env import (
    ENV,
    KEY,
    bearer,
    creds,
    details,
    req,
    server_fixture,
    upstream_fixture,
)
from tests.helpers import user
from tests.mocks.openai_mock import slow_stream

mock = upstream_fixture()
env = server_fixture("authdata")


async def test_missing_and_unknown_key_are_unauthenticated(env, mock):
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await env["llm"].Generate(req(mock, creds(mock)))
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert details(missing.value)["ErrorInfo"].reason == "CALLER_KEY_MISSING"
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer("mrk_nope"))
    assert details(unknown.value)["ErrorInfo"].reason == "CALLER_KEY_INVALID"
    client = openai.AsyncOpenAI(base_url=env["http"], api_key="mrk_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    await client.close()


async def test_admin_service_needs_an_admin_key(env, mock):
    created = await env["admin"].create_key("plain")
    plain = AsyncAdminClient(channel=env["channel"], api_key=created.secret)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await plain.list_keys()
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    keys = await env["admin"].list_keys()
    assert "plain" in [k.name for k in keys]
    assert all(created.secret not in str(k) for k in keys)  # never the secret


async def test_scopes_deny_other_models_on_both_doors(env, mock):
    created = await env["admin"].create_key("scoped", providers=["openai"], models=["gpt-4o-mini"])
    ok = await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    assert ok.message.content
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await env["llm"].Generate(req(mock, creds(mock), model="gpt-4o"), metadata=bearer(created.secret))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    found = details(denied.value)
    assert found["ErrorInfo"].reason == "CALLER_SCOPE_DENIED"
    assert found["ResourceInfo"].resource_name == "providers/openai/models/gpt-4o"
    client = openai.AsyncOpenAI(base_url=env["http"], api_key=created.secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    await client.close()


async def test_request_rate_limit_is_caller_quota_with_retry_and_quota_failure(env, mock):
    created = await env["admin"].create_key("rpm", requests_per_minute=2)
    for _ in range(2):
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    with pytest.raises(grpc.aio.AioRpcError) as over:
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    assert over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    found = details(over.value)
    assert found["ErrorInfo"].reason == "CALLER_QUOTA_EXCEEDED"  # not the provider's InvokeRateLimitError
    assert found["ErrorInfo"].metadata["limit_owner"] == "caller"
    assert 0 < found["RetryInfo"].retry_delay.ToMilliseconds() <= 60_000
    assert found["QuotaFailure"].violations[0].quota_id == "requests_per_minute"
    assert found["QuotaFailure"].violations[0].subject == f"keys/{created.key.id}"
    client = openai.AsyncOpenAI(base_url=env["http"], api_key=created.secret, max_retries=0)
    with pytest.raises(openai.RateLimitError) as http_over:
        await client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                             extra_headers={"x-provider-credentials": json.dumps(creds(mock))})
    assert http_over.value.response.headers["x-model-runtime-error"] == "CALLER_QUOTA_EXCEEDED"
    assert int(http_over.value.response.headers["retry-after"]) >= 1
    await client.close()


async def test_budget_is_exhausted_by_priced_usage(env, mock):
    created = await env["admin"].create_key("budget", budget_usd="0.000001", budget_period="day")
    first = await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    assert float(first.usage.total_price) > 0.000001  # priced with the model's own pricing
    await asyncio.sleep(0.1)  # the charge is applied off the hot path
    with pytest.raises(grpc.aio.AioRpcError) as over:
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    found = details(over.value)
    assert found["QuotaFailure"].violations[0].quota_id == "budget_usd_per_day"


async def test_stored_credentials_encrypted_masked_and_used_by_name(env, mock):
    stored = await env["admin"].put_credentials("team-openai", "openai", creds(mock))
    assert stored.masked_credentials["openai_api_key"] == "[__HIDDEN__]"
    assert stored.encryption_key_id == "k1"
    listed = await env["admin"].list_credentials()
    assert [c.masked_credentials["openai_api_key"] for c in listed if c.name == "team-openai"] == ["[__HIDDEN__]"]
    db = (Path(env["data"]) / "modelruntime.db").read_bytes() + b"".join(
        p.read_bytes() for p in Path(env["data"]).glob("modelruntime.db-wal"))
    assert KEY.encode() not in db  # encrypted at rest
    created = await env["admin"].create_key("named", credentials=["team-*"], deny_raw_credentials=True)
    reply = await env["llm"].Generate(req(mock, name="team-openai"), metadata=bearer(created.secret))
    assert reply.message.content
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    assert details(raw.value)["ErrorInfo"].reason == "RAW_CREDENTIALS_DENIED"
    other = await env["admin"].create_key("other")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await env["llm"].Generate(req(mock, name="team-openai"), metadata=bearer(other.secret))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # HTTP: server-side, the key's stored credentials for the provider
    client = openai.AsyncOpenAI(base_url=env["http"], api_key=created.secret, max_retries=0)
    out = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert out.choices[0].message.content
    await client.close()


async def test_bad_credentials_are_refused_on_the_way_in(env, mock):
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await env["admin"].put_credentials("broken", "openai", {**creds(mock), "openai_api_key": "sk-wrong"})
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sk-wrong" not in (bad.value.details() or "")
    assert "broken" not in [c.name for c in await env["admin"].list_credentials()]


async def test_encryption_key_rotation_reencrypts(env, mock):
    await env["admin"].put_credentials("rotating", "openai", creds(mock))
    gate = env["running"].gate
    old = os.environ[ENV]
    gate.keyring = Keyring.parse(generate_key_spec("k2") + "," + old)
    result = await env["admin"].reencrypt_credentials()
    assert result.encryption_key_id == "k2" and result.count >= 1
    assert {c.encryption_key_id for c in await env["admin"].list_credentials()} == {"k2"}
    gate.keyring = Keyring.parse(old)  # k1 only: the k2 rows no longer decrypt
    await gate.refresh(force=True)  # a keyring without k2: the rows do not decrypt, nothing falls back
    created = await env["admin"].create_key("rot", credentials=["rotating"])
    with pytest.raises(grpc.aio.AioRpcError) as unreadable:
        await env["llm"].Generate(req(mock, name="rotating"), metadata=bearer(created.secret))
    assert unreadable.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # never ciphertext as a key
    gate.keyring = Keyring.parse(f"{generate_key_spec('k3')},{old}")
    await gate.refresh(force=True)


async def test_revoked_and_rotated_keys_stop_working(env, mock):
    created = await env["admin"].create_key("short-lived")
    await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    rotated = await env["admin"].rotate_key(created.key.id)
    with pytest.raises(grpc.aio.AioRpcError):
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(rotated.secret))
    await env["admin"].revoke_key(created.key.id)
    with pytest.raises(grpc.aio.AioRpcError) as revoked:
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(rotated.secret))
    assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_ledger_records_calls_and_a_cancelled_stream(env, mock):
    created = await env["admin"].create_key("ledger")
    await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    mock.enqueue(slow_stream(0.2), path="/chat/completions")
    words = " ".join(f"w{i}" for i in range(40))
    request = llm_pb.StreamGenerateRequest(target=req(mock, creds(mock)).target, messages=[user(words)])
    call = env["llm"].StreamGenerate(request, metadata=bearer(created.secret))
    got = 0
    async for chunk in call:
        got += bool(chunk.delta.content) if hasattr(chunk, "delta") else 1
        if got >= 2:
            break
    call.cancel()
    await mock.wait_connection_closed(timeout=3.0)
    # The cancelled call's tokens are counted off the hot path (the tokenizer may still be loading):
    # wait for its row rather than for a fixed time.
    for _ in range(100):
        totals = await env["admin"].query_usage(key_id=created.key.id)
        if sum(t.requests for t in totals) >= 2:
            break
        await asyncio.sleep(0.1)
    assert sum(t.requests for t in totals) == 2
    assert sum(t.cancelled for t in totals) == 1
    row = totals[0]
    assert row.model == "gpt-4o-mini" and row.model_type == "llm" and row.prompt_tokens > 0
    assert float(row.cost) > 0


async def test_grpcurl_with_bearer_key(env, mock):
    grpcurl = Path(sys.executable).parent / "grpcurl"
    created = await env["admin"].create_key("curl")
    body = json.dumps({"target": {"provider": "openai", "model": "gpt-4o-mini", "credentials": creds(mock)},
                       "messages": [{"role": "ROLE_USER", "content": [{"text": "hi"}]}]})
    args = [str(grpcurl), "-plaintext", "-d", body]
    addr = [f"127.0.0.1:{env['running'].port}", "modelruntime.v1.LLMService/Generate"]
    ok = await asyncio.to_thread(subprocess.run, [*args, "-H", f"authorization: Bearer {created.secret}", *addr],
                                 capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert "message" in json.loads(ok.stdout)
    refused = await asyncio.to_thread(subprocess.run, [*args, *addr], capture_output=True, text=True, timeout=30)
    assert "Unauthenticated" in refused.stderr and "CALLER_KEY_MISSING" in refused.stderr


def test_non_loopback_without_auth_refuses_to_start():
    config = Config(grpc=GrpcConfig(host="0.0.0.0"))
    with pytest.raises(ConfigError, match="not loopback"):
        check_exposure(config)
    check_exposure(Config())  # loopback default: fine
    check_exposure(Config(grpc=GrpcConfig(host="0.0.0.0"), auth=AuthConfig(allow_unauthenticated_non_loopback=True)))
    check_exposure(Config(grpc=GrpcConfig(host="0.0.0.0"), auth=AuthConfig(enabled=True)))


def test_cli_creates_the_first_admin_key_without_a_server(tmp_path):
    env = {**os.environ, "MODEL_RUNTIME_STORAGE__DATA_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "server", "keys", "create", "--name", "admin", "--admin"],
                         check=False, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    created = json.loads(run.stdout)
    assert created["secret"].startswith("mrk_") and created["admin"]
    listed = subprocess.run([sys.executable, "-m", "server", "keys", "list"], check=False, capture_output=True, text=True,
                            env=env, timeout=60)
    assert created["id"] in listed.stdout and created["secret"] not in listed.stdout
    assert created["secret"].encode() not in (tmp_path / "modelruntime.db").read_bytes()


async def test_typed_clients_send_the_api_key_and_name_stored_credentials(env, mock):
    await env["admin"].put_credentials("client-openai", "openai", creds(mock))
    created = await env["admin"].create_key("typed", credentials=["client-*"], deny_raw_credentials=True,
                                            requests_per_minute=3)
    if time.time() % 60 > 50:  # the three admitted calls and the refused one in one minute window
        await asyncio.sleep(61 - time.time() % 60)
    target = f"127.0.0.1:{env['running'].port}"
    ask = {"provider": "openai", "model": "gpt-4o-mini", "messages": [user("hi")]}
    async with AsyncModelRuntimeClient(target, api_key=created.secret) as client:
        reply = await client.llm.generate(**ask, credentials_name="client-openai")
        assert reply.message.content
        chunks = [c async for c in client.llm.stream(**ask, credentials_name="client-openai")]
        assert any(c.delta.content for c in chunks)
        with pytest.raises(modelruntime.PermissionDeniedError) as raw:
            await client.llm.generate(**ask, credentials=creds(mock))  # this key may not send raw secrets
        assert raw.value.reason == "RAW_CREDENTIALS_DENIED"
        with pytest.raises(modelruntime.AuthenticationError) as anonymous:
            await client.with_options(api_key=None).llm.generate(**ask, credentials_name="client-openai")
        assert anonymous.value.reason == "CALLER_KEY_MISSING"

    def sync_calls() -> str:
        with ModelRuntimeClient(target, api_key=created.secret) as client:
            content = client.llm.generate(**ask, credentials_name="client-openai").message.content
            with pytest.raises(modelruntime.RateLimitError) as over:  # the 4th admitted call of a 3-per-minute key
                client.llm.generate(**ask, credentials_name="client-openai")
            assert over.value.caller_limit == "requests_per_minute" and over.value.retry_after
            return content

    assert await asyncio.to_thread(sync_calls)
