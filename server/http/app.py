"""The OpenAI-compatible HTTP endpoint: a raw ASGI app served by uvicorn in the gRPC loop.

Why this stack: no framework (routing is a dict lookup, bodies are orjson), uvicorn with
httptools for HTTP/1.1 parsing in C, and ``loop="none"`` so it runs as one more task on the
event loop that already serves gRPC and owns the runtime's connection pool. uvicorn's own
signal capture is switched off (``serve()`` in server/app.py owns SIGTERM/SIGINT) and it gets
a socket we bound ourselves, so a bind error raises here instead of ``sys.exit`` in a task.

Per request: check Origin and Content-Type (``browser.py``), read the whole body (capped at
``grpc.max_message_bytes``: the same limit as the gRPC side, and at ``http.body_timeout_seconds``),
route, and run the handler while a watcher task waits for the client to go away; a disconnect
cancels the handler, and with it the runtime call and its upstream request. Connection limits
and the header deadline live in ``guard.py``.

Shutdown (driven by server/app.py): ``draining`` turns ``GET /healthz`` to 503; ``stop()`` closes
the listener, waits for in-flight requests until shortly before the shared deadline, then cuts
the rest itself (:meth:`OpenAIApp.cut`): a cut SSE stream ends with an OpenAI error event and a
proper end of body, a request still waiting for its provider gets a 503, so uvicorn never has to
cancel a task (which it logs with a traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvicorn

from engine.runtime import ModelRuntime

from ..auth import tls
from ..auth.errors import AccessError
from ..auth.errors import to_http as access_error
from ..auth.gate import CURRENT, CallState
from ..config import Config
from ..observability.http import HttpRequest, observability_of
from . import audio, chat, embeddings
from .browser import OriginPolicy, media_type_error
from .call import Call
from .guard import Guard, descriptor_share, protocol_class
from .openai_errors import HttpError, sse_error_event, to_http

log = logging.getLogger("modelruntime.http")

Handler = Callable[[Call], Awaitable[None]]

ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/chat/completions"): chat.chat_completions,
    ("POST", "/embeddings"): embeddings.create_embeddings,
    ("POST", "/rerank"): embeddings.rerank,
    ("POST", "/moderations"): embeddings.moderations,
    ("POST", "/audio/transcriptions"): audio.transcriptions,
    ("POST", "/audio/speech"): audio.speech,
}
_KNOWN_PATHS = {path for _, path in ROUTES} | {"/models"}
_MODEL_CREATED = 1_700_000_000  # OpenAI's Model.created is required; the catalog has no dates
_HEALTH_PATH = "/healthz"
_METRICS_PATH = "/metrics"  # Prometheus, when observability.metrics_admin is off


def shutdown_error() -> HttpError:
    return HttpError(503, "The server is shutting down; retry the request.", type="server_error",
                     code="server_shutting_down", headers=[(b"retry-after", b"1")], reason="InvokeServerUnavailableError")


def _split_path(path: str) -> tuple[str | None, str] | None:
    """``/v1/x`` → (None, "/x"); ``/<provider>/v1/x`` → (provider, "/x"); else None."""
    if path.startswith("/v1/"):
        return None, path[3:].rstrip("/")
    provider, _, rest = path[1:].partition("/")
    if provider and rest.startswith("v1/"):
        return provider, rest[2:].rstrip("/")
    return None


class _Watch:
    """Cancels the request task when the client disconnects before the response is done."""

    __slots__ = ("call", "fired", "task")

    def __init__(self, call: Call, task: asyncio.Task) -> None:
        self.call = call
        self.task = task
        self.fired = False

    async def run(self, receive: Callable[[], Awaitable[dict]]) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        if not self.call.finished:
            self.fired = True
            self.task.cancel()


class OpenAIApp:
    """ASGI 3 application."""

    def __init__(self, config: Config, runtime: ModelRuntime) -> None:
        self.config = config
        self.runtime = runtime
        self.allow_request_credentials = config.http.allow_request_credentials
        self.server_credentials: dict[str, dict[str, Any]] = {
            name: dict(p.credentials) for name, p in config.providers.items() if p.credentials
        }
        self.max_body = config.grpc.max_message_bytes
        self.body_timeout = config.http.body_timeout_seconds
        self.origins = OriginPolicy(config.http.cors_allowed_origins)
        self._models_cache: dict[str | None, bytes] = {}
        self.draining = False  # /healthz answers 503
        self.cutting = False  # in-flight requests are being cut at shutdown
        self.active: dict[asyncio.Task, Call | None] = {}  # request tasks; the Call once routed
        self.obs = observability_of(runtime)  # metrics, traces, call log, request ids (or None)
        self.gate = getattr(runtime, "gate", None)  # caller keys (server/auth), when the runtime is metered
        self.client_certs = bool(config.tls.client_ca_file)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        task = asyncio.current_task()
        assert task is not None
        self.active[task] = None
        try:
            await self._serve(scope, receive, send)
        except asyncio.CancelledError:
            if not self.cutting:
                raise
            task.uncancel()  # cut while the request was still being read: nothing started yet
            await self._end_cut(Call(self, scope, send, None, b""))
        finally:
            self.active.pop(task, None)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        method, path = scope["method"], scope["path"]
        if path == _HEALTH_PATH and method in ("GET", "HEAD"):
            status = 503 if self.draining else 200
            await _send_raw(send, status, b'{"status":"draining"}' if self.draining else b'{"status":"serving"}')
            return
        if path == _METRICS_PATH and method == "GET" and self.obs is not None and self.obs.metrics_on_http:
            page, content_type = self.obs.exposition()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", content_type.encode()), (b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})
            return
        preflight = self.origins.preflight(scope)
        if preflight is not None:
            await _send_raw(send, preflight[0], b"", preflight[1])
            return
        split = _split_path(path)
        handler: Handler | None = None
        if split is not None:
            provider, sub = split
            handler = ROUTES.get((method, sub))
            if handler is None and method == "GET" and (sub == "/models" or sub.startswith("/models/")):
                handler = self.models
        else:
            provider, sub = None, ""
        refused, cors_headers = self.origins.check(scope)
        observed = None
        if self.obs is not None:
            route = sub if handler is not None and handler != self.models else ("/models" if handler else "other")
            observed = HttpRequest(self.obs, scope, send, route)
            send = observed.send
            cors_headers = [*cors_headers, observed.header]
        try:
            if refused is not None:
                raise refused
            if handler is not None and self.gate is not None:
                await self._authenticate(scope, provider)
            if handler is not None and (unsupported := media_type_error(scope, sub)) is not None:
                raise unsupported
            body = await self._read_body(scope, receive)
        except HttpError as err:
            early = Call(self, scope, send, provider, b"")
            early.extra_headers = cors_headers
            await early.send_error(err)
            if observed is not None:
                observed.end(0, err.reason)
            return
        if body is None:
            if observed is not None:
                observed.end(0, client_left=True)
            return  # the client left while sending the body
        call = Call(self, scope, send, provider, body)
        call.extra_headers = cors_headers
        if handler is None:
            known = split is not None and sub in _KNOWN_PATHS
            await call.send_error(HttpError(
                405 if known else 404,
                f"{'Invalid method for URL' if known else 'Invalid URL'} ({method} {path})",
            ))
            if observed is not None:
                observed.end(len(body))
            return
        await self._run(handler, call, receive, observed)

    async def _authenticate(self, scope: dict[str, Any], provider: str | None) -> None:
        """The caller key from ``authorization: Bearer`` (how the openai SDK sends ``api_key``), or the
        key whose ``cert_identity`` is the verified client certificate's common name (mTLS)."""
        assert self.gate is not None
        authorization = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        identity = ""
        if self.client_certs and not authorization:  # mTLS: the certificate's identity, when no key is sent
            identity = scope.get("extensions", {}).get("tls", {}).get("client_cert_common_name", "")
        try:
            caller = await self.gate.authenticate(authorization, identity)
        except AccessError as exc:
            self.gate.refused("http", exc, None, provider or "")  # the body (and model) is not read yet
            raise access_error(exc) from None
        CURRENT.set(CallState(caller, "http"))

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> bytes | None:
        try:
            async with asyncio.timeout(self.body_timeout):
                return await self._receive_body(scope, receive)
        except TimeoutError:
            raise HttpError(408, f"The request body was not received within {self.body_timeout:g} s.",
                            code="request_timeout") from None

    async def _receive_body(self, scope: dict[str, Any], receive: Any) -> bytes | None:
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise HttpError(400, "Invalid Content-Length header.") from None
                if declared > self.max_body:
                    raise HttpError(413, f"The request body is larger than {self.max_body} bytes.")
                break
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body = message.get("body", b"")
        if not message.get("more_body"):
            return body
        parts = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise HttpError(413, f"The request body is larger than {self.max_body} bytes.")
            parts.append(chunk)
        return b"".join(parts)

    async def _run(self, handler: Handler, call: Call, receive: Any, observed: HttpRequest | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(call, task)
        watcher = asyncio.get_running_loop().create_task(watch.run(receive))
        self.active[task] = call
        error_class = ""
        try:
            await handler(call)
        except asyncio.CancelledError:
            if watch.fired:
                task.uncancel()  # the client left: the upstream call is already closed
            elif self.cutting:
                task.uncancel()
                await self._end_cut(call)
            else:
                raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI error body
            err = (access_error(exc) if isinstance(exc, AccessError)
                   else to_http(exc, call.fields, call.request_credentials))
            error_class = err.reason
            if not call.started:
                await call.send_error(err)
            else:  # headers are out: nothing truthful can be said any more; cut the body short
                log.warning("error after the response started: %s", err.reason or type(exc).__name__)
        finally:
            call.finished = True
            watcher.cancel()
            if observed is not None:
                observed.end(len(call.body), error_class, watch.fired)

    async def _end_cut(self, call: Call) -> None:
        """Finish a request cut at shutdown with the truest ending its response still allows."""
        try:
            if not call.started:
                await call.send_error(shutdown_error())
            elif call.sse and not call.finished:
                await call.end(sse_error_event(shutdown_error()))
            # a streamed audio body stays unterminated: the client must not take it as complete
        except (asyncio.CancelledError, OSError):
            pass  # the client is not reading; uvicorn closes the connection

    def cut(self) -> int:
        """Cancel every in-flight request (shutdown deadline); returns how many were cut."""
        self.cutting = True
        pending = [task for task, call in self.active.items() if call is None or not call.finished]
        for task in pending:
            task.cancel()
        return len(pending)

    # ---- GET /v1/models -------------------------------------------------------------------------

    async def models(self, call: Call) -> None:
        path = call.scope["path"]
        model_id = path[path.index("/models") + len("/models/"):] if "/models/" in path else None
        body = self._models_cache.get(call.provider)
        if body is None:
            body = orjson.dumps({"object": "list", "data": await self._model_list(call)})
            self._models_cache[call.provider] = body
        if model_id is None:
            await call.send_bytes(body)
            return
        for item in orjson.loads(body)["data"]:
            if item["id"] == model_id:
                await call.send_json(item)
                return
        raise HttpError(404, f"The model '{model_id}' does not exist.", param="model", code="model_not_found")

    async def _model_list(self, call: Call) -> list[dict[str, Any]]:
        if call.provider is not None:
            self.runtime.provider(call.provider)  # unknown → 404
            if call.provider not in self.server_credentials and not self.allow_request_credentials:
                call.credentials(call.provider)  # raises the 401
            providers = [call.provider]
        else:
            providers = [p for p in self.server_credentials if p in self.runtime.registry.definitions]
        data = []
        for provider in providers:
            for m in await self.runtime.list_models(provider):
                data.append({"id": call.public_model(provider, m.model), "object": "model",
                             "created": _MODEL_CREATED, "owned_by": provider})
        return data


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # serve() in server/app.py owns the process's signals
        yield


async def _send_raw(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    out = list(headers or [])
    if status != 204:
        out += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


def cut_delay(remaining: float) -> float:
    """When to cut in-flight work so that it ends, with a proper final message, by the deadline."""
    return max(0.0, remaining - min(0.5, remaining * 0.25))


class HttpServer:
    def __init__(self, server: _Server, task: asyncio.Task, sock: socket.socket, app: OpenAIApp) -> None:
        self.server = server
        self.task = task
        self.port: int = sock.getsockname()[1]
        self.app = app
        self._sock = sock

    def close_listener(self) -> None:
        """Stop accepting connections now (uvicorn's own shutdown would do it on its next tick)."""
        for listener in getattr(self.server, "servers", []):
            listener.close()

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish, cut what remains within ``grace`` seconds."""
        grace = self.app.config.grpc.grace_seconds if grace is None else max(0.0, grace)
        self.close_listener()
        self.server.config.timeout_graceful_shutdown = math.ceil(grace + 0.5)  # a backstop: we cut first
        self.server.should_exit = True
        try:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), cut_delay(grace))
            except TimeoutError:
                if self.app.cut():
                    log.warning("HTTP: cut the requests still running at the shutdown deadline")
                await self.task
        finally:
            self._sock.close()


def _bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: accepted sockets inherit it, and asyncio sets TCP_NODELAY only
    # on sockets that say so. With proto 0 (socket.create_server) every response split into
    # headers + body waits for a delayed ACK: ~40 ms per request (measured: 720 vs 6000+ req/s).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # several worker processes share the port; the kernel balances accepts
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def start_http(config: Config, runtime: ModelRuntime) -> HttpServer:
    """Serve the OpenAI-compatible endpoint on ``config.http`` (port 0: a free port)."""
    app = OpenAIApp(config, runtime)
    sock = _bind(config.http.host, config.http.port, reuse_port=config.grpc.workers > 1)
    http = config.http
    guard = Guard(descriptor_share(http.max_connections, "http.max_connections"), http.header_timeout_seconds,
                  http.max_header_bytes, http.max_headers)
    uv_config = uvicorn.Config(
        app, loop="none", lifespan="off", http=protocol_class(guard), ws="none", interface="asgi3",
        log_level="warning", log_config=None, access_log=False, server_header=False,
        timeout_keep_alive=http.keepalive_timeout_seconds,  # type: ignore[arg-type]
        timeout_graceful_shutdown=max(config.grpc.grace_seconds, 0.1),  # type: ignore[arg-type]
        **tls.uvicorn_options(config),
    )
    server = _Server(uv_config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # raises the startup error
            raise RuntimeError("the HTTP server stopped during startup")
        await asyncio.sleep(0.002)
    log.info("OpenAI-compatible HTTP listening on %s:%d", config.http.host, sock.getsockname()[1])
    return HttpServer(server, task, sock, app)
