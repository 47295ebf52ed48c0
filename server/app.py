"""Server bootstrap: build the runtime, serve gRPC (reflection and health always on), stop cleanly.

Shutdown on SIGTERM/SIGINT, one budget of ``grpc.grace_seconds`` from the signal to exit shared
by both front doors (they used to run one after the other, HTTP first, and took grace + drain +
grace):

1. gRPC health and HTTP ``/healthz`` turn NOT_SERVING / 503 together, and both keep serving for
   ``drain_seconds`` (part of the budget) so balancers notice;
2. both stop accepting at the same moment; in-flight work may finish until shortly before the
   deadline (:func:`server.http.app.cut_delay`);
3. what still runs is cut by us, not by gRPC or uvicorn, so every caller gets a proper ending:
   gRPC calls end UNAVAILABLE with the same google.rpc ErrorInfo as every other error
   (:class:`_InFlight`), HTTP streams with an OpenAI error event;
4. the upstream connection pool closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from modelruntime.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
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

from engine._http.egress import Egress, EgressPolicy, ReplyCaps
from engine.errors import InvokeServerUnavailableError, NotFoundError
from engine.registry import Registry
from engine.routing import CooldownStore
from engine.runtime import Limits, ModelRuntime
from providers import builtin_registry

from . import auth, routing
from .auth import tls
from .auth.admin import AdminServicer
from .auth.gate import Gate
from .auth.metered import MeteredRuntime
from .bridge import ThreadedServer
from .config import Config, ConfigError
from .door import FrontDoor
from .errors import to_status
from .http.app import HttpServer, cut_delay, start_http
from .http.guard import descriptor_share
from .observability import Observability
from .observability.grpc import GrpcObserver
from .servicers.audio import Speech2TextServicer, TTSServicer
from .servicers.embedding import RerankServicer, TextEmbeddingServicer
from .servicers.llm import LLMServicer
from .servicers.moderation import ModerationServicer
from .servicers.provider import ProviderServicer

log = logging.getLogger("modelruntime.server")

SERVICE_NAMES = [
    provider_service_pb2.DESCRIPTOR.services_by_name["ProviderService"].full_name,
    llm_service_pb2.DESCRIPTOR.services_by_name["LLMService"].full_name,
    text_embedding_service_pb2.DESCRIPTOR.services_by_name["TextEmbeddingService"].full_name,
    rerank_service_pb2.DESCRIPTOR.services_by_name["RerankService"].full_name,
    speech2text_service_pb2.DESCRIPTOR.services_by_name["Speech2TextService"].full_name,
    tts_service_pb2.DESCRIPTOR.services_by_name["TTSService"].full_name,
    moderation_service_pb2.DESCRIPTOR.services_by_name["ModerationService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
]


def _ms(seconds: float) -> int:
    return int(seconds * 1000) if seconds > 0 else 2**31 - 1  # 0 = never (INT_MAX is gRPC's "infinite")


def grpc_options(config: Config) -> list[tuple[str, int]]:
    """gRPC core channel arguments. Names checked against the strings in grpcio 1.85's core:
    the ping-enforcement knob is ``grpc.http2.min_ping_interval_without_data_ms`` (the
    ``..._min_recv_ping_...`` name used before is not an argument core knows, so it did nothing)."""
    g = config.grpc
    return [
        ("grpc.max_receive_message_length", g.max_message_bytes),
        ("grpc.max_send_message_length", g.max_message_bytes),
        # A gRPC flood must not take the descriptors the HTTP side needs (and the reverse: guard.py).
        ("grpc.max_allowed_incoming_connections", descriptor_share(g.max_connections, "grpc.max_connections")),
        ("grpc.max_concurrent_streams", g.max_concurrent_streams),
        ("grpc.max_connection_idle_ms", _ms(g.max_connection_idle_seconds)),
        ("grpc.max_connection_age_ms", _ms(g.max_connection_age_seconds)),
        ("grpc.max_connection_age_grace_ms", _ms(g.max_connection_age_grace_seconds)),
        # Long unary generations send no DATA frames for minutes: tolerate client pings this
        # often (more often earns a GOAWAY after grpc.http2.max_ping_strikes), even with no call.
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(g.min_ping_interval_seconds)),
        ("grpc.keepalive_permit_without_calls", int(g.keepalive_permit_without_calls)),
        # Off for one process (a second server must not silently share the port);
        # on when several worker processes serve the same port.
        ("grpc.so_reuseport", 1 if g.workers > 1 else 0),
    ]


def build_runtime(config: Config) -> ModelRuntime:
    extra = [Path(p) for p in config.provider_dirs]
    egress = Egress(
        EgressPolicy.from_config(config.egress.allow_private_networks, config.egress.allowed_cidrs),
        max_connections=config.egress.max_connections,
        connect_timeout=config.egress.connect_timeout,
        read_timeout=config.egress.read_timeout,
        retries=config.egress.retries,
        http2=config.egress.http2,
        caps=ReplyCaps(config.egress.max_reply_bytes, config.egress.max_stream_bytes),
        audio_caps=ReplyCaps(config.egress.max_audio_reply_bytes, config.egress.max_audio_stream_bytes),
    )
    c = config.limits
    limits = Limits(
        max_message_bytes=c.max_message_bytes, max_messages=c.max_messages, max_tools=c.max_tools,
        max_stop_sequences=c.max_stop_sequences, max_stop_chars=c.max_stop_chars,
        max_struct_keys=c.max_struct_keys,
    )
    registry = builtin_registry(extra, config.load_options())
    apply_base_urls(registry, config)
    return MeteredRuntime(registry, egress, limits)


def apply_base_urls(registry: Registry, config: Config) -> None:
    """``providers.<name>.base_url`` of the config in place of the provider's default base URL
    (its syntax and any address literal were checked when the config loaded)."""
    for name, entry in config.providers.items():
        if not entry.base_url:
            continue
        if name not in registry.definitions:
            raise ConfigError(f"providers.{name}.base_url: no provider '{name}' is loaded")
        try:
            adapter = registry.adapter(name)
        except NotFoundError:
            raise ConfigError(f"providers.{name}.base_url: provider '{name}' names no protocol") from None
        if "base_url" not in type(adapter.options).model_fields:
            raise ConfigError(f"providers.{name}.base_url: the {adapter.options.protocol} protocol takes no base URL")
        update: dict[str, object] = {"base_url": entry.base_url}
        if "base_url_by_credential" in type(adapter.options).model_fields:
            update["base_url_by_credential"] = None  # a region switch must not route around it
        adapter.options = adapter.options.model_copy(update=update)


def _shutdown_status() -> grpc.Status:
    return to_status(InvokeServerUnavailableError(
        "The server is shutting down; retry the call on another instance.", retry_after=0))


class _Rpc:
    __slots__ = ("busy", "context", "cut", "task")

    def __init__(self, task: asyncio.Task, context: grpc.aio.ServicerContext) -> None:
        self.task = task
        self.context = context
        self.busy = True  # inside the servicer (not inside gRPC writing a message)
        self.cut = False


class _InFlight:
    """Tracks running RPCs so shutdown can end them with a real status instead of gRPC's bare
    CANCELLED. A cut cancels the servicer where it waits (its upstream call closes as usual),
    and the front door (server/door.py) aborts with UNAVAILABLE + ErrorInfo. A stream caught
    while gRPC is writing its message is not cancelled: it ends the same way when the write
    returns."""

    def __init__(self) -> None:
        self.rpcs: dict[asyncio.Task, _Rpc] = {}
        self.cutting = False

    def enter(self, context: grpc.aio.ServicerContext) -> _Rpc:
        task = asyncio.current_task()
        assert task is not None
        rpc = self.rpcs[task] = _Rpc(task, context)
        return rpc

    def leave(self, rpc: _Rpc) -> None:
        self.rpcs.pop(rpc.task, None)

    async def abort_if_cut(self, rpc: _Rpc, exc: BaseException | None = None) -> None:
        """Re-raise ``exc`` unless shutdown cut this call; a cut call ends UNAVAILABLE."""
        if exc is not None and not rpc.cut:
            raise exc
        if exc is not None:
            rpc.task.uncancel()
        await rpc.context.abort_with_status(_shutdown_status())

    def cut(self) -> int:
        self.cutting = True
        for rpc in self.rpcs.values():
            if rpc.busy:
                rpc.cut = True
                rpc.task.cancel()
        return len(self.rpcs)


@dataclass
class RunningServer:
    server: grpc.aio.Server | ThreadedServer
    health: health.aio.HealthServicer
    runtime: ModelRuntime
    port: int
    grace: float
    drain: float = 0.0
    in_flight: _InFlight = field(default_factory=_InFlight)
    http: HttpServer | None = None
    observability: Observability | None = None
    metrics_port: int | None = None  # the separate /metrics port (observability.metrics_admin)
    gate: Gate | None = None
    routing: CooldownStore | None = None

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Drain, stop accepting and cut both front doors within ``grace`` seconds from now."""
        loop = asyncio.get_running_loop()
        grace = max(0.0, self.grace if grace is None else grace)
        deadline = loop.time() + grace
        if self.http is not None:
            self.http.app.draining = True
        await self.health.enter_graceful_shutdown()
        await asyncio.sleep(min(self.drain if drain is None else drain, grace))
        remaining = max(0.0, deadline - loop.time())
        try:
            await asyncio.gather(self._stop_grpc(remaining),
                                 self.http.stop(remaining) if self.http is not None else asyncio.sleep(0))
        finally:
            await self.runtime.egress.aclose()
            if self.routing is not None:
                await self.routing.aclose()
            if self.gate is not None:
                await self.gate.close()  # flushes the usage ledger
            if self.observability is not None:
                # Flushes pending spans: blocking network I/O, so off the event loop.
                await asyncio.to_thread(self.observability.shutdown)

    async def _stop_grpc(self, remaining: float) -> None:
        stopping = asyncio.ensure_future(self.server.stop(remaining))  # stops accepting at once
        try:
            await asyncio.wait_for(asyncio.shield(stopping), cut_delay(remaining))
        except TimeoutError:
            if self.in_flight.cut():
                log.warning("gRPC: cut the calls still running at the shutdown deadline")
            await stopping


