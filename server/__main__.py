"""``python -m server [--config FILE] [--workers N]``: run the gRPC server (and the HTTP endpoint)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .app import serve
from .config import Config, load_config


def _run(config: Config) -> None:
    try:
        import uvloop  # optional: ~20% more throughput when installed

        uvloop.run(serve(config))
    except ImportError:
        asyncio.run(serve(config))


def _run_workers(config: Config, count: int) -> int:
    """Fork ``count`` servers sharing the ports (SO_REUSEPORT) and relay signals to them.

    Forking happens before any gRPC or event-loop state exists in this process, which is
    what gRPC requires of fork().
    """
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run(config)
            except BaseException:
                logging.getLogger("modelruntime.server").exception("worker failed")
                code = 1
            os._exit(code)
        children.append(pid)

    def relay(signum: int, _frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, relay)
    signal.signal(signal.SIGINT, relay)
    status = 0
    for child in children:
        _, code = os.waitpid(child, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m server", description="Model Runtime server")
    parser.add_argument("--config", default=None, help="YAML config file (default: built-in defaults)")
    parser.add_argument("--workers", type=int, default=None, help="server processes (overrides grpc.workers)")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.workers is not None:
        config.grpc.workers = args.workers
    if config.grpc.workers == 0:
        config.grpc.workers = os.cpu_count() or 1
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    if config.grpc.workers > 1:
        if config.grpc.port == 0 or config.http.port == 0:
            sys.exit("--workers > 1 needs fixed ports (port 0 would give each worker its own)")
        sys.exit(_run_workers(config, config.grpc.workers))
    _run(config)


if __name__ == "__main__":
    main()
