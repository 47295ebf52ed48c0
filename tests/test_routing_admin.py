"""Routes with the operator layer: routes stored through AdminService (checked like the config's,
served at once, listed, deleted), deployments using stored credentials by name, the caller key's
model scopes applied per deployment, and the usage ledger's route and attempts columns.
"""

from __future__ import annotations

import os

import grpc
import pytest
from modelruntime.admin import AsyncAdminClient
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import llm_service_pb2_grpc, provider_service_pb2_grpc
from modelruntime.v1 import provider_service_pb2 as prov_pb
from sqlalchemy import select

from server.app import start_server
from server.auth.crypto import generate_key_spec
from server.auth.store import open_store
from server.auth.store.models import UsageRow
from server.config import (
    AuthConfig,
    Config,
    EgressConfig,
    GrpcConfig,
    HttpConfig,
    RoutingConfig,
    StorageConfig,
)
from tests.helpers import decode, user
from tests.mocks.openai_mock import OpenAIMock, status

KEY = "sk-routed-upstream-key-77"
ENV = "MR_TEST_ROUTING_KEYS"


@pytest.fixture
async def env(tmp_path):
    os.environ[ENV] = generate_key_spec("k1")
    async with OpenAIMock(api_keys=[KEY]) as mock:
        store = await open_store("", tmp_path)
        _, admin_secret = await store.create_key("root", admin=True)
        await store.close()
        config = Config(
            grpc=GrpcConfig(host="127.0.0.1", port=0, grace_seconds=0.5, drain_seconds=0),
            http=HttpConfig(enabled=False),
            egress=EgressConfig(allowed_cidrs=["127.0.0.1/32"], retries=0),
            auth=AuthConfig(enabled=True, encryption_keys_env=ENV, refresh_seconds=0.2, ledger_flush_seconds=0.1),
            storage=StorageConfig(data_dir=str(tmp_path)),
            routing=RoutingConfig(routes={"fixed": {"deployments": [
                {"provider": "openai", "model": "gpt-4o", "credentials_name": "team-openai"}]}}),
        )
        running = await start_server(config)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        yield {"mock": mock, "admin": AsyncAdminClient(channel=channel, api_key=admin_secret), "channel": channel,
               "data": tmp_path, "running": running}
        await channel.close()
        await running.stop(0, 0)


async def test_stored_routes_with_stored_credentials_scopes_and_ledger(env):
    admin, mock, channel = env["admin"], env["mock"], env["channel"]
    await admin.put_credentials("team-openai", "openai", {"openai_api_key": KEY, "openai_api_base": mock.url})
    deployments = [{"name": "main", "provider": "openai", "model": "gpt-4o-mini", "credentials_name": "team-openai"}]
    put = await admin.put_route("team", {"deployments": deployments, "retry": {"backoff_seconds": 0.01}})
    assert (put.name, put.deployments) == ("team", 1)

    with pytest.raises(grpc.aio.AioRpcError) as inline:
        await admin.put_route("leaky", {"deployments": [{"provider": "openai", "model": "gpt-4o-mini",
                                                         "credentials": {"openai_api_key": KEY}}]})
    assert inline.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as fixed:
        await admin.put_route("fixed", {"deployments": deployments})
    assert "config" in decode(fixed.value).violations["name"]
    with pytest.raises(grpc.aio.AioRpcError) as unknown_provider:
        await admin.put_route("typo", {"deployments": [{**deployments[0], "provider": "opneai"}]})
    assert "unknown provider" in decode(unknown_provider.value).violations["route"]

    caller = await admin.create_key("app", providers=["openai"])
    other = await admin.create_key("other-team", providers=["anthropic"])
    llm = llm_service_pb2_grpc.LLMServiceStub(channel)
    mock.enqueue(status(503))
    call = llm.Generate(llm_pb.GenerateRequest(route="team", messages=[user("stored")]),
                        metadata=(("authorization", f"Bearer {caller.secret}"),))
    assert (await call).message.content == "Echo: stored"
    trailers = dict(await call.trailing_metadata())
    assert trailers["x-modelruntime-attempts"] == "2" and trailers["x-modelruntime-deployment"] == "main"
    assert mock.requests[-1].headers["authorization"] == f"Bearer {KEY}"  # the stored credentials

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await llm.Generate(llm_pb.GenerateRequest(route="team", messages=[user("x")]),
                           metadata=(("authorization", f"Bearer {other.secret}"),))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    listed = await provider_service_pb2_grpc.ProviderServiceStub(channel).ListRoutes(
        prov_pb.ListRoutesRequest(), metadata=(("authorization", f"Bearer {caller.secret}"),))
    shown = {r.name: r for r in listed.routes}
    assert set(shown) == {"fixed", "team"} and shown["team"].deployments[0].credentials_name == "team-openai"

    await admin.query_usage()  # flushes the ledger
    store = await open_store("", env["data"])
    try:
        async with store.session() as s:
            rows = (await s.execute(select(UsageRow.route, UsageRow.attempts, UsageRow.model, UsageRow.status)
                                    .where(UsageRow.key_id == caller.key.id))).all()
    finally:
        await store.close()
    assert ("team", 2, "gpt-4o-mini", "OK") in [tuple(r) for r in rows]

    assert await admin.delete_route("team")
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await llm.Generate(llm_pb.GenerateRequest(route="team", messages=[user("x")]),
                           metadata=(("authorization", f"Bearer {caller.secret}"),))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
