"""AdminService failures each have a precise status, and refused calls reach the usage ledger.

Through the typed admin client, raw gRPC stubs and the official openai SDK, against one auth server
on SQLite (tests/auth_env.py). Every admin failure names what it is about: a bad field is
INVALID_ARGUMENT with a BadRequest naming it, an unknown key NOT_FOUND, a taken cert_identity
ALREADY_EXISTS, a stored credential no configured key decrypts FAILED_PRECONDITION (re-encryption
used to end UNKNOWN there), an unreachable Redis UNAVAILABLE — never UNKNOWN.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import grpc
import openai
import pytest

from server.auth.crypto import Keyring, generate_key_spec
from server.config import StorageConfig
from tests.auth_env import auth_server, bearer, creds, details, req, server_fixture, upstream_fixture

mock = upstream_fixture()
env = server_fixture("admindata")


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


def _field(err: grpc.aio.AioRpcError) -> str:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    return details(err)["BadRequest"].field_violations[0].field


async def test_bad_key_fields_are_invalid_argument_naming_the_field(env):
    admin = env["admin"]
    past = datetime.now(UTC) - timedelta(days=1)
    cases = [
        (admin.create_key(""), "name"),
        (admin.create_key("x" * 201), "name"),
        (admin.create_key("neg", requests_per_minute=-1), "limits.requests_per_minute"),
        (admin.create_key("huge", tokens_per_minute=2**40), "limits.tokens_per_minute"),
        (admin.create_key("nan", budget_usd="NaN"), "limits.budget_usd"),
        (admin.create_key("word", budget_usd="ten"), "limits.budget_usd"),
        (admin.create_key("minus", budget_usd="-5"), "limits.budget_usd"),
        (admin.create_key("period", budget_usd="5", budget_period="week"), "limits.budget_period"),
        (admin.create_key("old", expire_time=past), "expire_time"),
        (admin.create_key("glob", providers=[""]), "scopes.providers"),
        (admin.revoke_key(""), "id"),
        (admin.put_credentials("", "openai", {}), "name"),
        (admin.query_usage(start_day="yesterday"), "start_day"),
    ]
    for call, field in cases:
        assert _field(await _refused(call)) == field
    assert "neg" not in [k.name for k in await admin.list_keys()]


async def test_unknown_revoked_and_duplicate_keys(env):
    admin = env["admin"]
    missing = await _refused(admin.revoke_key("key_0000"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert details(missing)["ResourceInfo"].resource_name == "key_0000"
    assert (await _refused(admin.rotate_key("key_0000"))).code() == grpc.StatusCode.NOT_FOUND
    created = await admin.create_key("svc", cert_identity="svc.internal")
    taken = await _refused(admin.create_key("svc-2", cert_identity="svc.internal"))
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert details(taken)["ErrorInfo"].reason == "ALREADY_EXISTS"
    await admin.revoke_key(created.key.id)
    revoked = await _refused(admin.rotate_key(created.key.id))
    assert revoked.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(revoked)["ErrorInfo"].reason == "KEY_REVOKED"


async def test_reencrypt_with_an_undecryptable_row_is_a_precise_precondition(env, mock):
    gate = env["running"].gate
    original = gate.keyring
    await env["admin"].put_credentials("orphan", "openai", creds(mock))  # sealed with k1
    try:
        gate.keyring = Keyring.parse(generate_key_spec("k9"))  # k1 is gone: the row cannot be read
        err = await _refused(env["admin"].reencrypt_credentials())
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert details(err)["ErrorInfo"].reason == "STORED_CREDENTIALS_UNREADABLE"
        assert details(err)["ResourceInfo"].resource_name == "credentials/orphan"
        gate.keyring = None
        for call in (env["admin"].reencrypt_credentials(), env["admin"].put_credentials("x", "openai", creds(mock))):
            err = await _refused(call)
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert details(err)["ErrorInfo"].reason == "ENCRYPTION_KEYS_UNAVAILABLE"
    finally:
        gate.keyring = original
    assert (await env["admin"].reencrypt_credentials()).count >= 1  # still readable with k1
    assert await env["admin"].delete_credentials("orphan")


async def test_refused_calls_are_in_the_ledger_with_their_reason(env, mock):
    admin = env["admin"]
    await _refused(env["llm"].Generate(req(mock, creds(mock), model="gpt-4o")))  # no key
    await _refused(env["llm"].Generate(req(mock, creds(mock), model="gpt-4o"), metadata=bearer("mrk_unknown")))
    scoped = await admin.create_key("narrow", models=["gpt-4o-mini"], requests_per_minute=1)
    await _refused(env["llm"].Generate(req(mock, creds(mock), model="gpt-4o"), metadata=bearer(scoped.secret)))
    await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(scoped.secret))
    over = await _refused(env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(scoped.secret)))
    assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    client = openai.AsyncOpenAI(base_url=env["http"], api_key="mrk_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    await client.close()

    keyed = await admin.query_usage(key_id=scoped.key.id)
    by_model = {t.model: dict(t.statuses) for t in keyed}
    assert by_model == {"gpt-4o": {"CALLER_SCOPE_DENIED": 1},
                        "gpt-4o-mini": {"OK": 1, "CALLER_QUOTA_EXCEEDED": 1}}
    assert sum(t.errors for t in keyed) == 2
    anonymous = [t for t in await admin.query_usage(model="gpt-4o") if not t.key_id]
    assert {s: n for t in anonymous for s, n in t.statuses.items()} == {"CALLER_KEY_MISSING": 1,
                                                                         "CALLER_KEY_INVALID": 1}
    assert {t.model_type for t in anonymous} == {"llm"}
    http = [t for t in await admin.query_usage() if not t.key_id and not t.model]
    assert sum(t.statuses["CALLER_KEY_INVALID"] for t in http) == 1  # HTTP: refused before the body is read
    narrow_http = await admin.create_key("narrow-http", models=["gpt-4o-mini"])
    client = openai.AsyncOpenAI(base_url=env["http"], api_key=narrow_http.secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    await client.close()
    denied = await admin.query_usage(key_id=narrow_http.key.id)
    assert [(t.model, dict(t.statuses)) for t in denied] == [("gpt-4o", {"CALLER_SCOPE_DENIED": 1})]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_redis_refuses_limited_calls_unavailable(tmp_path, mock):
    storage = StorageConfig(data_dir=str(tmp_path), redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    async with auth_server(tmp_path, storage=storage) as server:
        limited = await server["admin"].create_key("limited", requests_per_minute=10)
        err = await _refused(server["llm"].Generate(req(mock, creds(mock)), metadata=bearer(limited.secret)))
        assert err.code() == grpc.StatusCode.UNAVAILABLE  # fail closed, never UNKNOWN
        assert details(err)["ErrorInfo"].reason == "STORE_UNAVAILABLE"
        assert "127.0.0.1" not in err.details()  # the URL (it may hold a password) stays out
        free = await server["admin"].create_key("free")  # no limits: Redis is not asked
        await server["llm"].Generate(req(mock, creds(mock)), metadata=bearer(free.secret))
