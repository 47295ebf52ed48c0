"""``python -m server [--config FILE] [--workers N]``: run the gRPC server (and the HTTP endpoint).

``python -m server keys|credentials|usage ...`` runs an admin command on the store instead
(:mod:`server.auth.cli`), with no server running.

Process-level set-up lives here, before any worker is forked: the config is loaded and checked
(a mistake ends the process with one line, not a traceback), the soft file-descriptor limit is
raised to the hard one (every connection is a descriptor, and the default soft limit of 1024 is
what a connection flood exhausted first), and empty server-side credentials are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import sys

from .app import serve
from .auth import check_exposure, cli
from .auth.cli import COMMANDS
from .config import Config, ConfigError, empty_credentials, load_config

log = logging.getLogger("modelruntime.server")


def batch_scheduling() -> bool:
    """SCHED_BATCH for this thread and every thread it starts from now on (gRPC's included)."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not permitted: keep the default policy
        return False
    return True


async def _serve_and_exit(config: Config) -> None:
    await serve(config)
    # serve() returns once both doors are stopped and the ledger and spans are flushed. Leave
    # without the event loop's teardown, which joins executor threads: a token count still running
    # for a record already dropped would hold the process past the operator's grace budget.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run(config: Config) -> None:
    if config.grpc.sched_batch and not batch_scheduling():
        log.info("SCHED_BATCH is not available here; running with the default scheduling policy")
    try:
        import uvloop  # optional: ~20% more throughput when installed
    except ImportError:
        asyncio.run(_serve_and_exit(config))
    else:  # outside the try: an ImportError raised while serving must not start a second server
        uvloop.run(_serve_and_exit(config))


def _run_workers(config: Config, count: int) -> int:
    """Fork ``count`` servers sharing the ports (SO_REUSEPORT) and relay signals to them.

    Forking happens before any gRPC or event-loop state exists in this process, which is
    what gRPC requires of fork().
    """
    children: list[int] = []
    cpus = worker_cpus(config, count)
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if cpus:  # before any thread exists: gRPC's and the pool's threads inherit it
                    os.sched_setaffinity(0, {cpus[index]})
                _run(config)
            except BaseException:
                log.exception("worker failed")
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


def worker_cpus(config: Config, count: int) -> list[int]:
    """The CPU each worker is pinned to (``grpc.pin_workers``), or [] to leave them to the scheduler.

    Why: a worker's threads (event loop, gRPC's pollers, the call pool) hand every call to one
    another; spread over cores, each hand-off is a cross-core wakeup. Two workers pinned one per
    core served 2,900-3,200 unary calls/s on the 2-core bench machine, unpinned 2,000-2,200.
    Only when there are no more workers than CPUs this process may use (a cpuset or taskset)."""
    if not config.grpc.pin_workers or count < 2:
        return []
    allowed = sorted(os.sched_getaffinity(0))
    if count > len(allowed):
        log.info("grpc.pin_workers: %d workers for %d CPUs; not pinning", count, len(allowed))
        return []
    return allowed[:count]


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE → the hard limit; returns the (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. an unlimited hard limit the kernel caps lower
            pass
    return soft, hard


def main() -> None:
    if len(sys.argv) > 1 and any(a in COMMANDS for a in sys.argv[1:4]):
        sys.exit(cli.main(sys.argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m server", description="Model Runtime server")
    parser.add_argument("--config", default=None, help="YAML config file (default: built-in defaults)")
    parser.add_argument("--workers", type=int, default=None, help="server processes (overrides grpc.workers)")
    args = parser.parse_args()
    try:
        config = load_config(args.config)
        check_exposure(config)
    except ConfigError as exc:
        sys.exit(f"model-runtime: config error: {exc}")
    if args.workers is not None:
        config.grpc.workers = args.workers
    if config.grpc.workers == 0:
        config.grpc.workers = os.cpu_count() or 1
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    soft, _ = raise_fd_limit()
    log.info("file descriptor limit: %d", soft)
    for provider, field in empty_credentials(config):  # names only: never a value
        log.warning("providers.%s.credentials.%s is empty (is its ${...} variable set?): "
                    "HTTP calls to '%s' will fail", provider, field, provider)
    if config.grpc.workers > 1:
        if config.grpc.port == 0 or config.http.port == 0:
            sys.exit("--workers > 1 needs fixed ports (port 0 would give each worker its own)")
        sys.exit(_run_workers(config, config.grpc.workers))
    try:
        _run(config)
    except ConfigError as exc:  # found while building the runtime (a provider the config names)
        sys.exit(f"model-runtime: config error: {exc}")


if __name__ == "__main__":
    main()
