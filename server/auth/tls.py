"""TLS for both front doors from ``tls:`` in the config; optional client certificates (mTLS).

gRPC gets ``ssl_server_credentials``; the HTTP endpoint gets uvicorn's ssl settings (HTTPS on the
same port). With ``tls.client_ca_file`` set, client certificates signed by that CA are verified (and
required with ``tls.require_client_cert``); a verified certificate's common name authenticates as
the caller key whose ``cert_identity`` equals it, when the call carries no bearer key.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import grpc

from ..config import Config, ConfigError


def enabled(config: Config) -> bool:
    if bool(config.tls.cert_file) != bool(config.tls.key_file):
        raise ConfigError("tls.cert_file and tls.key_file must be set together")
    return bool(config.tls.cert_file)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc.strerror}") from None


def grpc_credentials(config: Config) -> grpc.ServerCredentials:
    t = config.tls
    ca = _read(t.client_ca_file, "tls.client_ca_file") if t.client_ca_file else None
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
