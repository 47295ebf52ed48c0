"""The rest of issue 11's sentences, one test each: expiry, the token limit, model-type scopes, key
metadata, the ledger flushed at shutdown, an HTTP stream cancelled mid-way in the ledger, the
encryption keys read from a file, every admin operation from the command line, and the sync
admin client.

One auth server on SQLite (tests/auth_env.py) against the OpenAI mock; the CLI runs in this process
on its own data directory, with no server, and its encryption keys in MODEL_RUNTIME_ENCRYPTION_KEYS
(the documented variable, which the config's environment overrides once refused).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from datetime import UTC, datetime, timedelta

import grpc
import openai
import pytest
from modelruntime.admin import AdminClient
from modelruntime.v1 import common_pb2, text_embedding_service_pb2, text_embedding_service_pb2_grpc

from server.auth import cli, keyring
from server.auth.crypto import generate_key_spec
from server.auth.store import open_store
from server.config import AuthConfig, Config
from tests.auth_env import auth_server, bearer, creds, details, req, server_fixture, upstream_fixture
from tests.helpers import struct
from tests.mocks.openai_mock import slow_stream

mock = upstream_fixture()
env = server_fixture("moredata")


async def _eventually(check, tries: int = 100):
    """Poll ``check`` (work done off the hot path) until it returns a true value."""
    for _ in range(tries):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    return await check()


async def test_an_expired_key_is_unauthenticated(env, mock):
    store = env["running"].gate.store  # the API refuses a past expiry; the clock passing one is the case
    _, secret = await store.create_key("expired", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(secret))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert details(err.value)["ErrorInfo"].reason == "CALLER_KEY_EXPIRED"


async def test_tokens_per_minute_refuses_once_the_priced_tokens_are_used(env, mock):
    created = await env["admin"].create_key("tpm", tokens_per_minute=5)
    first = await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    assert first.usage.total_tokens > 5

    async def refused():
        try:
            await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
        except grpc.aio.AioRpcError as err:
            return err
        return None

    err = await _eventually(refused)  # the tokens are charged off the hot path
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details(err)["QuotaFailure"].violations[0].quota_id == "tokens_per_minute"


async def test_model_type_scopes_and_key_metadata(env, mock):
    created = await env["admin"].create_key("embed-only", model_types=["text-embedding"],
                                            metadata={"team": "search", "ticket": "OPS-12"})
    listed = {k.id: k for k in await env["admin"].list_keys()}[created.key.id]
    assert dict(listed.metadata) == {"team": "search", "ticket": "OPS-12"}
    assert list(listed.scopes.model_types) == ["text-embedding"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "model type 'llm'" in err.value.details()
    embed = text_embedding_service_pb2_grpc.TextEmbeddingServiceStub(env["channel"])
    target = common_pb2.ModelTarget(provider="openai", model="text-embedding-3-small", credentials=struct(creds(mock)))
    reply = await embed.Embed(text_embedding_service_pb2.EmbedRequest(target=target, texts=["a"]),
                              metadata=bearer(created.secret))
    assert len(reply.embeddings) == 1


async def test_an_http_stream_cancelled_mid_way_is_in_the_ledger(env, mock):
    created = await env["admin"].create_key("http-cancel")
    mock.enqueue(slow_stream(0.2), path="/chat/completions")
    client = openai.AsyncOpenAI(base_url=env["http"], api_key=created.secret, max_retries=0)
    stream = await client.chat.completions.create(
        model="openai/gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "count " * 40}],
        extra_headers={"x-provider-credentials": json.dumps(creds(mock))})
    got = 0
    async for chunk in stream:
        got += bool(chunk.choices and chunk.choices[0].delta.content)
        if got >= 2:
            break
    await stream.close()
    await client.close()
    await mock.wait_connection_closed(timeout=3.0)

    async def cancelled():
        totals = await env["admin"].query_usage(key_id=created.key.id)
        return [t for t in totals if t.cancelled]

    row = (await _eventually(cancelled))[0]
    assert dict(row.statuses) == {"CANCELLED": 1}
    assert row.prompt_tokens > 0 and row.completion_tokens > 0 and float(row.cost) > 0  # what it used so far


async def test_the_ledger_is_flushed_at_shutdown(tmp_path, mock):
    auth = AuthConfig(enabled=True, encryption_keys_env="MR_TEST_AUTH_KEYS", ledger_flush_seconds=3600,
                      ledger_batch_size=10_000)
    async with auth_server(tmp_path, auth=auth) as server:
        created = await server["admin"].create_key("late")
        await server["llm"].Generate(req(mock, creds(mock)), metadata=bearer(created.secret))
        assert server["running"].gate.ledger._buffer  # still buffered: no batch is due for an hour
    store = await open_store("", tmp_path)
    try:
        totals = await store.usage(key_id=created.key.id)
    finally:
        await store.close()
    assert [t.statuses for t in totals] == [{"OK": 1}]


def test_encryption_keys_from_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MR_UNSET_KEYS", raising=False)
    spec = generate_key_spec("file1")
    (tmp_path / "keys").write_text(f"# rotated 2026-12\n{spec}\n")
    ring = keyring(Config(auth=AuthConfig(encryption_keys_env="MR_UNSET_KEYS",
                                          encryption_keys_file=str(tmp_path / "keys"))))
    assert ring is not None and ring.key_ids == ["file1"]


class _Cli:
    """``python -m server <args>`` in this process (the subprocess path: test_auth.py's first admin key)."""

    def __init__(self, tmp_path, capsys, monkeypatch) -> None:
        self.keys = tmp_path / "keys"
        self.capsys = capsys
        monkeypatch.setenv("MODEL_RUNTIME_STORAGE__DATA_DIR", str(tmp_path / "data"))
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        self.monkeypatch.setenv("MODEL_RUNTIME_ENCRYPTION_KEYS", self.keys.read_text())
        if stdin is not None:
            self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            code = cli.main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
            print(exc.code, file=sys.stderr)
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *args: str) -> object:
        code, out, err = self(*args)
        assert code == 0, err
        return json.loads(out)


