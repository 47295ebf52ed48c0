"""TLS for both front doors from ``tls:`` in the config; optional client certificates (mTLS).

gRPC gets ``ssl_server_credentials``; the HTTP endpoint gets uvicorn's ssl settings (HTTPS on the
same port). With ``tls.client_ca_file`` set, client certificates signed by that CA are verified (and
required with ``tls.require_client_cert``); a verified certificate's common name authenticates as
the caller key whose ``cert_identity`` equals it, when the call carries no bearer key.

One asymmetry, from grpcio: its server credentials either require and verify a client certificate
or do not ask for one at all (no "request but do not require"). So on the gRPC port certificate
identities work with ``require_client_cert: true``; with it false the gRPC port takes bearer keys
only (fail closed: a certificate is simply not asked for), while HTTPS asks for one optionally. A
start-up warning says so.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import grpc

from ..config import Config, ConfigError

log = logging.getLogger("modelruntime.auth")


def enabled(config: Config) -> bool:
    if bool(config.tls.cert_file) != bool(config.tls.key_file):
        raise ConfigError("tls.cert_file and tls.key_file must be set together")
    if config.tls.client_ca_file and not config.tls.cert_file:
        raise ConfigError("tls.client_ca_file (mTLS) needs tls.cert_file and tls.key_file (TLS itself)")
    return bool(config.tls.cert_file)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror}") from None


def grpc_credentials(config: Config) -> grpc.ServerCredentials:
    t = config.tls
    ca = _read(t.client_ca_file, "tls.client_ca_file") if t.client_ca_file else None
    if ca and not t.require_client_cert:
        log.warning("tls: the gRPC port does not ask for client certificates unless tls.require_client_cert "
                    "is true (grpcio cannot ask optionally); gRPC callers authenticate with bearer keys")
    return grpc.ssl_server_credentials(
        [(_read(t.key_file, "tls.key_file"), _read(t.cert_file, "tls.cert_file"))],
        root_certificates=ca, require_client_auth=bool(ca and t.require_client_cert),
    )


def uvicorn_options(config: Config) -> dict[str, Any]:
    t = config.tls
    if not enabled(config):
        return {}
    options: dict[str, Any] = {"ssl_certfile": t.cert_file, "ssl_keyfile": t.key_file}
    if t.client_ca_file:
        options["ssl_ca_certs"] = t.client_ca_file
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED if t.require_client_cert else ssl.CERT_OPTIONAL
    return options


def peer_common_name(ssl_object: Any) -> str:
    """The verified client certificate's common name ('' without one)."""
    if ssl_object is None:
        return ""
    cert = ssl_object.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return ""
