"""``python -m bench``: run the benchmark scenarios and write bench/results/.

Environment: BENCH_DURATION (seconds per load point); BENCH_SOAK_CALLS (run exactly that many
soak calls; without it the soak aims at 500,000 but is cut to what fits in BENCH_SOAK_MAX_SECONDS,
default 600, at the rate its warm-up measured); BENCH_ARGS via make
(``make bench BENCH_ARGS="--quick"`` for a CI-sized run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import chart, report
from .load import H2Load
from .scenarios import NOISY_PCT, SCENARIOS, Bench, Settings
from .sut import PYTHON, ROOT, Server, server_supports_workers
from .upstream import Nginx, ensure_tools

DEFAULT_SOAK = 500_000


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated subset of: {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--duration", type=float, default=float(env.get("BENCH_DURATION", 10)),
                   help="seconds per load point (default 10, env BENCH_DURATION)")
    p.add_argument("--warmup", type=float, default=2.0, help="h2load warm-up seconds per load point (default 2)")
    p.add_argument("--soak-calls", type=int, default=None,
                   help=f"calls in the soak, run in full (env BENCH_SOAK_CALLS). Default: {DEFAULT_SOAK:,}, cut "
                        "to what fits in --soak-max-seconds at the rate measured in the soak's warm-up")
    p.add_argument("--soak-max-seconds", type=float, default=float(env.get("BENCH_SOAK_MAX_SECONDS", 600)),
                   help="time cap for the default soak (default 600, env BENCH_SOAK_MAX_SECONDS)")
    p.add_argument("--soak-concurrency", type=int, default=64)
    p.add_argument("--open-streams", type=int, default=1000, help="streams held open at once (default 1000)")
    p.add_argument("--unary-levels", type=_levels, default=(1, 16, 64), help="default 1,16,64")
    p.add_argument("--stream-levels", type=_levels, default=(16, 64), help="default 16,64")
    p.add_argument("--embed-levels", type=_levels, default=(16,), help="default 16")
    p.add_argument("--http-levels", type=_levels, default=(16,), help="default 16")
    p.add_argument("--stream-chunks", type=int, default=20, help="content chunks per canned stream (default 20)")
    p.add_argument("--embed-batch", type=int, default=8, help="texts per Embed call, ≤ 32 (default 8)")
    p.add_argument("--cancel-samples", type=int, default=30)
    p.add_argument("--doors-concurrency", type=int, default=16,
                   help="in-flight calls of every leg of the doors scenario (default 16)")
    p.add_argument("--doors-rounds", type=int, default=3,
                   help="interleaved rounds of the doors scenario; each leg reports its median (default 3)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (SO_REUSEPORT); used only once the server has --workers")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the server to CPU 0 and nginx/h2load/harness to the other CPUs")
    p.add_argument("--server-log-level", default="INFO",
                   help="the server's log_level (default INFO, as config/default.yaml ships)")
    p.add_argument("--metrics-rounds", type=int, default=6,
                   help="rounds of the metrics scenario, each measuring metrics on and off (default 6)")
    p.add_argument("--metrics-control", action="store_true",
                   help="metrics scenario as an A/A run (metrics off on both servers): the method's noise floor")
    p.add_argument("--profile", action="store_true", help="py-spy the server during unary c=64 (installs py-spy)")
    p.add_argument("--quick", action="store_true",
                   help="CI-sized run: 3 s points, 1 s warm-up, 10,000 soak calls, 10 cancellations")
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    args.soak_cap = None
    if args.soak_calls is None and env.get("BENCH_SOAK_CALLS"):
        args.soak_calls = int(env["BENCH_SOAK_CALLS"])
    if args.soak_calls is None:
        args.soak_calls, args.soak_cap = DEFAULT_SOAK, args.soak_max_seconds
        if args.quick:
            args.soak_calls, args.soak_cap = 10_000, None
    if args.quick:
        args.duration, args.warmup = min(args.duration, 3.0), min(args.warmup, 1.0)
        args.cancel_samples = min(args.cancel_samples, 10)
        args.metrics_rounds = min(args.metrics_rounds, 3)
    return args


def placement(pin: bool, workers: int) -> tuple[set[int] | None, set[int] | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        why = "disabled (--no-pin)" if not pin else f"impossible with {len(cpus)} CPU"
        return None, None, (f"no CPU pinning ({why}): server ({workers} process(es)), nginx, h2load and the "
                            "harness share all CPUs.")
    n = max(1, min(workers, len(cpus) - 1))
    sut, load = set(cpus[:n]), set(cpus[n:])
    procs = f"{workers} server processes (SO_REUSEPORT)" if workers > 1 else "server (1 process)"
    return sut, load, (f"{procs} pinned to CPU {sorted(sut)}; nginx, h2load and the harness's own clients "
                       f"pinned to CPU {sorted(load)} (one core per side, as in gateways.md §2.3). "
                       "Figures are per server core.")


async def run(args: argparse.Namespace) -> dict:
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"bench: unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    ensure_tools({"nginx": "nginx-light", "h2load": "nghttp2-client"})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    notes: list[str] = []
    workers = args.workers
    if workers > 1 and not server_supports_workers(PYTHON):
        notes.append(f"--workers {workers} requested, but `python -m server` has no --workers flag yet: ran 1 process.")
        workers = 1
    sut_cpus, load_cpus, where = placement(not args.no_pin, workers)
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)
    settings = Settings(
        duration=args.duration, warmup=args.warmup, unary_levels=args.unary_levels,
        stream_levels=args.stream_levels, embed_levels=args.embed_levels, http_levels=args.http_levels,
        stream_pieces=args.stream_chunks, embed_batch=min(32, max(1, args.embed_batch)),
        open_streams=args.open_streams, soak_calls=args.soak_calls, soak_max_s=args.soak_cap,
        soak_concurrency=args.soak_concurrency,
        cancel_samples=args.cancel_samples, doors_concurrency=args.doors_concurrency,
        doors_rounds=args.doors_rounds, pin=not args.no_pin, workers=workers, profile=args.profile,
        metrics_rounds=max(1, args.metrics_rounds), metrics_control=args.metrics_control, results_dir=args.results_dir)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.monotonic()
    print(f"[bench] {started}  scenarios: {', '.join(names)}  ({where})", flush=True)
    soak = (f"soak {settings.soak_calls:,} calls, cut to what fits in {settings.soak_max_s:.0f} s"
            if settings.soak_max_s else f"soak {settings.soak_calls:,} calls")
    print(f"[bench] {settings.duration:g} s per load point; {soak}"
          + ("" if settings.soak_calls >= 500_000 and not settings.soak_max_s
             else " (full soak: BENCH_SOAK_CALLS=500000)"), flush=True)

    nginx = Nginx(settings.stream_pieces, settings.embed_batch, cpus=load_cpus).start()
    server = Server(nginx.base, cpus=sut_cpus, workers=workers, log_level=args.server_log_level)
    h2 = H2Load(load_cpus, warmup_s=settings.warmup)
    bench = Bench(settings, nginx, server, h2, sut_cpus, load_cpus, notes)
    results: dict = {"started": started, "scenarios": {}}
    try:
        server.start()
        for name in names:
            print(f"[bench] scenario {name}", flush=True)
            s0 = time.monotonic()
            try:
                outcome = await SCENARIOS[name](bench)
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
                outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                print(f"  FAILED: {outcome['reason']}", flush=True)
                if not server.alive():
                    outcome["server_log_tail"] = server.log_tail()
                    notes.append(f"the server died during '{name}'; restarted for the next scenario")
                    server.stop()
                    server.start()
            if outcome.get("status") == "skipped":
                print(f"  skipped: {outcome['reason']}", flush=True)
            outcome["elapsed_s"] = round(time.monotonic() - s0, 1)
            results["scenarios"][name] = outcome
    finally:
        logged = _count_lines(server.log_path, "")
        if logged > 100:  # startup and shutdown lines are a handful per server start
            notes.append(f"the server wrote {logged:,} log lines during the run (log_level "
                         f"{args.server_log_level}): per-request logging is part of the measured cost.")
        server.cleanup()
        nginx.stop()
        h2.cleanup()

    info = report.machine_info(server.python)
    results.update({
        "elapsed_s": round(time.monotonic() - t0, 1), "machine": info, "placement": where,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()},
        "notes": notes, "profile": bench.profile,
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
    })
    disturbed = sorted({p["label"] for sc in results["scenarios"].values() for p in _points(sc)
                        if p.get("interference", {}).get("foreign_pct", 0) >= NOISY_PCT})
    if disturbed:
        notes.append(f"other processes on this machine used ≥ {NOISY_PCT:.0f} % of a core during "
                     f"{len(disturbed)} load point(s) ({', '.join(disturbed[:6])}"
                     f"{', …' if len(disturbed) > 6 else ''}): those figures understate the server; re-run on "
                     "an idle machine.")
    results["targets"] = report.target_rows(results["scenarios"])
    return results


def _points(scenario: dict) -> list[dict]:
    out = [p[side] for p in scenario.get("points", []) for side in ("server", "direct")]
    out += [scenario[k] for k in ("server", "direct") if isinstance(scenario.get(k), dict)]
    return out


def _count_lines(path: Path | None, needle: str) -> int:
    try:
        with open(path, errors="replace") as fh:  # type: ignore[arg-type]
            return sum(1 for line in fh if needle in line)
    except (OSError, TypeError):
        return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list:
        for name, fn in SCENARIOS.items():
            print(f"{name:<14} {(fn.__doc__ or '').strip().splitlines()[0] if fn.__doc__ else ''}")
        return
    results = asyncio.run(run(args))
    print(report.console(results))
    path, md = report.write(results, args.results_dir)
    png = chart.draw(results, args.results_dir / "latest.png")
    if png is not None:
        print(f"[bench] chart: {png}")
    print(f"\n[bench] wrote {path}, {args.results_dir / 'latest.json'} and {md} "
          f"({results['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
