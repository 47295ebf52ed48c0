"""Channel options, defaults and request builders shared by the sync and async clients."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Final

from google.protobuf import struct_pb2

from . import _convert
from .v1 import (
    llm_service_pb2,
    moderation_service_pb2,
    provider_service_pb2,
    rerank_service_pb2,
    speech2text_service_pb2,
    text_embedding_service_pb2,
    tts_service_pb2,
)

__version__ = "0.1.0"

#: Target used when neither a target nor a channel is given and $MODELRUNTIME_TARGET is unset.
DEFAULT_TARGET: Final = "localhost:50051"
#: Default deadline of catalog, embedding, rerank, moderation and token-count calls (seconds).
DEFAULT_TIMEOUT: Final = 60.0
#: Default deadline of generation calls: llm.generate/stream, tts.stream, speech2text (seconds).
DEFAULT_GENERATION_TIMEOUT: Final = 600.0
#: Max send/receive message size (32 MiB; audio and images travel inline).
MAX_MESSAGE_LENGTH: Final = 32 * 1024 * 1024
#: HTTP/2 keepalive ping interval; at least 10 s so servers do not see ping abuse.
KEEPALIVE_TIME_MS: Final = 30_000
KEEPALIVE_TIMEOUT_MS: Final = 10_000

Metadata = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]]
Credentials = Mapping[str, Any] | struct_pb2.Struct | None


class NotGiven:
    """Sentinel type of :data:`NOT_GIVEN`: "use the client's default" (``None`` means no deadline)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()

Timeout = float | None | NotGiven


