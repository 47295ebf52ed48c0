"""Typed clients for AdminService (caller keys, stored credentials, usage): ``AsyncAdminClient``
here, and ``AdminClient``, its synchronous twin generated from it (``_admin_sync.py``, by
``make sync-client``).

>>> admin = AsyncAdminClient("localhost:50051", api_key="mrk_...")
>>> created = await admin.create_key("ci", providers=["openai"], requests_per_minute=60)
>>> created.secret  # shown once

Every call sends ``authorization: Bearer <api_key>``; errors are the usual ``grpc.aio.AioRpcError``
(UNAUTHENTICATED, PERMISSION_DENIED, ...), with google.rpc details in the trailers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from .v1 import admin_service_pb2 as pb
from .v1 import admin_service_pb2_grpc as pb_grpc


class AsyncAdminClient:
    def __init__(self, target: str | None = None, *, api_key: str = "", channel: grpc.aio.Channel | None = None,
                 channel_credentials: grpc.ChannelCredentials | None = None, timeout: float = 30.0) -> None:
        if channel is None:
            if target is None:
                raise TypeError("give a target or a channel")
            channel = (grpc.aio.secure_channel(target, channel_credentials) if channel_credentials
                       else grpc.aio.insecure_channel(target))
            self._owned = True
        else:
            self._owned = False
        self._channel = channel
        self._stub = pb_grpc.AdminServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._timeout = timeout

    async def close(self) -> None:
        if self._owned:
            await self._channel.close()

    async def __aenter__(self) -> AsyncAdminClient:  # noqa: PYI034
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Any, request: Any) -> Any:
        return await method(request, metadata=self._metadata, timeout=self._timeout)

    async def create_key(
        self, name: str, *, admin: bool = False, providers: Iterable[str] = (), models: Iterable[str] = (),
        model_types: Iterable[str] = (), credentials: Iterable[str] = (), deny_raw_credentials: bool = False,
        requests_per_minute: int = 0, tokens_per_minute: int = 0, budget_usd: str = "", budget_period: str = "",
        expire_time: datetime | None = None, metadata: Mapping[str, str] | None = None, cert_identity: str = "",
    ) -> pb.CreateKeyResponse:
        request = pb.CreateKeyRequest(
            name=name, admin=admin, metadata=dict(metadata or {}), cert_identity=cert_identity,
            scopes=pb.KeyScopes(providers=list(providers), models=list(models), model_types=list(model_types),
                                credentials=list(credentials), deny_raw_credentials=deny_raw_credentials),
            limits=pb.KeyLimits(requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
                                budget_usd=budget_usd, budget_period=budget_period),
        )
        if expire_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(expire_time)
            request.expire_time.CopyFrom(stamp)
        return await self._call(self._stub.CreateKey, request)

    async def list_keys(self, include_revoked: bool = False) -> list[pb.CallerKey]:
        reply = await self._call(self._stub.ListKeys, pb.ListKeysRequest(include_revoked=include_revoked))
        return list(reply.keys)

    async def revoke_key(self, key_id: str) -> pb.CallerKey:
        return (await self._call(self._stub.RevokeKey, pb.RevokeKeyRequest(id=key_id))).key

    async def rotate_key(self, key_id: str) -> pb.RotateKeyResponse:
        return await self._call(self._stub.RotateKey, pb.RotateKeyRequest(id=key_id))

    async def put_credentials(self, name: str, provider: str, credentials: Mapping[str, Any], *,
                              skip_validation: bool = False) -> pb.StoredCredentials:
        values = struct_pb2.Struct()
        values.update(dict(credentials))
        request = pb.PutCredentialsRequest(name=name, provider=provider, credentials=values,
                                           skip_validation=skip_validation)
        return (await self._call(self._stub.PutCredentials, request)).credentials

    async def list_credentials(self) -> list[pb.StoredCredentials]:
        return list((await self._call(self._stub.ListCredentials, pb.ListCredentialsRequest())).credentials)

    async def delete_credentials(self, name: str) -> bool:
        return (await self._call(self._stub.DeleteCredentials, pb.DeleteCredentialsRequest(name=name))).deleted

    async def reencrypt_credentials(self) -> pb.ReencryptCredentialsResponse:
        return await self._call(self._stub.ReencryptCredentials, pb.ReencryptCredentialsRequest())

    async def query_usage(self, *, key_id: str = "", provider: str = "", model: str = "", start_day: str = "",
                          end_day: str = "") -> list[pb.UsageTotal]:
        request = pb.QueryUsageRequest(key_id=key_id, provider=provider, model=model, start_day=start_day,
                                       end_day=end_day)
        return list((await self._call(self._stub.QueryUsage, request)).totals)


# ---- the sync client, generated from the class above (kept out of the generation)
from ._admin_sync import AdminClient

__all__ = ["AdminClient", "AsyncAdminClient"]
