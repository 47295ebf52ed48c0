"""The gRPC front door of the gate: an interceptor that authenticates every call.

It reads ``authorization: Bearer <key>`` from the call's metadata (or, with mTLS, the verified client
certificate's common name), notes whether the request carries raw provider credentials or names
stored ones, and puts the caller in :data:`server.auth.gate.CURRENT` for the servicer and the metered
runtime. Refusals raised anywhere in the call (:class:`AccessError`) end it with the matching status
and google.rpc details. Health and reflection stay open (load balancers, grpcurl).
"""

from __future__ import annotations

import inspect
from typing import Any

import grpc

from .errors import AccessError, to_status
from .gate import CURRENT, CallState, Gate

_OPEN = ("/grpc.health.v1.", "/grpc.reflection.")
_ADMIN = "/modelruntime.v1.AdminService/"
_MODEL_TYPES = {"LLMService": "llm", "TextEmbeddingService": "text-embedding", "RerankService": "rerank",
                "Speech2TextService": "speech2text", "TTSService": "tts", "ModerationService": "moderation"}


def _model_type(method: str) -> str:
    return _MODEL_TYPES.get(method.split("/")[1].rpartition(".")[2] if method.count("/") == 2 else "", "")


def _request_credentials(request: Any) -> tuple[bool, str]:
    """(raw credentials sent, stored credentials name) of a request."""
    target = getattr(request, "target", None)
    if target is not None:
        return bool(target.credentials.fields), target.credentials_name
    credentials = getattr(request, "credentials", None)
    return bool(credentials is not None and getattr(credentials, "fields", None)), ""


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, gate: Gate, client_certs: bool = False) -> None:
        self.gate = gate
        self.client_certs = client_certs

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method.startswith(_OPEN):
            return handler
        io = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(handler.unary_unary, details.method), **io)
        if handler.unary_stream is not None:
            behavior = handler.unary_stream
            if inspect.isasyncgenfunction(behavior):
                return grpc.unary_stream_rpc_method_handler(self._stream(behavior, details.method), **io)
            return grpc.unary_stream_rpc_method_handler(self._unary(behavior, details.method), **io)
        return handler

    async def _enter(self, request: Any, context: grpc.aio.ServicerContext, method: str) -> None:
        authorization = None
        for name, value in context.invocation_metadata() or ():
            if name == "authorization":
                authorization = value if isinstance(value, str) else value.decode("latin-1")
                break
        identity = ""
        if self.client_certs and not authorization:
            names = context.auth_context().get("x509_common_name") or []
            identity = names[0].decode() if names else ""
        try:
            key = await self.gate.authenticate(authorization, identity)
        except AccessError as exc:
            if not method.startswith(_ADMIN):  # model calls go in the ledger, refused ones too
                where = getattr(request, "target", None) or request
                self.gate.refused("grpc", exc, None, getattr(where, "provider", ""), getattr(where, "model", ""),
                                  _model_type(method))
            raise
        raw, name = _request_credentials(request)
        CURRENT.set(CallState(key, "grpc", raw, name))

    def _unary(self, behavior, method: str):
        async def call(request, context):
            try:
                await self._enter(request, context, method)
                return await behavior(request, context)
            except AccessError as exc:
                await context.abort_with_status(to_status(exc))
        return call

    def _stream(self, behavior, method: str):
        async def call(request, context):
            try:
                await self._enter(request, context, method)
                async for item in behavior(request, context):
                    yield item
            except AccessError as exc:
                await context.abort_with_status(to_status(exc))
        return call
