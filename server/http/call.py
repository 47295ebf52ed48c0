"""One HTTP request of the OpenAI-compatible endpoint: body, target, credentials, responses.

Route handlers get a :class:`Call`. It parses the body, turns the OpenAI ``model`` field
into a runtime :class:`Target` (``"<provider>/<model>"`` on ``/v1/...``, a bare name on
``/<provider>/v1/...``) with the provider's credentials, and writes responses through the
ASGI ``send`` callable.

Credentials: the server's own (``config.providers[name].credentials``); or, only when
``http.allow_request_credentials`` is on, a JSON object in ``X-Provider-Credentials``. That
header is never logged or echoed. With stored credentials (server/auth), the first stored
credential of the provider that the caller key may use comes before the config's. The
``Authorization`` header is the caller key (checked in app.py), never a provider credential.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from engine.runtime import ModelRuntime, Target

from ..auth.errors import AccessError
from ..auth.gate import CURRENT
from .openai_errors import HttpError, bad_request

if TYPE_CHECKING:
    from .app import OpenAIApp

_JSON = b"application/json"
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]
CREDENTIALS_HEADER = b"x-provider-credentials"


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class Call:
    __slots__ = (
        "_send",
        "app",
        "body",
        "created",
        "extra_headers",
        "fields",
        "finished",
        "provider",
        "request_credentials",
        "scope",
        "sse",
        "started",
    )

    def __init__(self, app: OpenAIApp, scope: dict[str, Any], send: Any, provider: str | None, body: bytes) -> None:
        self.app = app
        self.scope = scope
        self._send = send
        self.provider = provider  # from the /<provider>/v1/... path form, else None
        self.body = body
        self.started = False  # response headers sent
        self.sse = False  # the response is an event stream (a cut can still send an error event)
        self.extra_headers: list[tuple[bytes, bytes]] = []  # CORS headers for an allowed Origin
        self.finished = False  # last body part is being sent: a disconnect no longer matters
        self.fields: Mapping[str, str] = {}  # runtime field → OpenAI request field, for error params
        self.request_credentials = False
        self.created = int(time.time())

    @property
    def runtime(self) -> ModelRuntime:
        return self.app.runtime

    # ---- request --------------------------------------------------------------------------

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    def json(self) -> dict[str, Any]:
        try:
            body = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise bad_request(
                "We could not parse the JSON body of your request. The API expects a JSON payload."
            ) from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        return body

    def target(self, model: Any) -> Target:
        """The runtime target for the OpenAI ``model`` field of this request."""
        if not isinstance(model, str) or not model:
            raise bad_request("you must provide a model parameter", param="model")
        if self.provider is None:
            provider, sep, name = model.partition("/")
            if not sep or not provider or not name:
                raise bad_request(
                    f"model must be '<provider>/<model>' on /v1 (got '{model}'), or use /<provider>/v1/...",
                    param="model", code="model_not_found",
                )
        else:
            provider, name = self.provider, model
        self.runtime.provider(provider)  # unknown provider → NotFoundError (404) before any 401
        state = CURRENT.get()
        if state is not None and self.app.gate is not None:
            try:
                self.app.gate.check_scope(state.key, provider, name, "")  # 403 before a credentials 401
            except AccessError as exc:
                self.app.gate.refused("http", exc, state.key, provider, name)  # in the ledger like the rest
                raise
        return Target(provider, name, self.credentials(provider))

    def credentials(self, provider: str) -> dict[str, Any]:
        app = self.app
        if app.allow_request_credentials:
            raw = self.header(CREDENTIALS_HEADER)
            if raw is not None:
                try:
                    creds = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    creds = None
                if not isinstance(creds, dict):
                    raise bad_request("The X-Provider-Credentials header must be a JSON object.")
                self.request_credentials = True
                state = CURRENT.get()
                if state is not None:
                    state.raw_credentials = True
                return creds
        state = CURRENT.get()
        if state is not None and app.gate is not None:
            stored = app.gate.stored_for_provider(state.key, provider)
            if stored is not None:
                return stored
        configured = app.server_credentials.get(provider)
        if configured:
            return configured
        hint = ("; send them as a JSON object in the X-Provider-Credentials header"
                if app.allow_request_credentials else "")
        raise HttpError(401, f"No credentials are configured for provider '{provider}' on this server{hint}.",
                        type="authentication_error", code="missing_provider_credentials",
                        reason="CredentialsValidateFailedError")

    def public_model(self, provider: str, model: str) -> str:
        """A model name as this caller addresses it."""
        return model if self.provider is not None else f"{provider}/{model}"

    # ---- responses ------------------------------------------------------------------------

    async def send_bytes(self, body: bytes, content_type: bytes = _JSON, status: int = 200,
                         headers: list[tuple[bytes, bytes]] | None = None) -> None:
        out = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if headers:
            out.extend(headers)
        out.extend(self.extra_headers)
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": out})
        self.finished = True
        await self._send({"type": "http.response.body", "body": body})

    async def send_json(self, obj: Any, status: int = 200) -> None:
        await self.send_bytes(orjson.dumps(obj), _JSON, status)

    async def send_error(self, err: HttpError) -> None:
        await self.send_bytes(err.encode(), _JSON, err.status, err.response_headers())

    async def start(self, content_type: bytes | None = None, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Send 200 headers of a streamed body (chunked); ``content_type`` None: SSE."""
        out = list(_SSE_HEADERS) if content_type is None else [(b"content-type", content_type)]
        if headers:
            out.extend(headers)
        out.extend(self.extra_headers)
        self.sse = content_type is None
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": out})

    async def write(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        self.finished = True
        await self._send({"type": "http.response.body", "body": data})


def text_field(body: dict[str, Any], name: str) -> str:
    """A request field that must be a string when present ("" when absent or of another type)."""
    value = body.get(name)
    return value if isinstance(value, str) else ""
