"""The gRPC side of the gate: which methods stay open and what a request says about credentials.

The front door (:mod:`server.door`) authenticates every call but these from the
``authorization: Bearer <key>`` metadata (or, with mTLS, the verified client certificate's common
name) and puts the caller in :data:`server.auth.gate.CURRENT` for the servicer and the metered
runtime; refusals raised anywhere in the call (:class:`server.auth.errors.AccessError`) end it with
the matching status and google.rpc details. Health and reflection stay open (load balancers,
grpcurl).
"""

from __future__ import annotations

from typing import Any

OPEN = ("/grpc.health.v1.", "/grpc.reflection.")


def request_credentials(request: Any) -> tuple[bool, str]:
    """(raw credentials sent, stored credentials name) of a request."""
    target = getattr(request, "target", None)
    if target is not None:
        return bool(target.credentials.fields), target.credentials_name
    credentials = getattr(request, "credentials", None)
    return bool(credentials is not None and getattr(credentials, "fields", None)), ""
