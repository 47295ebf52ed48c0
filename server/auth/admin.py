"""AdminService: caller keys, stored credentials and usage, for admin keys only.

Every RPC checks that the caller (set by the gRPC front door) is an admin key; with authentication off
the anonymous loopback caller is one. Secrets leave only in CreateKey / RotateKey responses; stored
credentials only masked.

Every failure has a precise status (:func:`_precise`): bad fields INVALID_ARGUMENT with a
BadRequest naming the field, an unknown key id NOT_FOUND, a taken ``cert_identity`` ALREADY_EXISTS,
missing encryption keys or a stored credential no configured key decrypts FAILED_PRECONDITION, an
unreachable database UNAVAILABLE — never UNKNOWN.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2
from modelruntime.v1 import admin_service_pb2 as pb
from modelruntime.v1 import admin_service_pb2_grpc as pb_grpc

from engine.errors import FieldViolation, InvokeBadRequestError
from engine.pricing import decimal_str

from ..convert import struct_to_dict
from ..servicers._common import rpc
from .crypto import CredentialsUnreadable, KeyringError
from .errors import AccessError, AdminError, store_unavailable
from .gate import CURRENT, STORE_ERRORS, Gate
from .keys import ANONYMOUS, CallerKey, KeySpecError, Scopes, check_key_spec
from .store import UsageTotal

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _bad(field: str, message: str) -> InvokeBadRequestError:
    return InvokeBadRequestError(message, field_violations=(FieldViolation(field, message),))


def _precise(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn store, keyring and validation failures into precise errors (inside ``@rpc``)."""
    from sqlalchemy.exc import IntegrityError

    @functools.wraps(fn)
    async def call(self: Any, request: Any, context: Any) -> Any:
        try:
            return await fn(self, request, context)
        except (AccessError, InvokeBadRequestError):
            raise
        except KeySpecError as exc:
            raise _bad(exc.field, exc.message) from None
        except KeyringError as exc:
            raise AdminError(grpc.StatusCode.FAILED_PRECONDITION, str(exc), "ENCRYPTION_KEYS_UNAVAILABLE") from None
        except CredentialsUnreadable as exc:
            raise AdminError(grpc.StatusCode.FAILED_PRECONDITION, f"{exc}; nothing was re-encrypted. Add the "
                             "missing key (or delete the credentials) first.", "STORED_CREDENTIALS_UNREADABLE",
                             "credentials", f"credentials/{exc.name}") from None
        except IntegrityError:
            raise AdminError(grpc.StatusCode.ALREADY_EXISTS, "A key with this cert_identity already exists.",
                             "ALREADY_EXISTS", "cert_identity", request.cert_identity) from None
        except STORE_ERRORS as exc:
            raise store_unavailable(exc) from None
    return call


def _not_found(key_id: str) -> AdminError:
    return AdminError(grpc.StatusCode.NOT_FOUND, f"No key has the id '{key_id[:80]}'.", "KEY_NOT_FOUND",
                      "key", key_id[:80])


def _need(field: str, value: str, size: int = 200) -> None:
    if not value:
        raise _bad(field, f"{field} is required")
    if len(value) > size:
        raise _bad(field, f"at most {size} characters")