def channel_options(
    extra: Iterable[tuple[str, Any]] | Mapping[str, Any] | None = None,
) -> list[tuple[str, Any]]:
    """The client's channel options; ``extra`` entries override them by key."""
    opts: dict[str, Any] = {
        "grpc.max_send_message_length": MAX_MESSAGE_LENGTH,
        "grpc.max_receive_message_length": MAX_MESSAGE_LENGTH,
        "grpc.keepalive_time_ms": KEEPALIVE_TIME_MS,
        "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
        "grpc.keepalive_permit_without_calls": 0,
        "grpc.primary_user_agent": f"modelruntime-python/{__version__}",
    }
    if extra:
        items = extra.items() if isinstance(extra, Mapping) else extra
        for key, value in items:
            opts[key] = value
    if opts.get("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS) < 10_000:
        raise ValueError("grpc.keepalive_time_ms must be at least 10000")
    return list(opts.items())


def resolve_target(target: str | None) -> str:
    return target or os.environ.get("MODELRUNTIME_TARGET") or DEFAULT_TARGET


class CallDefaults:
    """Per-client call settings (immutable; ``with_options`` makes a copy)."""

    __slots__ = ("api_key", "generation_timeout", "metadata", "timeout", "wait_for_ready")

    def __init__(
        self,
        timeout: float | None,
        generation_timeout: float | None,
        metadata: Metadata | None,
        wait_for_ready: bool | None,
        api_key: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.generation_timeout = generation_timeout
        self.metadata = _convert.metadata_tuple(metadata)
        self.wait_for_ready = wait_for_ready
        self.api_key = api_key or None

    def replace(
        self,
        timeout: Timeout = NOT_GIVEN,
        generation_timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None | NotGiven = NOT_GIVEN,
        wait_for_ready: bool | None | NotGiven = NOT_GIVEN,
        api_key: str | None | NotGiven = NOT_GIVEN,
    ) -> CallDefaults:
        return CallDefaults(
            self.timeout if isinstance(timeout, NotGiven) else timeout,
            self.generation_timeout if isinstance(generation_timeout, NotGiven) else generation_timeout,
            self.metadata if isinstance(metadata, NotGiven) else metadata,
            self.wait_for_ready if isinstance(wait_for_ready, NotGiven) else wait_for_ready,
            self.api_key if isinstance(api_key, NotGiven) else api_key,
        )

    def call_kwargs(self, timeout: Timeout, metadata: Metadata | None, long: bool) -> dict[str, Any]:
        if isinstance(timeout, NotGiven):
            timeout = self.generation_timeout if long else self.timeout
        merged = _convert.metadata_tuple(self.metadata, metadata)
        if self.api_key and not any(k == "authorization" for k, _ in merged or ()):
            # The caller key, as the server reads it; an authorization given per call wins.
            merged = (("authorization", f"Bearer {self.api_key}"), *(merged or ()))
        kw: dict[str, Any] = {"timeout": timeout, "metadata": merged}
        if self.wait_for_ready is not None:
            kw["wait_for_ready"] = self.wait_for_ready
        return kw


def resolve_api_key(api_key: str | None) -> str | None:
    """``api_key``, else ``$MODELRUNTIME_API_KEY`` (unset or empty: no key is sent)."""
    return api_key if api_key is not None else (os.environ.get("MODELRUNTIME_API_KEY") or None)


# --------------------------------------------------------------------------- request builders


def _texts(texts: str | Iterable[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


def generate_request(
    cls: Any,
    provider: str,
    model: str,
    messages: Iterable[Any],
    credentials: Credentials,
    model_parameters: Mapping[str, Any] | struct_pb2.Struct | None,
    tools: Iterable[Any] | None,
    tool_choice: Any,
    stop: str | Iterable[str] | None,
    user: str,
) -> Any:
    req = cls(
        target=_convert.target(provider, model, credentials),
        messages=_convert.to_messages(messages),
        tools=_convert.to_tools(tools),
        stop=_texts(stop) if stop is not None else [],
        user=user,
    )
    params = _convert.to_struct(model_parameters)
    if params is not None:
        req.model_parameters.CopyFrom(params)
    choice = _convert.to_tool_choice(tool_choice)
    if choice is not None:
        req.tool_choice.CopyFrom(choice)
    return req


def count_tokens_request(
    provider: str, model: str, messages: Iterable[Any], tools: Iterable[Any] | None, credentials: Credentials
) -> llm_service_pb2.CountTokensRequest:
    return llm_service_pb2.CountTokensRequest(
        target=_convert.target(provider, model, credentials),
        messages=_convert.to_messages(messages),
        tools=_convert.to_tools(tools),
    )


def embed_request(
    provider: str,
    model: str,
    texts: str | Iterable[str],
    credentials: Credentials,
    input_type: Any,
    dimensions: int | None,
    user: str,
) -> text_embedding_service_pb2.EmbedRequest:
    req = text_embedding_service_pb2.EmbedRequest(
        target=_convert.target(provider, model, credentials),
        texts=_texts(texts),
        input_type=_convert.input_type(input_type),
        user=user,
    )
    if dimensions is not None:
        req.dimensions = dimensions
    return req


def count_embedding_tokens_request(
    provider: str, model: str, texts: str | Iterable[str], credentials: Credentials
) -> text_embedding_service_pb2.CountEmbeddingTokensRequest:
    return text_embedding_service_pb2.CountEmbeddingTokensRequest(
        target=_convert.target(provider, model, credentials), texts=_texts(texts)
    )


def rerank_request(
    provider: str,
    model: str,
    query: str,
    documents: Iterable[str],
    credentials: Credentials,
    score_threshold: float | None,
    top_n: int | None,
    user: str,
) -> rerank_service_pb2.RerankRequest:
    req = rerank_service_pb2.RerankRequest(
        target=_convert.target(provider, model, credentials),
        query=query,
        documents=list(documents),
        user=user,
    )
    if score_threshold is not None:
        req.score_threshold = score_threshold
    if top_n is not None:
        req.top_n = top_n
    return req


def transcribe_request(
    provider: str,
    model: str,
    audio: bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes],
    credentials: Credentials,
    format: str,
    language: str,
    prompt: str,
    user: str,
) -> speech2text_service_pb2.TranscribeRequest:
    return speech2text_service_pb2.TranscribeRequest(
        target=_convert.target(provider, model, credentials),
        audio=_convert.read_audio(audio),
        format=format,
        language=language,
        prompt=prompt,
        user=user,
    )


def moderate_request(
    provider: str, model: str, text: str, credentials: Credentials, user: str
) -> moderation_service_pb2.ModerateRequest:
    return moderation_service_pb2.ModerateRequest(
        target=_convert.target(provider, model, credentials), text=text, user=user
    )


def synthesize_request(
    provider: str,
    model: str,
    text: str,
    credentials: Credentials,
    voice: str,
    encoding: Any,
    speed: float | None,
    user: str,
) -> tts_service_pb2.StreamSynthesizeRequest:
    req = tts_service_pb2.StreamSynthesizeRequest(
        target=_convert.target(provider, model, credentials),
        text=text,
        voice=voice,
        encoding=_convert.audio_encoding(encoding),
        user=user,
    )
    if speed is not None:
        req.speed = speed
    return req


def list_voices_request(
    provider: str, model: str, credentials: Credentials, language: str
) -> tts_service_pb2.ListVoicesRequest:
    return tts_service_pb2.ListVoicesRequest(
        target=_convert.target(provider, model, credentials), language=language
    )


def list_models_request(
    provider: str, model_type: Any, credentials: Credentials, include_deprecated: bool
) -> provider_service_pb2.ListModelsRequest:
    req = provider_service_pb2.ListModelsRequest(
        provider=provider,
        model_type=_convert.model_type(model_type),
        include_deprecated=include_deprecated,
    )
    creds = _convert.to_struct(credentials)
    if creds is not None:
        req.credentials.CopyFrom(creds)
    return req


def get_model_request(
    provider: str, model: str, model_type: Any, credentials: Credentials
) -> provider_service_pb2.GetModelRequest:
    req = provider_service_pb2.GetModelRequest(
        provider=provider,
        model=model,
        model_type=_convert.model_type(model_type),
    )
    creds = _convert.to_struct(credentials)
    if creds is not None:
        req.credentials.CopyFrom(creds)
    return req


def validate_provider_request(
    provider: str, credentials: Credentials
) -> provider_service_pb2.ValidateProviderCredentialsRequest:
    req = provider_service_pb2.ValidateProviderCredentialsRequest(provider=provider)
    creds = _convert.to_struct(credentials)
    if creds is not None:
        req.credentials.CopyFrom(creds)
    return req


def validate_model_request(
    provider: str, model: str, model_type: Any, credentials: Credentials
) -> provider_service_pb2.ValidateModelCredentialsRequest:
    req = provider_service_pb2.ValidateModelCredentialsRequest(
        provider=provider,
        model=model,
        model_type=_convert.model_type(model_type),
    )
    creds = _convert.to_struct(credentials)
    if creds is not None:
        req.credentials.CopyFrom(creds)
    return req
