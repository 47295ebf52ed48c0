"""The observer hook: what the runtime tells the outside world about each call, and nothing more.

Why a hook and not metrics here: the engine imports neither Prometheus nor OpenTelemetry (they
live in ``server/observability/``). The runtime fills one :class:`CallRecord` per model call and
hands it to an :class:`Observer` at three points: the start, the first streamed chunk, the end
(success, error or cancellation, always; a stream the caller cancels is ended with the usage
counted so far). The egress calls an :class:`AttemptObserver` once per upstream connection
attempt, which may add trace-context headers to the request, and ends the attempt with its
status and bytes.

Cost when no observer is set: one attribute check per call. Records are plain slotted objects;
the runtime never formats anything for them.

Content (prompt and completion text) is handed over only when the observer asks for it
(``capture_content``, an operator option off by default): the runtime then leaves the raw request
(messages, texts, query) in ``input``, the answer in ``output`` and the caller's secret credential
values in ``secrets``, and the observer formats and scrubs them. Otherwise they stay ``None``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, Protocol

from .entities import ModelType

# gen_ai.operation.name per model type. chat and embeddings are the conventions' own values;
# the conventions have none for the other four, so these are the runtime's documented names.
OPERATIONS: dict[ModelType, str] = {
    ModelType.LLM: "chat",
    ModelType.TEXT_EMBEDDING: "embeddings",
    ModelType.RERANK: "rerank",
    ModelType.SPEECH2TEXT: "speech_to_text",
    ModelType.TTS: "text_to_speech",
    ModelType.MODERATION: "moderation",
}

# Calls that are no model invocation but may still reach the upstream (a free count-tokens or
# credentials-check request), observed under the runtime's own operation names.
COUNT_TOKENS, VALIDATE_CREDENTIALS, LIST_MODELS = "count_tokens", "validate_credentials", "list_models"

OK, ERROR, CANCELLED = "ok", "error", "cancelled"


class CallRecord:
    """One model call as the runtime saw it. Times are ``time.perf_counter()`` seconds."""

    __slots__ = (
        "attempts", "capture", "cost", "duration", "error_type", "finish_reason", "input", "input_tokens", "model",
        "model_type", "operation", "output", "output_tokens", "provider", "response_model", "secrets", "span",
        "started", "status", "stream", "time_to_first_token", "usage_estimated",
    )

    def __init__(self, provider: str, model: str, model_type: ModelType, stream: bool = False,
                 operation: str = "") -> None:
        self.provider = provider
        self.model = model
        self.model_type = model_type
        self.operation = operation or OPERATIONS[model_type]
        self.stream = stream
        self.started = time.perf_counter()
        self.status = CANCELLED  # until the runtime says otherwise: a call that just stops was cancelled
        self.error_type = ""  # the Dify error class name on error
        self.duration = 0.0
        self.time_to_first_token: float | None = None
        self.input_tokens: int | None = None  # None: not known (never reported as 0)
        self.output_tokens: int | None = None
        self.cost: float | None = None  # USD, from the model's pricing
        self.response_model = ""
        self.attempts = 0  # upstream connection attempts
        self.usage_estimated = False  # counted locally after a cancel
        self.span: Any = None  # the observer's own per-call state (a trace span)
        self.capture = False  # the observer wants content: fill input / output / secrets
        self.input: Any = None  # messages (chat), texts, query and documents, or text
        self.output: Any = None  # the completion or transcript text
        self.finish_reason = ""
        self.secrets: list[str] = []  # the caller's secret credential values, to scrub from content

    def set_usage(self, usage: Any, response_model: str = "") -> None:
        """Take tokens and cost from an ``LLMUsage`` or ``EmbeddingUsage``."""
        if response_model:
            self.response_model = response_model
        if usage is None:
            return
        if hasattr(usage, "prompt_tokens"):
            self.input_tokens = usage.prompt_tokens
            self.output_tokens = usage.completion_tokens
        else:
            self.input_tokens = usage.tokens
        price = usage.total_price
        if price:
            self.cost = float(price) if isinstance(price, Decimal) else price

    def succeeded(self) -> None:
        self.status = OK

    def failed(self, error: Exception) -> None:
        self.status = ERROR
        self.error_type = getattr(error, "reason", "") or type(error).__name__


class Observer(Protocol):
    """Told about every model call; implementations must be fast and must never raise."""

    capture_content: bool  # ask the runtime for prompt and completion text (off by default)

    def call_started(self, record: CallRecord) -> None: ...

    def first_token(self, record: CallRecord) -> None: ...

    def call_ended(self, record: CallRecord) -> None: ...


class Attempt(Protocol):
    """One upstream attempt: the headers to send (maybe with ``traceparent``) and its end, told
    once: when it failed before a response (``status`` None), else when its response closed."""

    headers: Mapping[str, str] | None

    def end(self, status: int | None, error: BaseException | None, sent: int, received: int) -> None: ...


class AttemptObserver(Protocol):
    def attempt(self, method: str, url: str, headers: Mapping[str, str] | None, retry: bool) -> Attempt: ...


# The call in progress in this task, so an upstream attempt can be tied to its call.
current_call: ContextVar[CallRecord | None] = ContextVar("modelruntime_current_call", default=None)
