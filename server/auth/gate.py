"""The gate: the one place both front doors ask "who is calling, may they, and how much is left".

Per call (:mod:`server.auth.metered` drives it around every runtime call):

1. ``authenticate``: the ``authorization: Bearer <key>`` value (or a verified client certificate's
   identity) → a :class:`CallerKey`, from an in-memory cache of every live key (a dict lookup on the
   SHA-256 of the secret; a miss asks the database once, so a key created by another process works
   at once, and remembers unknown hashes until the next change);
2. ``authorize``: scopes (provider / model / model type), raw-vs-stored credentials, and the
   stored credentials named by the call (decrypted once per change, kept in memory);
3. ``admit``: the key's rate limits and budget (:mod:`server.auth.limits`);
4. ``finish``: charge tokens and cost, append a ledger row — both off the hot path. A refused
   call (no or unknown key, out of scope, over a limit) gets a ledger row too (``refused``), its
   status the refusal reason, so an operator sees who was turned away and why.

Every process polls ``meta.version`` every ``auth.refresh_seconds`` (default 0.5 s) and reloads on a
change, so a revoked key is refused by every process within a second. The caller of the current
task travels in a context variable (:data:`CURRENT`) set by the gRPC front door (server/door.py) or the HTTP app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from engine.credentials import mask_secrets

from .crypto import CredentialsUnreadable, Keyring, KeyringError
from .errors import AccessError, CredentialsUnavailable, PermissionDenied, Unauthenticated, store_unavailable
from .keys import ANONYMOUS, CallerKey, hash_secret
from .ledger import Ledger
from .limits import CountersUnavailable, MemoryCounters, RedisCounters
from .store import Store, UsageRecord

log = logging.getLogger("modelruntime.auth")

_BEARER = "bearer "
# The database or Redis failing: the call is refused UNAVAILABLE (fail closed), never UNKNOWN.
STORE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, CountersUnavailable, OSError, TimeoutError)
_MISSES = 10_000  # unknown key hashes remembered until the next change


@dataclass(slots=True)
class CallState:
    key: CallerKey
    door: str  # "grpc" | "http"
    raw_credentials: bool = False  # the caller sent provider credentials itself
    credentials_name: str = ""  # a stored credential named by the call


CURRENT: ContextVar[CallState | None] = ContextVar("modelruntime_caller", default=None)


class Gate:
    def __init__(self, store: Store, counters: MemoryCounters | RedisCounters, keyring: Keyring | None,
                 ledger: Ledger | None, enabled: bool, refresh_seconds: float = 0.5) -> None:
        self.store = store
        self.counters = counters
        self.keyring = keyring
        self.ledger = ledger
        self.enabled = enabled
        self.refresh_seconds = refresh_seconds
        self._by_hash: dict[str, CallerKey] = {}
        self._by_cert: dict[str, CallerKey] = {}
        self._misses: set[str] = set()
        self._credentials: dict[str, tuple[str, dict[str, Any] | None]] = {}  # name → (provider, values)
        self._by_provider: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._version = -1
        self._task: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        if self.ledger is not None:
            self.ledger.start()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pending:  # charges and cancelled-call records; bounded: shutdown has a deadline
            _, late = await asyncio.wait(list(self._pending), timeout=0.3)
            if late:
                log.warning("auth: %d usage records still being counted at shutdown were dropped", len(late))
        if self.ledger is not None:
            await self.ledger.close()
        await self.counters.close()
        await self.store.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep serving on the last good view
                log.warning("auth: refresh failed (%s); keeping the cached keys", type(exc).__name__)

    async def refresh(self, force: bool = False) -> None:
        version = await self.store.version()
        if version == self._version and not force:
            return
        keys = await self.store.active_keys()
        rows = await self.store.credentials()
        credentials: dict[str, tuple[str, dict[str, Any] | None]] = {}
        for row in rows:
            values: dict[str, Any] | None = None
            if self.keyring is not None:
                try:
                    values = self.keyring.decrypt(row.ciphertext, row.name, row.provider)
                except CredentialsUnreadable as exc:
                    log.error("auth: %s", exc)
            credentials[row.name] = (row.provider, values)
        self._by_hash = dict(keys)
        self._by_cert = {k.cert_identity: k for _, k in keys if k.cert_identity}
        self._credentials = credentials
        by_provider: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for name, (provider, values) in sorted(credentials.items()):
            if values is not None:
                by_provider.setdefault(provider, []).append((name, values))
        self._by_provider = by_provider
        self._misses = set()
        self._version = version

    # ---- 1. authenticate ----------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, cert_identity: str = "") -> CallerKey:
        if not self.enabled:
            return ANONYMOUS
        if authorization:
            if authorization[:7].lower() != _BEARER:
                raise Unauthenticated("The authorization value must be 'Bearer <key>'.", "CALLER_KEY_INVALID")
            key = await self._lookup(authorization[7:].strip())
        elif cert_identity:
            key = await self._lookup(cert_identity, by_cert=True)
            if key is None:
                raise Unauthenticated("A caller key is required: no key has this client certificate's identity; "
                                      "send 'authorization: Bearer <key>'.", "CALLER_KEY_MISSING")
        else:
            raise Unauthenticated("A caller key is required: send 'authorization: Bearer <key>'.",
                                  "CALLER_KEY_MISSING")
        if key is None:
            raise Unauthenticated("The caller key is not valid (unknown or revoked).", "CALLER_KEY_INVALID")
        if key.expired():
            raise Unauthenticated(f"The caller key '{key.name}' has expired.", "CALLER_KEY_EXPIRED",
                                  {"key": key.id})
        return key

    async def _lookup(self, value: str, by_cert: bool = False) -> CallerKey | None:
        """The live key with this secret (or certificate identity); a miss asks the database once."""
        name = "cert:" + value if by_cert else hash_secret(value)
        key = self._by_cert.get(value) if by_cert else self._by_hash.get(name)
        if key is not None or name in self._misses:
            return key
        try:  # created by another process since the last poll
            key = await (self.store.key_by_cert(value) if by_cert else self.store.key_by_hash(name))
        except STORE_ERRORS as exc:
            raise store_unavailable(exc) from None
        if key is None:
            if len(self._misses) >= _MISSES:
                self._misses.clear()
            self._misses.add(name)
        elif by_cert:
            self._by_cert[value] = key
        else:
            self._by_hash[name] = key
        return key

    @staticmethod
    def require_admin(key: CallerKey) -> None:
        if not key.admin:
            raise PermissionDenied("This operation needs an admin key.", "service", "AdminService",
                                   reason="ADMIN_KEY_REQUIRED")

    # ---- 2. authorize -------------------------------------------------------------------------

    def authorize(self, state: CallState, provider: str, model: str, model_type: str,
                  credentials: dict[str, Any]) -> dict[str, Any]:
        """Check scopes; return the provider credentials to use (the stored ones, when named)."""
        key = state.key
        self.check_scope(key, provider, model, model_type)
        if state.credentials_name:
            if credentials:
                raise PermissionDenied("Send either target.credentials or target.credentials_name, not both.",
                                       reason="CREDENTIALS_AMBIGUOUS")
            return self.stored(key, state.credentials_name, provider)
        if state.raw_credentials and credentials and not key.admin and not key.scopes.raw_credentials:
            raise PermissionDenied(f"The caller key '{key.name}' may not send provider credentials; "
                                   "name stored credentials instead.", "credentials", "target.credentials",
                                   reason="RAW_CREDENTIALS_DENIED")
        return credentials

    @staticmethod
    def check_scope(key: CallerKey, provider: str, model: str, model_type: str) -> None:
        if not key.admin:
            denied = key.scopes.denies(provider, model, model_type)
            if denied:
                resource = f"providers/{provider}" + (f"/models/{model}" if model else "")
                raise PermissionDenied(f"The caller key '{key.name}' may not use {denied}.", "model", resource)

    def stored(self, key: CallerKey, name: str, provider: str) -> dict[str, Any]:
        if not key.admin and not key.scopes.may_use_credentials(name):
            raise PermissionDenied(f"The caller key '{key.name}' may not use stored credentials '{name}'.",
                                   "credentials", f"credentials/{name}")
        entry = self._credentials.get(name)
        if entry is None:
            raise CredentialsUnavailable(f"No stored credentials are named '{name}'.", name)
        stored_provider, values = entry
        if stored_provider != provider:
            raise CredentialsUnavailable(f"Stored credentials '{name}' are for provider '{stored_provider}', "
                                         f"not '{provider}'.", name)
        if values is None:
            raise CredentialsUnavailable(f"Stored credentials '{name}' cannot be decrypted with the "
                                         "configured encryption keys.", name)
        return dict(values)

    def stored_for_provider(self, key: CallerKey, provider: str) -> dict[str, Any] | None:
        """HTTP (server-side credentials): the first stored credential of ``provider`` the key may use."""
        for name, values in self._by_provider.get(provider, ()):
            if key.admin or key.scopes.may_use_credentials(name):
                return dict(values)
        return None

    # ---- 3./4. limits and ledger ----------------------------------------------------------------

    async def admit(self, state: CallState) -> None:
        try:
            await self.counters.admit(state.key)
        except STORE_ERRORS as exc:
            raise store_unavailable(exc) from None

    def finish(self, state: CallState, provider: str, model: str, model_type: str, started: float,
               tokens: tuple[int, int] = (0, 0), cost: Decimal = Decimal(0), status: str = "OK",
               cancelled: bool = False, latency_ms: float | None = None) -> None:
        key = state.key
        if key.limited and (tokens[0] or tokens[1] or cost):
            if isinstance(self.counters, MemoryCounters):  # no I/O: no task (a task per call costs CPU)
                self.counters.add(key, tokens[0] + tokens[1], cost)
            else:
                task = asyncio.get_running_loop().create_task(self.counters.charge(key, tokens[0] + tokens[1], cost))
                self._pending.add(task)
                task.add_done_callback(self._charged)
        if self.ledger is not None:
            self.ledger.record(UsageRecord(
                ts=datetime.now(UTC), key_id=key.id, door=state.door, provider=provider, model=model,
                model_type=model_type, prompt_tokens=tokens[0], completion_tokens=tokens[1], cost=cost,
                latency_ms=latency_ms if latency_ms is not None else (time.perf_counter() - started) * 1000,
                status=status, cancelled=cancelled,
            ))

    def refused(self, door: str, exc: AccessError, key: CallerKey | None = None, provider: str = "",
                model: str = "", model_type: str = "") -> None:
        """A refused call in the ledger, its status the refusal reason (unauthenticated: no key id)."""
        if self.ledger is not None:
            self.ledger.record(UsageRecord(
                ts=datetime.now(UTC), key_id=key.id if key is not None else "", door=door, provider=provider[:100],
                model=model[:200], model_type=model_type, status=exc.reason))

    def later(self, work: Any) -> None:
        """Run ``work`` (a coroutine) off the hot path; :meth:`close` waits for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._charged)

    def _charged(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("auth: charging a key failed (%s)", type(task.exception()).__name__)

    # ---- stored credentials (admin) ---------------------------------------------------------------

    def require_keyring(self) -> Keyring:
        if self.keyring is None:
            raise KeyringError("no encryption keys are configured (set MODEL_RUNTIME_ENCRYPTION_KEYS or "
                               "auth.encryption_keys_file)")
        return self.keyring

    async def put_credentials(self, runtime: Any, name: str, provider: str, credentials: dict[str, Any],
                              validate: bool = True) -> dict[str, Any]:
        """Validate with the provider's own check, encrypt, store; returns the masked form."""
        keyring = self.require_keyring()
        entity = runtime.provider(provider)  # unknown provider → NotFoundError
        if validate:
            masked = await runtime.validate_provider_credentials(provider, credentials)
        else:
            form = entity.provider_credential_schema or entity.model_credential_schema
            masked = mask_secrets(form.credential_form_schemas if form else [], credentials)
        ciphertext, key_id = keyring.encrypt(credentials, name, provider)
        await self.store.put_credentials(name, provider, ciphertext, key_id, masked)
        await self.refresh()
        return masked

    async def reencrypt(self) -> int:
        """Re-encrypt every stored credential under the active key (after adding a new key first)."""
        keyring = self.require_keyring()
        rows = []
        for row in await self.store.credentials():
            values = keyring.decrypt(row.ciphertext, row.name, row.provider)
            ciphertext, key_id = keyring.encrypt(values, row.name, row.provider)
            rows.append((row.name, ciphertext, key_id))
        count = await self.store.replace_ciphertexts(rows)
        await self.refresh()
        return count
