"""Caller keys: generation, hashing, and what a key allows (scopes, limits, budget).

Why a plain SHA-256 and not a password hash: a key is 256 random bits from ``secrets``, so there is
nothing to brute-force and a slow KDF would only add CPU to every call. The secret is shown once at
creation; the database holds its hash and a short prefix for operators to recognise it.

Scopes are glob patterns (``fnmatch``, case-sensitive) over providers, models (``provider/model``
or a bare model name) and model types; an empty list means "any". A key also names which stored
credentials it may use (globs over their names) and whether it may still send raw provider
credentials per call. Admin keys may call the Admin service; they pass every scope.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fnmatch import translate
from functools import lru_cache
from typing import Any

KEY_PREFIX = "mrk_"
BUDGET_PERIODS = ("day", "month")
_INT32 = 2**31 - 1  # the limit columns are 32-bit integers
_MAX_BUDGET = Decimal(10) ** 14  # Numeric(20, 6)


class KeySpecError(ValueError):
    """A key field the store cannot take as given; ``field`` names it (as in CreateKeyRequest)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_key_spec(name: str, *, requests_per_minute: int = 0, tokens_per_minute: int = 0, budget_usd: str = "",
                   budget_period: str = "month", expires_at: datetime | None = None, cert_identity: str = "",
                   metadata: dict[str, str] | None = None, scopes: Scopes | None = None) -> Decimal | None:
    """Check what a new key would store (the admin API and the CLI share it); returns the budget."""
    if not name.strip():
        raise KeySpecError("name", "a key needs a name")
    for name_, text, size in (("name", name, 200), ("cert_identity", cert_identity, 255)):
        if len(text) > size:
            raise KeySpecError(name_, f"at most {size} characters")
    for name_, number in (("limits.requests_per_minute", requests_per_minute),
                          ("limits.tokens_per_minute", tokens_per_minute)):
        if not 0 <= number <= _INT32:
            raise KeySpecError(name_, f"must be between 0 (unlimited) and {_INT32}")
    if budget_period not in BUDGET_PERIODS:
        raise KeySpecError("limits.budget_period", "must be 'day' or 'month'")
    budget = None
    if budget_usd:
        try:
            budget = Decimal(budget_usd)
        except InvalidOperation:
            raise KeySpecError("limits.budget_usd", "must be a decimal number of USD") from None
        if not budget.is_finite() or budget < 0 or budget >= _MAX_BUDGET:
            raise KeySpecError("limits.budget_usd", "must be a finite, non-negative amount below 10^14 USD")
    if expires_at is not None:
        at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        if at <= datetime.now(UTC):
            raise KeySpecError("expire_time", "must be in the future")
    if metadata and (len(metadata) > 64 or any(len(k) > 128 or len(v) > 1024 for k, v in metadata.items())):
        raise KeySpecError("metadata", "at most 64 entries, keys up to 128 and values up to 1024 characters")
    if scopes is not None:
        for name_ in ("providers", "models", "model_types", "credentials"):
            patterns = getattr(scopes, name_)
            if len(patterns) > 256 or any(not p or len(p) > 256 for p in patterns):
                raise KeySpecError(f"scopes.{name_}", "at most 256 non-empty patterns of up to 256 characters")
    return budget


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(KEY_PREFIX) + 6]


@lru_cache(maxsize=4096)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(translate(glob))


def matches(patterns: tuple[str, ...], value: str) -> bool:
    """True when ``patterns`` is empty (no restriction) or any glob matches ``value``."""
    return not patterns or any(_pattern(p).match(value) for p in patterns)


@dataclass(frozen=True, slots=True)
class Scopes:
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    credentials: tuple[str, ...] = ()  # stored-credential names this key may use ("" = none)
    raw_credentials: bool = True  # may send provider credentials in the request

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Scopes:
        data = data or {}
        return cls(
            providers=tuple(data.get("providers") or ()), models=tuple(data.get("models") or ()),
            model_types=tuple(data.get("model_types") or ()), credentials=tuple(data.get("credentials") or ()),
            raw_credentials=bool(data.get("raw_credentials", True)),
        )

    def to_json(self) -> dict[str, Any]:
        return {"providers": list(self.providers), "models": list(self.models),
                "model_types": list(self.model_types), "credentials": list(self.credentials),
                "raw_credentials": self.raw_credentials}

    def denies(self, provider: str, model: str, model_type: str) -> str | None:
        """Why a call is out of scope (None: allowed)."""
        if not matches(self.providers, provider):
            return f"provider '{provider}'"
        if model and self.models and not (matches(self.models, f"{provider}/{model}")
                                          or matches(self.models, model)):
            return f"model '{provider}/{model}'"
        if model_type and not matches(self.model_types, model_type):
            return f"model type '{model_type}'"
        return None

    def may_use_credentials(self, name: str) -> bool:
        return bool(self.credentials) and matches(self.credentials, name)


@dataclass(frozen=True, slots=True)
class CallerKey:
    """One caller key as the gate sees it (never the secret)."""

    id: str
    name: str
    prefix: str
    admin: bool = False
    scopes: Scopes = field(default_factory=Scopes)
    expires_at: datetime | None = None
    requests_per_minute: int = 0  # 0 = unlimited
    tokens_per_minute: int = 0
    budget_usd: Decimal | None = None
    budget_period: str = "month"
    metadata: dict[str, str] = field(default_factory=dict)
    cert_identity: str = ""
    revoked: bool = False
    created_at: datetime | None = None

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        expires = self.expires_at if self.expires_at.tzinfo else self.expires_at.replace(tzinfo=UTC)
        return (now or datetime.now(UTC)) >= expires

    @property
    def limited(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute or self.budget_usd is not None)


ANONYMOUS = CallerKey(id="", name="anonymous", prefix="", admin=True)
