"""Typed Python client for the Model Runtime gRPC service.

>>> from modelruntime import ModelRuntimeClient, user, system
>>> client = ModelRuntimeClient("localhost:50051")
>>> resp = client.llm.generate(
...     provider="openai", model="gpt-4o-mini", credentials={"openai_api_key": "sk-..."},
...     messages=[system("Be brief."), user("Hello")], model_parameters={"temperature": 0.2},
... )
>>> resp.message.content

Errors are :class:`ModelRuntimeError` subclasses (see :mod:`modelruntime.errors`);
the generated protos live in :mod:`modelruntime.v1` (``modelruntime.v1.llm_service_pb2`` ...).
"""

from __future__ import annotations

from ._accumulate import ReasoningAccumulator, StreamAccumulator, ToolCallAccumulator, aaccumulate, accumulate
from ._base import __version__
from ._messages import (
    assistant,
    assistant_reply,
    audio,
    developer,
    document,
    image,
    system,
    text,
    tool,
    tool_call,
    tool_result,
    user,
    video,
)
from .client import (
    NOT_GIVEN,
    AsyncLLMStream,
    AsyncModelRuntimeClient,
    AsyncStream,
    AsyncTTSStream,
    LLMStream,
    ModelRuntimeClient,
    NotGiven,
    Stream,
    TTSStream,
)
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CredentialsValidationError,
    FieldViolation,
    InternalServerError,
    ModelRuntimeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestCancelledError,
    ResourceInfo,
    ServiceUnavailableError,
    UnsupportedError,
    from_rpc_error,
)

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncLLMStream",
    "AsyncModelRuntimeClient",
    "AsyncStream",
    "AsyncTTSStream",
    "AuthenticationError",
    "BadRequestError",
    "CredentialsValidationError",
    "FieldViolation",
    "InternalServerError",
    "LLMStream",
    "ModelRuntimeClient",
    "ModelRuntimeError",
    "NotFoundError",
    "NotGiven",
    "PermissionDeniedError",
    "RateLimitError",
    "ReasoningAccumulator",
    "RequestCancelledError",
    "ResourceInfo",
    "ServiceUnavailableError",
    "Stream",
    "StreamAccumulator",
    "TTSStream",
    "ToolCallAccumulator",
    "UnsupportedError",
    "__version__",
    "aaccumulate",
    "accumulate",
    "assistant",
    "assistant_reply",
    "audio",
    "developer",
    "document",
    "from_rpc_error",
    "image",
    "system",
    "text",
    "tool",
    "tool_call",
    "tool_result",
    "user",
    "video",
]
