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
from decimal import Decimal
from fnmatch import translate
from functools import lru_cache
from typing import Any

KEY_PREFIX = "mrk_"
BUDGET_PERIODS = ("day", "month")


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