def test_every_admin_operation_from_the_command_line(tmp_path, capsys, monkeypatch):
    run = _Cli(tmp_path, capsys, monkeypatch)
    run.keys.write_text(generate_key_spec("c1"))
    created = run.json("keys", "create", "--name", "ci", "--rpm", "5", "--models", "gpt-4o*", "--meta", "team=ml")
    assert created["metadata"] == {"team": "ml"} and created["scopes"]["models"] == ["gpt-4o*"]
    rotated = run.json("keys", "rotate", created["id"])
    assert rotated["secret"] != created["secret"] and rotated["id"] == created["id"]
    assert run.json("keys", "revoke", created["id"])["revoked"]
    assert [k["id"] for k in run.json("keys", "list")] == []
    assert [k["id"] for k in run.json("keys", "list", "--all")] == [created["id"]]
    code, _, err = run("keys", "create", "--name", "x", "--budget-usd", "NaN")
    assert code == 2 and "limits.budget_usd" in err
    code, _, err = run("keys", "revoke", "key_missing")
    assert code != 0 and "key_missing" in err

    secret = "sk-cli-secret-value-1234"
    code, _, err = run("credentials", "put", "team", "--provider", "openai", "--no-validate", "--json", "-",
                       stdin=json.dumps({"openai_api_key": secret}))
    assert code == 0, err
    assert run.json("credentials", "list") == [{"name": "team", "provider": "openai", "encryption_key_id": "c1",
                                               "credentials": {"openai_api_key": "[__HIDDEN__]"}}]
    run.keys.write_text(f"{generate_key_spec('c2')},{run.keys.read_text()}")
    assert "re-encrypted 1" in run("credentials", "reencrypt")[1]
    assert run.json("credentials", "list")[0]["encryption_key_id"] == "c2"
    assert run("credentials", "delete", "team")[0] == 0
    assert run.json("credentials", "list") == []
    assert run.json("usage", "--from", "2026-01-01") == []
    database = (tmp_path / "data" / "modelruntime.db").read_bytes()
    assert secret.encode() not in database and created["secret"].encode() not in database


async def test_the_sync_admin_client(env):
    port, secret = env["running"].port, env["secret"]

    def admin_calls() -> tuple[str, list[str]]:
        with AdminClient(f"127.0.0.1:{port}", api_key=secret) as admin:
            created = admin.create_key("from-sync", requests_per_minute=7)
            names = [k.name for k in admin.list_keys()]
            admin.revoke_key(created.key.id)
            with pytest.raises(grpc.RpcError) as missing:
                admin.revoke_key("key_nothing")
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            return created.secret, names

    created_secret, names = await asyncio.to_thread(admin_calls)
    assert created_secret.startswith("mrk_") and "from-sync" in names
