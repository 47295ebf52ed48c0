"""The ``auth`` scenario: unary Generate with caller keys, limits, budget and the ledger on vs off.

Why its own rounds and not two separate runs: the machine is shared and noisy, so "on" and "off"
are measured in the same run, interleaved off/on/on/off/off/on (drift hits both sides alike), and
each point also reports the server's CPU time per call (less sensitive to other processes than
throughput). "On" is what a shared gateway runs: ``auth.enabled``, a key with a requests- and a
tokens-per-minute limit and a monthly budget (so every call is admitted against counters and
charged), the usage ledger writing to SQLite. When Redis is reachable on 127.0.0.1:6379 two more
rounds put the counters there (one Redis round trip per call), reported beside the target.

When valgrind is installed, the server also runs once per mode under callgrind (collection switched
on only after a warm-up) and the instructions it executes per call are counted: a figure other
processes on the machine cannot move, where req/s and even CPU seconds per call move by tens of
per cent on a shared machine.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from . import clients as cl
from .load import GRPC_HEADERS, grpc_frame
from .sut import ROOT

if TYPE_CHECKING:
    from .scenarios import Bench

ORDER = ("off", "on", "on", "off", "off", "on")


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _create_key(python: str, data_dir: Path) -> str:
    """A limited caller key made with the CLI, before the server starts (as an operator would)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNTIME_")}
    env["MODEL_RUNTIME_STORAGE__DATA_DIR"] = str(data_dir)
    run = subprocess.run([python, "-m", "server", "keys", "create", "--name", "bench", "--rpm", "100000000",
                          "--tpm", "2000000000", "--budget-usd", "1000000000", "--budget-period", "month"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"keys create failed: {run.stderr.strip()[-300:]}")
    return json.loads(run.stdout)["secret"]


def _config(mode: str, data_dir: Path) -> dict:
    if mode == "off":
        return {}
    storage: dict = {"data_dir": str(data_dir)}
    if mode == "redis":
        storage["redis_url"] = "redis://127.0.0.1:6379/15"
    return {"auth": {"enabled": True}, "storage": storage}


def _callgrind_total(out: Path) -> int:
    """The instructions counted in callgrind's dump files (the largest total: the measured window)."""
    total = 0
    for path in glob.glob(f"{out}*"):
        with open(path, errors="replace") as fh:
            for line in fh:
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
    return total


async def _instructions_per_call(b: Bench, mode: str, data_dir: Path, secret: str, calls: int = 300) -> float:
    """Instructions the server executes per Generate (callgrind, after 100 warm-up calls)."""
    out = Path(tempfile.mkdtemp(prefix="modelruntime-bench-cg-")) / "cg.out"
    b.server.extra = _config(mode, data_dir)
    b.server.wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    b.server.ready_timeout = 900.0  # the interpreter starts ~50x slower under valgrind
    await b.restart_server()
    meta = None if mode == "off" else (("authorization", f"Bearer {secret}"),)
    async with cl.channel(b.server.target) as channel:
        from modelruntime.v1 import llm_service_pb2_grpc

        stub = llm_service_pb2_grpc.LLMServiceStub(channel)
        request = cl.generate_request(b.nginx.base)
        for _ in range(100):
            await stub.Generate(request, metadata=meta, timeout=120)
        pid = str(b.server.proc.pid)  # valgrind runs the interpreter in its own process
        await asyncio.to_thread(subprocess.run, ["callgrind_control", "-i", "on", pid], capture_output=True)
        limit = asyncio.Semaphore(8)

        async def one() -> None:
            async with limit:
                await stub.Generate(request, metadata=meta, timeout=120)

        await asyncio.gather(*(one() for _ in range(calls)))
        await asyncio.to_thread(subprocess.run, ["callgrind_control", "-d", pid], capture_output=True)
    total = 0
    for _ in range(50):  # the dump is written by the server process: wait for it
        total = _callgrind_total(out)
        if total:
            break
        await asyncio.sleep(0.2)
    b.server.wrapper, b.server.ready_timeout = [], 60.0
    await asyncio.to_thread(b.server.stop)  # before its output folder goes (callgrind dumps at exit)
    shutil.rmtree(out.parent, ignore_errors=True)
    if not total:
        raise RuntimeError("callgrind wrote no instruction count")
    return total / calls


async def scenario_auth(b: Bench) -> dict:
    """Unary Generate with auth, limits, budget and ledger on vs off, same run, rounds interleaved."""
    c = max(b.settings.unary_levels)
    data_dir = Path(tempfile.mkdtemp(prefix="modelruntime-bench-auth-"))
    secret = _create_key(b.server.python, data_dir)
    order = list(ORDER) + (["redis", "redis"] if _redis_reachable() else [])
    rounds = []
    instructions: dict[str, float] = {}
    try:
        if shutil.which("valgrind") and shutil.which("callgrind_control"):
            for mode in ("off", "on"):
                instructions[mode] = await _instructions_per_call(b, mode, data_dir, secret)
        for mode in order:
            b.server.extra = _config(mode, data_dir)
            await b.restart_server()
            meta = () if mode == "off" else (("authorization", f"Bearer {secret}"),)
            verify = await cl.check_generate(b.server.target, b.nginx.base, meta)
            headers = GRPC_HEADERS + ([f"authorization: Bearer {secret}"] if meta else [])
            frame = grpc_frame(cl.generate_request(b.nginx.base))
            point = await b.measure(f"unary grpc c={c} auth {mode}", b.grpc_url(cl.GENERATE), frame, headers, c,
                                    sut=True, expected_bytes=verify["response_frame_bytes"])
            rounds.append({"auth": mode, **point.to_dict()})
    finally:
        b.server.extra, b.server.wrapper, b.server.ready_timeout = {}, [], 60.0
        await b.restart_server()

    def mean(mode: str, key: str) -> float | None:
        values = [r[key] for r in rounds if r["auth"] == mode and r.get(key) is not None]
        return statistics.mean(values) if values else None

    on, off = mean("on", "rps"), mean("off", "rps")
    cpu_on, cpu_off = mean("on", "cpu_ms_per_req"), mean("off", "cpu_ms_per_req")
    cost = round((off - on) / off * 100, 2) if on is not None and off else None
    added_us = round((cpu_on - cpu_off) * 1000, 1) if cpu_on is not None and cpu_off is not None else None
    out = {"status": "ok", "concurrency": c, "order": order, "rounds": rounds,
           "rps_on": round(on or 0, 1), "rps_off": round(off or 0, 1), "cost_pct": cost,
           "cpu_ms_per_req_on": cpu_on, "cpu_ms_per_req_off": cpu_off, "added_cpu_us_per_req": added_us}
    if instructions:
        out["instructions_per_call"] = {k: round(v) for k, v in instructions.items()}
        out["instructions_added_pct"] = round((instructions["on"] - instructions["off"]) / instructions["off"] * 100, 2)
        print(f"  instructions per call (callgrind): on {instructions['on'] / 1e6:.3f} M, off "
              f"{instructions['off'] / 1e6:.3f} M: +{out['instructions_added_pct']} %", flush=True)
    if "redis" in order:
        out["rps_redis"] = round(mean("redis", "rps") or 0, 1)
        out["cpu_ms_per_req_redis"] = mean("redis", "cpu_ms_per_req")
    print(f"  auth on {out['rps_on']} req/s, off {out['rps_off']} req/s: {cost} % apart (target ≤ 10 %); "
          f"CPU per call {cpu_on} vs {cpu_off} ms (+{added_us} µs)"
          + (f"; Redis counters {out['rps_redis']} req/s" if "redis" in order else ""), flush=True)
    return out
