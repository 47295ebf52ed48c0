"""The schema (SQLAlchemy 2 declarative models), the same on SQLite and PostgreSQL.

The migrations under ``migrations/versions`` create these tables; a change here needs a new
migration. tests/test_auth_migrations.py runs Alembic's comparison between these models and a
database migrated from empty, on SQLite and PostgreSQL, and fails on any difference.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class KeyRow(Base):
    __tablename__ = "caller_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(20))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    scopes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    requests_per_minute: Mapped[int] = mapped_column(Integer, default=0)
    tokens_per_minute: Mapped[int] = mapped_column(Integer, default=0)
    budget_usd: Mapped[Decimal | None] = mapped_column(Numeric(20, 6), nullable=True)
    budget_period: Mapped[str] = mapped_column(String(10), default="month")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    cert_identity: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CredentialRow(Base):
    __tablename__ = "stored_credentials"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[str] = mapped_column(Text)  # "<key id>:<base64 nonce + AES-GCM output>"
    key_id: Mapped[str] = mapped_column(String(40))
    masked: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # secrets as [__HIDDEN__]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsageRow(Base):
    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_day_key", "day", "key_id"), Index("ix_usage_day_model", "day", "model"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[str] = mapped_column(String(10))  # UTC YYYY-MM-DD
    key_id: Mapped[str] = mapped_column(String(40))
    door: Mapped[str] = mapped_column(String(8))  # grpc | http
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    model_type: Mapped[str] = mapped_column(String(20))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[Decimal] = mapped_column(Numeric(20, 10), default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(8), default="USD")
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(40))  # OK or the error reason
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)


class MetaRow(Base):
    """``version``: bumped by every change to keys or stored credentials; processes poll it."""

    __tablename__ = "meta"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