def refuse_self(runtime: ModelRuntime, host: str, port: int) -> None:
    """The self-address hook: upstream calls may never reach this listener of the runtime
    (with loopback allowed, a caller could otherwise aim a base URL at our own HTTP endpoint
    and spend the server-side keys)."""
    policy = getattr(runtime.egress, "policy", None)
    if policy is not None and port:
        policy.refuse_self(host, port)


async def start_server(config: Config, runtime: ModelRuntime | None = None,
                       observability: Observability | None = None) -> RunningServer:
    """``observability``: a prebuilt one (tests pass an in-memory span exporter this way)."""
    runtime = runtime or build_runtime(config)
    obs = observability or Observability(config.observability, set(runtime.registry.definitions))
    obs.attach(runtime)
    auth.check_exposure(config)
    gate = await auth.build_gate(config)
    await gate.start()
    if isinstance(runtime, MeteredRuntime):
        runtime.attach(gate)
    cooldowns = await routing.install(config, runtime, gate)
    in_flight = _InFlight()
    server: grpc.aio.Server | ThreadedServer
    if config.grpc.mode == "aio":
        server = grpc.aio.server(maximum_concurrent_rpcs=config.grpc.max_concurrent_rpcs,
                                 options=grpc_options(config))
    else:
        server = ThreadedServer(asyncio.get_running_loop(), maximum_concurrent_rpcs=config.grpc.max_concurrent_rpcs,
                                options=grpc_options(config))
    # No interceptors: every handler is registered wrapped by the front door (server/door.py),
    # which does observability (outermost: every status, cut calls included), in-flight
    # tracking, request decoding (bad bytes → INVALID_ARGUMENT) and authentication in one step.
    door = FrontDoor(GrpcObserver(obs) if obs.enabled else None, in_flight, gate, bool(config.tls.client_ca_file))
    registrar = door.registrar(server)
    provider_service_pb2_grpc.add_ProviderServiceServicer_to_server(ProviderServicer(runtime), registrar)
    llm_service_pb2_grpc.add_LLMServiceServicer_to_server(LLMServicer(runtime), registrar)
    text_embedding_service_pb2_grpc.add_TextEmbeddingServiceServicer_to_server(TextEmbeddingServicer(runtime),
                                                                               registrar)
    rerank_service_pb2_grpc.add_RerankServiceServicer_to_server(RerankServicer(runtime), registrar)
    speech2text_service_pb2_grpc.add_Speech2TextServiceServicer_to_server(Speech2TextServicer(runtime), registrar)
    tts_service_pb2_grpc.add_TTSServiceServicer_to_server(TTSServicer(runtime), registrar)
    moderation_service_pb2_grpc.add_ModerationServiceServicer_to_server(ModerationServicer(runtime), registrar)
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(gate, runtime), registrar)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
    # Importing the google.rpc modules puts their descriptors in the pool, so grpcurl can
    # decode ErrorInfo/RetryInfo/BadRequest details through reflection.
    from google.rpc import error_details_pb2, status_pb2  # noqa: F401

    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(
        [*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]),
        registrar)
    address = f"{config.grpc.host}:{config.grpc.port}"
    if tls.enabled(config):
        port = server.add_secure_port(address, tls.grpc_credentials(config))
    else:
        port = server.add_insecure_port(address)
    refuse_self(runtime, config.grpc.host, port)
    if config.http.enabled:  # the HTTP listener starts later; a port-0 one is added in serve()
        refuse_self(runtime, config.http.host, config.http.port)
    await server.start()
    for name in ["", *SERVICE_NAMES]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC listening on %s:%d", config.grpc.host, port)
    return RunningServer(server, health_servicer, runtime, port, config.grpc.grace_seconds,
                         config.grpc.drain_seconds, in_flight, observability=obs, metrics_port=obs.start_admin(),
                         gate=gate, routing=cooldowns)


async def serve(config: Config) -> None:
    # Handlers first: a SIGTERM that arrives while the servers start must still stop cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start_server(config)
    if config.http.enabled:
        running.http = await start_http(config, running.runtime)
        refuse_self(running.runtime, config.http.host, running.http.port)
    await stop.wait()
    log.info("shutting down (grace %gs, drain %gs)", running.grace, running.drain)
    await running.stop()
