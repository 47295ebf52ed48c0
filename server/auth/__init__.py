"""Caller identity, scopes, limits, budgets, stored credentials and the usage ledger.

Layout: ``keys`` (what a key is and allows), ``crypto`` (AES-GCM keyring), ``store`` (SQLAlchemy
models, Alembic migrations, queries), ``limits`` (memory / Redis counters), ``ledger`` (batched usage
rows), ``gate`` (the per-call checks both front doors share), ``metered`` (the runtime with the gate
around every call), ``grpc`` (what the gRPC front door needs), ``admin`` (AdminService), ``tls``, ``cli``.

Why auth is off by default, yet cannot be left open by accident: ``make run`` must work with no
set-up, and it binds loopback only. :func:`check_exposure` refuses to start a server that binds any
other address with authentication off unless ``auth.allow_unauthenticated_non_loopback`` says so.
"""

from __future__ import annotations

import ipaddress
import logging

from ..config import Config, ConfigError
from .crypto import Keyring, KeyringError
from .gate import Gate
from .ledger import Ledger
from .limits import MemoryCounters, RedisCounters
from .store import open_store

log = logging.getLogger("modelruntime.auth")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(config: Config) -> None:
    """Raise ConfigError when a non-loopback address would serve without authentication."""
    if config.auth.enabled or config.auth.allow_unauthenticated_non_loopback:
        return
    hosts = [("grpc.host", config.grpc.host)]
    if config.http.enabled:
        hosts.append(("http.host", config.http.host))
    for name, host in hosts:
        if not is_loopback(host):
            raise ConfigError(
                f"{name} is {host!r} (not loopback) while auth.enabled is false: anyone who can reach it could "
                "call providers with the server's credentials. Turn auth on (and create a key with "
                "`python -m server keys create --name admin --admin`), or set "
                "auth.allow_unauthenticated_non_loopback: true to accept that.")
    if config.tls.require_client_cert and not config.tls.client_ca_file:
        raise ConfigError("tls.require_client_cert needs tls.client_ca_file")


def keyring(config: Config) -> Keyring | None:
    try:
        return Keyring.from_config(config.auth.encryption_keys_env, config.auth.encryption_keys_file)
    except KeyringError as exc:
        raise ConfigError(str(exc)) from None


async def build_gate(config: Config, with_ledger: bool = True) -> Gate:
    store = await open_store(config.storage.url, config.storage.data_dir)
    seed = store.spend_since
    counters: MemoryCounters | RedisCounters
    if config.storage.redis_url:
        counters = RedisCounters(config.storage.redis_url, seed)
    else:
        counters = MemoryCounters(seed)
    ledger = None
    if with_ledger and config.auth.ledger_enabled:
        ledger = Ledger(store, config.auth.ledger_batch_size, config.auth.ledger_flush_seconds)
    return Gate(store, counters, keyring(config), ledger, config.auth.enabled, config.auth.refresh_seconds)


__all__ = ["Gate", "build_gate", "check_exposure", "is_loopback", "keyring"]
