"""The bench's results as a picture (bench/results/latest.png, shown in the README).

Why a chart: operators would rather look than read the tables. Drawn only by ``make bench``
(never by the tests), with matplotlib, a bench-only dependency (``pip install -e '.[bench]'``,
which the Makefile's bench target does). Panels: throughput of the server against the same request
sent straight to the upstream per scenario and concurrency, and unary throughput with metrics
on (the default) against off, from the ``metrics`` scenario.
"""

from __future__ import annotations

from pathlib import Path


def _pairs(results: dict) -> list[tuple[str, float, float]]:
    out = []
    for name, scenario in results.get("scenarios", {}).items():
        for point in scenario.get("points", []):
            server, direct = point.get("server") or {}, point.get("direct") or {}
            if server.get("rps") and direct.get("rps"):
                out.append((f"{name} c={point.get('concurrency', '?')}", server["rps"], direct["rps"]))
    return out


def _server_points(results: dict) -> list[dict]:
    out = []
    for scenario in results.get("scenarios", {}).values():
        out += [p["server"] for p in scenario.get("points", []) if isinstance(p.get("server"), dict)]
        rounds = scenario.get("rounds")
        if isinstance(rounds, list):  # the doors scenario reports a count of rounds, not the rounds
            out += [r for r in rounds if isinstance(r, dict)]
    return out


def _metrics_panel(ax, metrics: dict) -> None:
    """Throughput per round, on beside off, with server CPU per call on a second axis."""
    rounds = metrics["rounds"]
    names = {True: "A (off)", False: "B (off)"} if metrics.get("control") else {True: "on", False: "off"}
    numbers = sorted({r.get("round", i // 2 + 1) for i, r in enumerate(rounds)})
    for on, shift, color in ((True, -0.2, "tab:blue"), (False, 0.2, "tab:gray")):
        side = {r.get("round", i // 2 + 1): r for i, r in enumerate(rounds) if r["metrics"] is on}
        xs = [n + shift for n in numbers if n in side]
        ax.bar(xs, [side[n]["rps"] for n in numbers if n in side], 0.4, color=color,
               label=f"metrics {names[on]}")
    ax.set_xticks(numbers, [f"round {n}" for n in numbers])
    ax.set_ylabel("requests / s")
    ax.legend(loc="lower left")
    cpu = ax.twinx()
    for on, marker in ((True, "o"), (False, "s")):
        pts = [(r.get("round", i // 2 + 1), r.get("cpu_ms_per_req")) for i, r in enumerate(rounds)
               if r["metrics"] is on and r.get("cpu_ms_per_req")]
        cpu.plot([p[0] for p in pts], [p[1] for p in pts], marker, color="black", fillstyle="none",
                 label=f"CPU ms/call {names[on]}")
    cpu.set_ylabel("server CPU ms / call")
    cpu.set_ylim(bottom=0)
    cpu.legend(loc="lower right")
    what = "A/A control, metrics off on both" if metrics.get("control") else "metrics on vs off"
    hot = metrics.get("hotpath") or {}
    extra = f"\nin-process: metrics cost {hot['metrics_us']} µs CPU per call" if hot.get("metrics_us") else ""
    ax.set_title(f"Unary c={metrics.get('concurrency')}, {what}: median {metrics.get('cost_pct')} % "
                 f"throughput, {metrics.get('cpu_cost_pct')} % CPU/call{extra}")


def draw(results: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[bench] no chart: matplotlib is missing (pip install -e '.[bench]')")
        return None
    pairs = _pairs(results)
    metrics = results.get("scenarios", {}).get("metrics", {})
    panels = [p for p in (pairs, metrics.get("rounds")) if p]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    ax_list = list(axes[0])
    if pairs:
        ax = ax_list.pop(0)
        xs = range(len(pairs))
        ax.bar([x - 0.2 for x in xs], [p[1] for p in pairs], 0.4, label="model runtime")
        ax.bar([x + 0.2 for x in xs], [p[2] for p in pairs], 0.4, label="upstream direct")
        ax.set_xticks(list(xs), [p[0] for p in pairs], rotation=30, ha="right")
        ax.set_yscale("log")  # the upstream alone answers one to two orders of magnitude faster
        ax.set_ylabel("requests / s (log scale)")
        ax.set_title("Throughput")
        ax.legend()
    if metrics.get("rounds"):
        _metrics_panel(ax_list.pop(0), metrics)
    busy = max((p.get("interference", {}).get("foreign_pct", 0) for p in _server_points(results)), default=0)
    note = f" — machine busy: other processes used up to {busy:.0f} % of a core" if busy >= 10 else ""
    fig.suptitle(f"make bench, {results.get('started', '')}{note}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
