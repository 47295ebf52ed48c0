"""Server bootstrap: build the runtime, serve gRPC (reflection and health always on), stop cleanly.

Shutdown order on SIGTERM/SIGINT: health → NOT_SERVING (balancers drain), stop accepting
RPCs and give in-flight ones ``grace_seconds``, then close the upstream connection pool.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from modelruntime.v1 import (
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

from engine._http.egress import Egress, EgressPolicy
from engine.runtime import Limits, ModelRuntime
from providers import builtin_registry

from .config import Config
from .http.app import start_http
from .servicers._decode import DecodeGuard
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
    )
    c = config.limits
    limits = Limits(
        max_message_bytes=c.max_message_bytes, max_messages=c.max_messages, max_tools=c.max_tools,
        max_stop_sequences=c.max_stop_sequences, max_stop_chars=c.max_stop_chars,
        max_struct_keys=c.max_struct_keys,
    )
    return ModelRuntime(builtin_registry(extra), egress, limits)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    runtime: ModelRuntime
    port: int
    grace: float
    drain: float = 0.0

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        await self.health.enter_graceful_shutdown()
        await asyncio.sleep(self.drain if drain is None else drain)
        await self.server.stop(self.grace if grace is None else grace)
        await self.runtime.egress.aclose()


async def start_server(config: Config, runtime: ModelRuntime | None = None) -> RunningServer:
    runtime = runtime or build_runtime(config)
    limit = config.grpc.max_message_bytes
    server = grpc.aio.server(
        # Unparseable request bytes of any service become INVALID_ARGUMENT, not UNKNOWN.
        interceptors=[DecodeGuard()],
        maximum_concurrent_rpcs=config.grpc.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # Long unary generations send no DATA frames for minutes: tolerate client pings.
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # Off for one process (a second server must not silently share the port);
            # on when several worker processes serve the same port.
            ("grpc.so_reuseport", 1 if config.grpc.workers > 1 else 0),
        ],
    )
    provider_service_pb2_grpc.add_ProviderServiceServicer_to_server(ProviderServicer(runtime), server)
    llm_service_pb2_grpc.add_LLMServiceServicer_to_server(LLMServicer(runtime), server)
    text_embedding_service_pb2_grpc.add_TextEmbeddingServiceServicer_to_server(TextEmbeddingServicer(runtime), server)
    rerank_service_pb2_grpc.add_RerankServiceServicer_to_server(RerankServicer(runtime), server)
    speech2text_service_pb2_grpc.add_Speech2TextServiceServicer_to_server(Speech2TextServicer(runtime), server)
    tts_service_pb2_grpc.add_TTSServiceServicer_to_server(TTSServicer(runtime), server)
    moderation_service_pb2_grpc.add_ModerationServiceServicer_to_server(ModerationServicer(runtime), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # Importing the google.rpc modules puts their descriptors in the pool, so grpcurl can
    # decode ErrorInfo/RetryInfo/BadRequest details through reflection.
    from google.rpc import error_details_pb2, status_pb2  # noqa: F401

    reflection.enable_server_reflection(
        [*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port(f"{config.grpc.host}:{config.grpc.port}")
    await server.start()
    for name in ["", *SERVICE_NAMES]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC listening on %s:%d", config.grpc.host, port)
    return RunningServer(server, health_servicer, runtime, port, config.grpc.grace_seconds,
                         config.grpc.drain_seconds)


async def serve(config: Config) -> None:
    # Handlers first: a SIGTERM that arrives while the servers start must still stop cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start_server(config)
    http_server = await start_http(config, running.runtime) if config.http.enabled else None
    await stop.wait()
    log.info("shutting down")
    if http_server is not None:
        await http_server.stop()
    await running.stop()
