"""Model Runtime clients: :class:`ModelRuntimeClient` (sync) and :class:`AsyncModelRuntimeClient` (``grpc.aio``).

Both are thin facades over the generated stubs in :mod:`modelruntime.v1`:
methods take Python-native arguments (credentials and model parameters as
dicts, messages as dicts or :func:`modelruntime.user`-style helpers), return the
response protos, and raise :mod:`modelruntime.errors` exceptions instead of
``grpc.RpcError`` — for streams too, including errors raised mid-iteration.
"""

from __future__ import annotations

from ._async import (
    AsyncLLM,
    AsyncLLMStream,
    AsyncModelRuntimeClient,
    AsyncModeration,
    AsyncProviders,
    AsyncRerank,
    AsyncSpeech2Text,
    AsyncStream,
    AsyncTextEmbedding,
    AsyncTTS,
    AsyncTTSStream,
)
from ._base import (
    DEFAULT_GENERATION_TIMEOUT,
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    KEEPALIVE_TIME_MS,
    MAX_MESSAGE_LENGTH,
    NOT_GIVEN,
    NotGiven,
    channel_options,
)
from ._sync import (
    LLM,
    TTS,
    LLMStream,
    ModelRuntimeClient,
    Moderation,
    Providers,
    Rerank,
    Speech2Text,
    Stream,
    TextEmbedding,
    TTSStream,
)

__all__ = [
    "DEFAULT_GENERATION_TIMEOUT",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "KEEPALIVE_TIME_MS",
    "LLM",
    "MAX_MESSAGE_LENGTH",
    "NOT_GIVEN",
    "TTS",
    "AsyncLLM",
    "AsyncLLMStream",
    "AsyncModelRuntimeClient",
    "AsyncModeration",
    "AsyncProviders",
    "AsyncRerank",
    "AsyncSpeech2Text",
    "AsyncStream",
    "AsyncTTS",
    "AsyncTTSStream",
    "AsyncTextEmbedding",
    "LLMStream",
    "ModelRuntimeClient",
    "Moderation",
    "NotGiven",
    "Providers",
    "Rerank",
    "Speech2Text",
    "Stream",
    "TTSStream",
    "TextEmbedding",
    "channel_options",
]
