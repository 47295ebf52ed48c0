"""The ``auth`` scenario: unary Generate with caller keys, limits, budget and the ledger on vs off.

Why its own rounds and not two separate runs: the machine is shared and noisy, so "on" and "off"
are measured in the same run, interleaved off/on/on/off/off/on (drift hits both sides alike), and
each point also reports the server's CPU time per call (less sensitive to other processes than
throughput). "On" is what a shared gateway runs: ``auth.enabled``, a key with a requests- and a
tokens-per-minute limit and a monthly budget (so every call is admitted against counters and
charged), the usage ledger writing to SQLite. When Redis is reachable on 127.0.0.1:6379 two more
rounds put the counters there (one Redis round trip per call), reported beside the target.
"""

from __future__ import annotations

import json
import os
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


async def scenario_auth(b: Bench) -> dict:
    """Unary Generate with auth, limits, budget and ledger on vs off, same run, rounds interleaved."""
    c = max(b.settings.unary_levels)
    data_dir = Path(tempfile.mkdtemp(prefix="modelruntime-bench-auth-"))
    secret = _create_key(b.server.python, data_dir)
    order = list(ORDER) + (["redis", "redis"] if _redis_reachable() else [])
    rounds = []
    try:
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
        b.server.extra = {}
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
    if "redis" in order:
        out["rps_redis"] = round(mean("redis", "rps") or 0, 1)
        out["cpu_ms_per_req_redis"] = mean("redis", "cpu_ms_per_req")
    print(f"  auth on {out['rps_on']} req/s, off {out['rps_off']} req/s: {cost} % apart (target ≤ 10 %); "
          f"CPU per call {cpu_on} vs {cpu_off} ms (+{added_us} µs)"
          + (f"; Redis counters {out['rps_redis']} req/s" if "redis" in order else ""), flush=True)
    return out
