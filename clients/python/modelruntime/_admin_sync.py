# GENERATED from admin.py by scripts/gen_sync_client.py: do not edit; edit admin.py, then run
# `make sync-client` (or `python scripts/gen_sync_client.py`).
"""The synchronous AdminService client: ``AdminClient`` (``from modelruntime.admin import AdminClient``).

Generated from ``AsyncAdminClient`` (``admin.py``): the same methods and arguments, called without await.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from .v1 import admin_service_pb2 as pb
from .v1 import admin_service_pb2_grpc as pb_grpc


class AdminClient:
    def __init__(self, target: str | None = None, *, api_key: str = "", channel: grpc.Channel | None = None,
                 channel_credentials: grpc.ChannelCredentials | None = None, timeout: float = 30.0) -> None:
        if channel is None:
            if target is None:
                raise TypeError("give a target or a channel")
            channel = (grpc.secure_channel(target, channel_credentials) if channel_credentials
                       else grpc.insecure_channel(target))
            self._owned = True
        else:
            self._owned = False
        self._channel = channel
        self._stub = pb_grpc.AdminServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._timeout = timeout

    def close(self) -> None:
        if self._owned:
            self._channel.close()

    def __enter__(self) -> AdminClient:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Any, request: Any) -> Any:
        return method(request, metadata=self._metadata, timeout=self._timeout)

    def create_key(
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
        return self._call(self._stub.CreateKey, request)

    def list_keys(self, include_revoked: bool = False) -> list[pb.CallerKey]:
        reply = self._call(self._stub.ListKeys, pb.ListKeysRequest(include_revoked=include_revoked))
        return list(reply.keys)

    def revoke_key(self, key_id: str) -> pb.CallerKey:
        return (self._call(self._stub.RevokeKey, pb.RevokeKeyRequest(id=key_id))).key

    def rotate_key(self, key_id: str) -> pb.RotateKeyResponse:
        return self._call(self._stub.RotateKey, pb.RotateKeyRequest(id=key_id))

    def put_credentials(self, name: str, provider: str, credentials: Mapping[str, Any], *,
                              skip_validation: bool = False) -> pb.StoredCredentials:
        values = struct_pb2.Struct()
        values.update(dict(credentials))
        request = pb.PutCredentialsRequest(name=name, provider=provider, credentials=values,
                                           skip_validation=skip_validation)
        return (self._call(self._stub.PutCredentials, request)).credentials

    def list_credentials(self) -> list[pb.StoredCredentials]:
        return list((self._call(self._stub.ListCredentials, pb.ListCredentialsRequest())).credentials)

    def delete_credentials(self, name: str) -> bool:
        return (self._call(self._stub.DeleteCredentials, pb.DeleteCredentialsRequest(name=name))).deleted

    def reencrypt_credentials(self) -> pb.ReencryptCredentialsResponse:
        return self._call(self._stub.ReencryptCredentials, pb.ReencryptCredentialsRequest())

    def query_usage(self, *, key_id: str = "", provider: str = "", model: str = "", start_day: str = "",
                          end_day: str = "") -> list[pb.UsageTotal]:
        request = pb.QueryUsageRequest(key_id=key_id, provider=provider, model=model, start_day=start_day,
                                       end_day=end_day)
        return list((self._call(self._stub.QueryUsage, request)).totals)