def _day(field: str, value: str) -> None:
    if value and not _DAY.fullmatch(value):
        raise _bad(field, "must be a UTC day written YYYY-MM-DD")


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
                         completion_tokens=t.completion_tokens, total_tokens=t.total_tokens, cost=decimal_str(t.cost),
                         statuses=t.statuses)


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
    @_precise
    async def CreateKey(self, request, context):
        self._admin()
        limits, s = request.limits, request.scopes
        scopes = Scopes(tuple(s.providers), tuple(s.models), tuple(s.model_types), tuple(s.credentials),
                        not s.deny_raw_credentials)
        expires = request.expire_time.ToDatetime(UTC) if request.HasField("expire_time") else None
        period = limits.budget_period or "month"
        budget = check_key_spec(request.name, requests_per_minute=limits.requests_per_minute,
                                tokens_per_minute=limits.tokens_per_minute, budget_usd=limits.budget_usd,
                                budget_period=period, expires_at=expires, cert_identity=request.cert_identity,
                                metadata=dict(request.metadata), scopes=scopes)
        key, secret = await self.gate.store.create_key(
            request.name, admin=request.admin, scopes=scopes, expires_at=expires,
            requests_per_minute=int(limits.requests_per_minute), tokens_per_minute=int(limits.tokens_per_minute),
            budget_usd=budget, budget_period=period, metadata=dict(request.metadata),
            cert_identity=request.cert_identity,
        )
        return pb.CreateKeyResponse(key=key_message(key), secret=secret)

    @rpc
    @_precise
    async def ListKeys(self, request, context):
        self._admin()
        keys = await self.gate.store.keys(include_revoked=request.include_revoked)
        return pb.ListKeysResponse(keys=[key_message(k) for k in keys])

    @rpc
    @_precise
    async def RevokeKey(self, request, context):
        self._admin()
        _need("id", request.id, 40)
        key = await self.gate.store.revoke_key(request.id)
        if key is None:
            raise _not_found(request.id)
        await self.gate.refresh()
        return pb.RevokeKeyResponse(key=key_message(key))

    @rpc
    @_precise
    async def RotateKey(self, request, context):
        self._admin()
        _need("id", request.id, 40)
        rotated = await self.gate.store.rotate_key(request.id)
        if rotated is None:
            if await self.gate.store.get_key(request.id) is None:
                raise _not_found(request.id)
            raise AdminError(grpc.StatusCode.FAILED_PRECONDITION, "A revoked key cannot be rotated; create a "
                             "new one.", "KEY_REVOKED", "key", request.id)
        await self.gate.refresh()
        return pb.RotateKeyResponse(key=key_message(rotated[0]), secret=rotated[1])

    @rpc
    @_precise
    async def PutCredentials(self, request, context):
        self._admin()
        _need("name", request.name)
        _need("provider", request.provider, 100)
        masked = await self.gate.put_credentials(self.runtime, request.name, request.provider,
                                                 struct_to_dict(request.credentials), not request.skip_validation)
        assert self.gate.keyring is not None
        return pb.PutCredentialsResponse(credentials=pb.StoredCredentials(
            name=request.name, provider=request.provider, masked_credentials=_struct(masked),
            encryption_key_id=self.gate.keyring.active_id))

    @rpc
    @_precise
    async def ListCredentials(self, request, context):
        self._admin()
        rows = await self.gate.store.credentials()
        return pb.ListCredentialsResponse(credentials=[pb.StoredCredentials(
            name=r.name, provider=r.provider, masked_credentials=_struct(r.masked), encryption_key_id=r.key_id)
            for r in rows])

    @rpc
    @_precise
    async def DeleteCredentials(self, request, context):
        self._admin()
        _need("name", request.name)
        deleted = await self.gate.store.delete_credentials(request.name)
        await self.gate.refresh()
        return pb.DeleteCredentialsResponse(deleted=deleted)

    @rpc
    @_precise
    async def ReencryptCredentials(self, request, context):
        self._admin()
        count = await self.gate.reencrypt()
        assert self.gate.keyring is not None
        return pb.ReencryptCredentialsResponse(count=count, encryption_key_id=self.gate.keyring.active_id)

    @rpc
    @_precise
    async def QueryUsage(self, request, context):
        self._admin()
        _day("start_day", request.start_day)
        _day("end_day", request.end_day)
        if self.gate.ledger is not None:
            await self.gate.ledger.flush()  # what this process has buffered counts too
        totals = await self.gate.store.usage(request.key_id, request.provider, request.model,
                                             request.start_day, request.end_day)
        return pb.QueryUsageResponse(totals=[usage_message(t) for t in totals])
