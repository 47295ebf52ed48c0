"""The asynchronous (``grpc.aio``) client: ``AsyncModelRuntimeClient``.

Also the source of the sync client: ``scripts/gen_sync_client.py`` rewrites this module into
``_sync.py`` (``make sync-client``), so the two cannot drift; edit here, then regenerate.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any, TypeVar

import grpc
import grpc.aio
from google.protobuf import struct_pb2

from . import _base, _convert
from ._base import NOT_GIVEN, Credentials, Metadata, NotGiven, Timeout
from .errors import from_rpc_error
from .v1 import (
    llm_service_pb2,
    llm_service_pb2_grpc,
    moderation_service_pb2,
    moderation_service_pb2_grpc,
    provider_service_pb2,
    provider_service_pb2_grpc,
    rerank_service_pb2,
    rerank_service_pb2_grpc,
    speech2text_service_pb2,
    speech2text_service_pb2_grpc,
    text_embedding_service_pb2,
    text_embedding_service_pb2_grpc,
    tts_service_pb2,
    tts_service_pb2_grpc,
)

__all__ = ["AsyncLLMStream", "AsyncModelRuntimeClient", "AsyncStream", "AsyncTTSStream"]

_T = TypeVar("_T")
_C = TypeVar("_C", bound="AsyncModelRuntimeClient")
from ._async_streams import AsyncLLMStream, AsyncStream, AsyncTTSStream

# --------------------------------------------------------------------------- resources


class _AsyncResource:
    def __init__(self, client: AsyncModelRuntimeClient) -> None:
        self._client = client

    async def _unary(
        self,
        method: Callable[..., Awaitable[_T]],
        request: Any,
        timeout: Timeout,
        metadata: Metadata | None,
        long: bool = False,
    ) -> _T:
        kw = self._client._defaults.call_kwargs(timeout, metadata, long)
        try:
            return await method(request, **kw)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    def _stream(
        self, method: Callable[..., Any], request: Any, timeout: Timeout, metadata: Metadata | None
    ) -> Callable[[], Any]:
        kw = self._client._defaults.call_kwargs(timeout, metadata, True)
        return lambda: method(request, **kw)


class AsyncProviders(_AsyncResource):
    """``ProviderService``: the provider/model catalog and credential validation."""

    def __init__(self, client: AsyncModelRuntimeClient) -> None:
        super().__init__(client)
        self._stub = provider_service_pb2_grpc.ProviderServiceStub(client.channel)

    async def list(
        self,
        *,
        model_type: str | int | None = None,
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> provider_service_pb2.ListProvidersResponse:
        """Every provider (only those supporting ``model_type`` when given, e.g. "llm")."""
        req = provider_service_pb2.ListProvidersRequest(model_type=_convert.model_type(model_type))
        return await self._unary(self._stub.ListProviders, req, timeout, metadata)

    async def get(
        self, provider: str, *, timeout: Timeout = NOT_GIVEN, metadata: Metadata | None = None
    ) -> provider_service_pb2.GetProviderResponse:
        req = provider_service_pb2.GetProviderRequest(provider=provider)
        return await self._unary(self._stub.GetProvider, req, timeout, metadata)

    async def list_models(
        self,
        provider: str,
        *,
        model_type: str | int | None = None,
        credentials: Credentials = None,
        include_deprecated: bool = False,
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> provider_service_pb2.ListModelsResponse:
        """A provider's models; with ``credentials``, its remote models too."""
        req = _base.list_models_request(provider, model_type, credentials, include_deprecated)
        return await self._unary(self._stub.ListModels, req, timeout, metadata)

    async def get_model(
        self,
        provider: str,
        model: str,
        *,
        model_type: str | int,
        credentials: Credentials = None,
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> provider_service_pb2.GetModelResponse:
        req = _base.get_model_request(provider, model, model_type, credentials)
        return await self._unary(self._stub.GetModel, req, timeout, metadata)

    async def validate_credentials(
        self,
        provider: str,
        credentials: Credentials,
        *,
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> provider_service_pb2.ValidateProviderCredentialsResponse:
        """Raises ``CredentialsValidationError`` when the credentials are rejected."""
        req = _base.validate_provider_request(provider, credentials)
        return await self._unary(self._stub.ValidateProviderCredentials, req, timeout, metadata)

    async def validate_model_credentials(
        self,
        provider: str,
        model: str,
        credentials: Credentials,
        *,
        model_type: str | int,
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> provider_service_pb2.ValidateModelCredentialsResponse:
        req = _base.validate_model_request(provider, model, model_type, credentials)
        return await self._unary(self._stub.ValidateModelCredentials, req, timeout, metadata)

    async def loading_report(
        self,
        *,
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> provider_service_pb2.GetLoadingReportResponse:
        """What loading the server's provider_dirs did: providers loaded/replaced/skipped, failed files."""
        req = provider_service_pb2.GetLoadingReportRequest()
        return await self._unary(self._stub.GetLoadingReport, req, timeout, metadata)


class AsyncLLM(_AsyncResource):
    """``LLMService``: generation (unary and streamed) and token counting."""

    def __init__(self, client: AsyncModelRuntimeClient) -> None:
        super().__init__(client)
        self._stub = llm_service_pb2_grpc.LLMServiceStub(client.channel)

    async def generate(
        self,
        *,
        provider: str,
        model: str,
        messages: Iterable[llm_service_pb2.Message | Mapping[str, Any]],
        credentials: Credentials = None,
        credentials_name: str = "",
        model_parameters: Mapping[str, Any] | struct_pb2.Struct | None = None,
        tools: Iterable[llm_service_pb2.Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | llm_service_pb2.ToolChoice | None = None,
        stop: str | Sequence[str] | None = None,
        user: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> llm_service_pb2.GenerateResponse:
        """One complete assistant message (default deadline: the generation timeout)."""
        req = _base.generate_request(
            llm_service_pb2.GenerateRequest,
            provider,
            model,
            messages,
            credentials,
            model_parameters,
            tools,
            tool_choice,
            stop,
            user,
        )
        req.target.credentials_name = credentials_name
        return await self._unary(self._stub.Generate, req, timeout, metadata, long=True)

    def stream(
        self,
        *,
        provider: str,
        model: str,
        messages: Iterable[llm_service_pb2.Message | Mapping[str, Any]],
        credentials: Credentials = None,
        credentials_name: str = "",
        model_parameters: Mapping[str, Any] | struct_pb2.Struct | None = None,
        tools: Iterable[llm_service_pb2.Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | llm_service_pb2.ToolChoice | None = None,
        stop: str | Sequence[str] | None = None,
        user: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> AsyncLLMStream:
        """An async iterator of ``StreamGenerateResponse`` chunks (errors raised mid-stream are converted)."""
        req = _base.generate_request(
            llm_service_pb2.StreamGenerateRequest,
            provider,
            model,
            messages,
            credentials,
            model_parameters,
            tools,
            tool_choice,
            stop,
            user,
        )
        req.target.credentials_name = credentials_name
        return AsyncLLMStream(self._stream(self._stub.StreamGenerate, req, timeout, metadata))

    async def count_tokens(
        self,
        *,
        provider: str,
        model: str,
        messages: Iterable[llm_service_pb2.Message | Mapping[str, Any]],
        tools: Iterable[llm_service_pb2.Tool | Mapping[str, Any]] | None = None,
        credentials: Credentials = None,
        credentials_name: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> llm_service_pb2.CountTokensResponse:
        req = _base.count_tokens_request(provider, model, messages, tools, credentials)
        req.target.credentials_name = credentials_name
        return await self._unary(self._stub.CountTokens, req, timeout, metadata)


class AsyncTextEmbedding(_AsyncResource):
    """``TextEmbeddingService``."""

    def __init__(self, client: AsyncModelRuntimeClient) -> None:
        super().__init__(client)
        self._stub = text_embedding_service_pb2_grpc.TextEmbeddingServiceStub(client.channel)

    async def embed(
        self,
        *,
        provider: str,
        model: str,
        texts: str | Iterable[str],
        credentials: Credentials = None,
        credentials_name: str = "",
        input_type: str | int | None = None,
        dimensions: int | None = None,
        user: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> text_embedding_service_pb2.EmbedResponse:
        """One vector per text, in order; ``input_type`` is "document" or "query"."""
        req = _base.embed_request(provider, model, texts, credentials, input_type, dimensions, user)
        req.target.credentials_name = credentials_name
        return await self._unary(self._stub.Embed, req, timeout, metadata)

    async def count_tokens(
        self,
        *,
        provider: str,
        model: str,
        texts: str | Iterable[str],
        credentials: Credentials = None,
        credentials_name: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> text_embedding_service_pb2.CountEmbeddingTokensResponse:
        req = _base.count_embedding_tokens_request(provider, model, texts, credentials)
        req.target.credentials_name = credentials_name
        return await self._unary(self._stub.CountEmbeddingTokens, req, timeout, metadata)


class AsyncRerank(_AsyncResource):
    """``RerankService``."""

    def __init__(self, client: AsyncModelRuntimeClient) -> None:
        super().__init__(client)
        self._stub = rerank_service_pb2_grpc.RerankServiceStub(client.channel)

    async def rerank(
        self,
        *,
        provider: str,
        model: str,
        query: str,
        documents: Iterable[str],
        credentials: Credentials = None,
        credentials_name: str = "",
        score_threshold: float | None = None,
        top_n: int | None = None,
        user: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> rerank_service_pb2.RerankResponse:
        """Documents scored against ``query``, best first."""
        req = _base.rerank_request(
            provider, model, query, documents, credentials, score_threshold, top_n, user
        )
        req.target.credentials_name = credentials_name
        return await self._unary(self._stub.Rerank, req, timeout, metadata)


class AsyncSpeech2Text(_AsyncResource):
    """``Speech2TextService``."""

    def __init__(self, client: AsyncModelRuntimeClient) -> None:
        super().__init__(client)
        self._stub = speech2text_service_pb2_grpc.Speech2TextServiceStub(client.channel)

    async def transcribe(
        self,
        *,
        provider: str,
        model: str,
        audio: bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes],
        credentials: Credentials = None,
        credentials_name: str = "",
        format: str = "",
        language: str = "",
        prompt: str = "",
        user: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> speech2text_service_pb2.TranscribeResponse:
        """Transcribe ``audio`` (bytes, a path, or a binary file object)."""
        req = _base.transcribe_request(provider, model, audio, credentials, format, language, prompt, user)
        req.target.credentials_name = credentials_name
        return await self._unary(self._stub.Transcribe, req, timeout, metadata, long=True)


class AsyncModeration(_AsyncResource):
    """``ModerationService``."""

    def __init__(self, client: AsyncModelRuntimeClient) -> None:
        super().__init__(client)
        self._stub = moderation_service_pb2_grpc.ModerationServiceStub(client.channel)

    async def moderate(
        self,
        *,
        provider: str,
        model: str,
        text: str,
        credentials: Credentials = None,
        credentials_name: str = "",
        user: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> moderation_service_pb2.ModerateResponse:
        """``flagged`` is True when the text is unsafe."""
        req = _base.moderate_request(provider, model, text, credentials, user)
        req.target.credentials_name = credentials_name
        return await self._unary(self._stub.Moderate, req, timeout, metadata)


class AsyncTTS(_AsyncResource):
    """``TTSService``."""

    def __init__(self, client: AsyncModelRuntimeClient) -> None:
        super().__init__(client)
        self._stub = tts_service_pb2_grpc.TTSServiceStub(client.channel)

    def stream(
        self,
        *,
        provider: str,
        model: str,
        text: str,
        credentials: Credentials = None,
        credentials_name: str = "",
        voice: str = "",
        encoding: str | int | None = None,
        speed: float | None = None,
        user: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> AsyncTTSStream:
        """Synthesized audio as an async iterator of ``bytes`` chunks (see :class:`AsyncTTSStream`)."""
        req = _base.synthesize_request(provider, model, text, credentials, voice, encoding, speed, user)
        req.target.credentials_name = credentials_name
        return AsyncTTSStream(self._stream(self._stub.StreamSynthesize, req, timeout, metadata))

    async def list_voices(
        self,
        *,
        provider: str,
        model: str,
        credentials: Credentials = None,
        credentials_name: str = "",
        language: str = "",
        timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None = None,
    ) -> tts_service_pb2.ListVoicesResponse:
        req = _base.list_voices_request(provider, model, credentials, language)
        req.target.credentials_name = credentials_name
        return await self._unary(self._stub.ListVoices, req, timeout, metadata)


# --------------------------------------------------------------------------- client


class AsyncModelRuntimeClient:
    """Asynchronous (``grpc.aio``) Model Runtime client.

    >>> async with AsyncModelRuntimeClient("localhost:50051") as client:
    ...     async for chunk in client.llm.stream(provider="openai", model="gpt-4o-mini",
    ...                                          credentials={...}, messages=[user("Hi")]):
    ...         print(chunk.delta.content, end="")

    Arguments as for :class:`ModelRuntimeClient`; ``target`` may be an existing
    ``grpc.aio.Channel``. Create the client inside a running event loop.
    """

    def __init__(
        self,
        target: str | grpc.aio.Channel | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        timeout: float | None = _base.DEFAULT_TIMEOUT,
        generation_timeout: float | None = _base.DEFAULT_GENERATION_TIMEOUT,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
        options: Sequence[tuple[str, Any]] | Mapping[str, Any] | None = None,
        compression: grpc.Compression | None = None,
    ) -> None:
        if target is not None and not isinstance(target, str):
            if channel is not None:
                raise TypeError("give the channel either as target or as channel=, not both")
            channel, target = target, None
        if channel is not None:
            if target is not None:
                raise TypeError("give either a target or a channel, not both")
            self._channel = channel
            self._owns_channel = False
            self.target = ""
        else:
            self.target = _base.resolve_target(target)
            opts = _base.channel_options(options)
            if channel_credentials is not None:
                self._channel = grpc.aio.secure_channel(self.target, channel_credentials, opts, compression)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, opts, compression)
            self._owns_channel = True
        self._defaults = _base.CallDefaults(
            timeout, generation_timeout, metadata, wait_for_ready, _base.resolve_api_key(api_key)
        )
        self._closed = False
        self._resources: dict[str, Any] = {}

    # -- resources

    def _resource(self, name: str, cls: type[_R]) -> _R:
        res = self._resources.get(name)
        if res is None:
            res = self._resources[name] = cls(self)
        return res

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    @property
    def providers(self) -> AsyncProviders:
        return self._resource("providers", AsyncProviders)

    @property
    def llm(self) -> AsyncLLM:
        return self._resource("llm", AsyncLLM)

    @property
    def text_embedding(self) -> AsyncTextEmbedding:
        return self._resource("text_embedding", AsyncTextEmbedding)

    @property
    def rerank(self) -> AsyncRerank:
        return self._resource("rerank", AsyncRerank)

    @property
    def speech2text(self) -> AsyncSpeech2Text:
        return self._resource("speech2text", AsyncSpeech2Text)

    @property
    def tts(self) -> AsyncTTS:
        return self._resource("tts", AsyncTTS)

    @property
    def moderation(self) -> AsyncModeration:
        return self._resource("moderation", AsyncModeration)

    @property
    def timeout(self) -> float | None:
        return self._defaults.timeout

    @property
    def generation_timeout(self) -> float | None:
        return self._defaults.generation_timeout

    # -- options and lifecycle

    def with_options(  # noqa: PYI019 - typing.Self needs 3.11
        self: _C,
        *,
        timeout: Timeout = NOT_GIVEN,
        generation_timeout: Timeout = NOT_GIVEN,
        metadata: Metadata | None | NotGiven = NOT_GIVEN,
        wait_for_ready: bool | None | NotGiven = NOT_GIVEN,
        api_key: str | None | NotGiven = NOT_GIVEN,
    ) -> _C:
        """A client sharing this one's channel with other call defaults (closing it leaves the channel open)."""
        clone = type(self).__new__(type(self))
        clone._channel = self._channel
        clone._owns_channel = False
        clone.target = self.target
        clone._defaults = self._defaults.replace(timeout, generation_timeout, metadata, wait_for_ready, api_key)
        clone._closed = False
        clone._resources = {}
        return clone

    async def wait_until_ready(self, timeout: float | None = None) -> None:
        """Wait until the channel is connected; raises ``APITimeoutError`` after ``timeout``."""
        from .errors import APITimeoutError

        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except asyncio.TimeoutError as err:
            raise APITimeoutError(
                f"channel to {self.target or 'the runtime'} not ready after {timeout}s",
                code=grpc.StatusCode.DEADLINE_EXCEEDED,
            ) from err

    async def close(self, grace: float | None = None) -> None:
        """Close the channel if the client created it (``grace``: seconds to let calls finish)."""
        if not self._closed:
            self._closed = True
            if self._owns_channel:
                await self._channel.close(grace)

    async def __aenter__(self: _C) -> _C:  # noqa: PYI019 - typing.Self needs 3.11
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r})"


_R = TypeVar("_R", bound=_AsyncResource)
