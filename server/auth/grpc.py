"""The gRPC side of the gate: which methods stay open and what a request says about credentials.

The front door (:mod:`server.door`) authenticates every call but these from the
``authorization: Bearer <key>`` metadata (or, with mTLS, the verified client certificate's common
name) and puts the caller in :data:`server.auth.gate.CURRENT` for the servicer and the metered
runtime; refusals raised anywhere in the call (:class:`server.auth.errors.AccessError`) end it with
the matching status and google.rpc details, and a refused model call still gets its ledger row
(:func:`note_refusal`). Health and reflection stay open (load balancers, grpcurl).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import AccessError
    from .gate import Gate

OPEN = ("/grpc.health.v1.", "/grpc.reflection.")
_ADMIN = "/modelruntime.v1.AdminService/"
_MODEL_TYPES = {"LLMService": "llm", "TextEmbeddingService": "text-embedding", "RerankService": "rerank",
                "Speech2TextService": "speech2text", "TTSService": "tts", "ModerationService": "moderation"}


def _model_type(method: str) -> str:
    return _MODEL_TYPES.get(method.split("/")[1].rpartition(".")[2] if method.count("/") == 2 else "", "")


def request_credentials(request: Any) -> tuple[bool, str]:
    """(raw credentials sent, stored credentials name) of a request."""
    target = getattr(request, "target", None)
    if target is not None:
        return bool(target.credentials.fields), target.credentials_name
    credentials = getattr(request, "credentials", None)
    return bool(credentials is not None and getattr(credentials, "fields", None)), ""


def note_refusal(gate: Gate, exc: AccessError, request: Any, method: str) -> None:
    """A model call refused at authentication goes in the ledger too (admin calls do not)."""
    if not method.startswith(_ADMIN):
        where = getattr(request, "target", None) or request
        gate.refused("grpc", exc, None, getattr(where, "provider", ""), getattr(where, "model", ""),
                     _model_type(method))
