"""AdminService: caller keys, stored credentials and usage, for admin keys only.

Every RPC checks that the caller (set by the gRPC front door) is an admin key; with authentication off
the anonymous loopback caller is one. Secrets leave only in CreateKey / RotateKey responses; stored
credentials only masked.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal, InvalidOperation

from google.protobuf import struct_pb2, timestamp_pb2
from modelruntime.v1 import admin_service_pb2 as pb
from modelruntime.v1 import admin_service_pb2_grpc as pb_grpc

from engine.errors import FieldViolation, InvokeBadRequestError
from engine.pricing import decimal_str

from ..convert import struct_to_dict
from ..servicers._common import rpc
from .crypto import KeyringError
from .gate import CURRENT, Gate
from .keys import ANONYMOUS, BUDGET_PERIODS, CallerKey, Scopes
from .store import UsageTotal


def _bad(field: str, message: str) -> InvokeBadRequestError:
    return InvokeBadRequestError(message, field_violations=(FieldViolation(field, message),))


def key_message(key: CallerKey) -> pb.CallerKey:
    s = key.scopes
    out = pb.CallerKey(
        id=key.id, name=key.name, prefix=key.prefix, admin=key.admin, metadata=key.metadata,
        cert_identity=key.cert_identity, revoked=key.revoked,
        scopes=pb.KeyScopes(providers=s.providers, models=s.models, model_types=s.model_types,
                            credentials=s.credentials, deny_raw_credentials=not s.raw_credentials),
        limits=pb.KeyLimits(requests_per_minute=key.requests_per_minute, tokens_per_minute=key.tokens_per_minute,
                            budget_usd=str(key.budget_usd) if key.budget_usd is not None else "",
                            budget_period=key.budget_period),
    )
    for field, value in (("expire_time", key.expires_at), ("create_time", key.created_at)):
        if value is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
            getattr(out, field).CopyFrom(stamp)
    return out


def usage_message(t: UsageTotal) -> pb.UsageTotal:
    return pb.UsageTotal(day=t.day, key_id=t.key_id, provider=t.provider, model=t.model, model_type=t.model_type,
                         requests=t.requests, errors=t.errors, cancelled=t.cancelled, prompt_tokens=t.prompt_tokens,
                         completion_tokens=t.completion_tokens, total_tokens=t.total_tokens, cost=decimal_str(t.cost))


def _struct(data: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data)
    return out


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, gate: Gate, runtime) -> None:
        self.gate = gate
        self.runtime = runtime

    def _admin(self) -> None:
        state = CURRENT.get()
        self.gate.require_admin(state.key if state is not None else ANONYMOUS)

    @rpc
    async def CreateKey(self, request, context):
        self._admin()
        if not request.name:
            raise _bad("name", "a key needs a name")
        limits = request.limits
        budget = None
        if limits.budget_usd:
            try:
                budget = Decimal(limits.budget_usd)
            except InvalidOperation:
                raise _bad("limits.budget_usd", "must be a decimal number of USD") from None
        period = limits.budget_period or "month"
        if period not in BUDGET_PERIODS:
            raise _bad("limits.budget_period", "must be 'day' or 'month'")
        s = request.scopes
        key, secret = await self.gate.store.create_key(
            request.name, admin=request.admin,
            scopes=Scopes(tuple(s.providers), tuple(s.models), tuple(s.model_types), tuple(s.credentials),
                          not s.deny_raw_credentials),
            expires_at=request.expire_time.ToDatetime(UTC) if request.HasField("expire_time") else None,
            requests_per_minute=int(limits.requests_per_minute), tokens_per_minute=int(limits.tokens_per_minute),
            budget_usd=budget, budget_period=period, metadata=dict(request.metadata),
            cert_identity=request.cert_identity,
        )
        return pb.CreateKeyResponse(key=key_message(key), secret=secret)

    @rpc
    async def ListKeys(self, request, context):
        self._admin()
        keys = await self.gate.store.keys(include_revoked=request.include_revoked)
        return pb.ListKeysResponse(keys=[key_message(k) for k in keys])

    @rpc
    async def RevokeKey(self, request, context):
        self._admin()
        key = await self.gate.store.revoke_key(request.id)
        if key is None:
            raise _bad("id", f"no key has the id '{request.id}'")
        await self.gate.refresh()
        return pb.RevokeKeyResponse(key=key_message(key))

    @rpc
    async def RotateKey(self, request, context):
        self._admin()
        rotated = await self.gate.store.rotate_key(request.id)
        if rotated is None:
            raise _bad("id", f"no live key has the id '{request.id}'")
        await self.gate.refresh()
        return pb.RotateKeyResponse(key=key_message(rotated[0]), secret=rotated[1])

    @rpc
    async def PutCredentials(self, request, context):
        self._admin()
        if not request.name or not request.provider:
            raise _bad("name" if not request.name else "provider", "name and provider are required")
        try:
            masked = await self.gate.put_credentials(self.runtime, request.name, request.provider,
                                                     struct_to_dict(request.credentials), not request.skip_validation)
        except KeyringError as exc:
            raise _bad("credentials", str(exc)) from None
        assert self.gate.keyring is not None
        return pb.PutCredentialsResponse(credentials=pb.StoredCredentials(
            name=request.name, provider=request.provider, masked_credentials=_struct(masked),
            encryption_key_id=self.gate.keyring.active_id))

    @rpc
    async def ListCredentials(self, request, context):
        self._admin()
        rows = await self.gate.store.credentials()
        return pb.ListCredentialsResponse(credentials=[pb.StoredCredentials(
            name=r.name, provider=r.provider, masked_credentials=_struct(r.masked), encryption_key_id=r.key_id)
            for r in rows])

    @rpc
    async def DeleteCredentials(self, request, context):
        self._admin()
        deleted = await self.gate.store.delete_credentials(request.name)
        await self.gate.refresh()
        return pb.DeleteCredentialsResponse(deleted=deleted)

    @rpc
    async def ReencryptCredentials(self, request, context):
        self._admin()
        try:
            count = await self.gate.reencrypt()
        except KeyringError as exc:
            raise _bad("encryption keys", str(exc)) from None
        assert self.gate.keyring is not None
        return pb.ReencryptCredentialsResponse(count=count, encryption_key_id=self.gate.keyring.active_id)

    @rpc
    async def QueryUsage(self, request, context):
        self._admin()
        if self.gate.ledger is not None:
            await self.gate.ledger.flush()  # what this process has buffered counts too
        totals = await self.gate.store.usage(request.key_id, request.provider, request.model,
                                             request.start_day, request.end_day)
        return pb.QueryUsageResponse(totals=[usage_message(t) for t in totals])
