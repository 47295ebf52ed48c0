"""Results: the target table (target, measured, direct-upstream baseline, ratio, pass/miss),
JSON (timestamped + latest.json) and a markdown summary (latest.md) with the machine it ran on.
Targets are reported, never asserted: a miss does not fail the run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path

from .scenarios import NOISY_PCT
from .sut import python_info


def machine_info(python: str) -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_kb = int(m.group(1)) if m else 0
    except OSError:
        pass
    os_name = ""
    try:
        m = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text())
        os_name = m.group(1) if m else ""
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(), "cpu_model": cpu_model, "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "os": os_name, **python_info(python),
        "nginx": _version(["nginx", "-v"], r"nginx/([\w.]+)"),
        "h2load": _version(["h2load", "--version"], r"nghttp2/([\w.]+)"),
    }


def _version(cmd: list[str], pattern: str) -> str:
    from .upstream import find_binary

    binary = find_binary(cmd[0])
    if not binary:
        return "missing"
    try:
        out = subprocess.run([binary, *cmd[1:]], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else "?"


def _f(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.{digits}f}"
    else:
        text = f"{value:,}"
    return f"{text}{unit}"


def _ratio(a, b) -> str:
    if a is None or b in (None, 0):
        return "n/a"
    return f"{a / b:.3g}×"


def _verdict(ok) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _best(points: list[dict]) -> dict | None:
    ok = [p for p in points if p["server"]["rps"]]
    return max(ok, key=lambda p: p["server"]["rps"]) if ok else None


def _ceiling(point: dict, unit: str = "req/s") -> str:
    """Throughput one fully busy core would give at the CPU time per request measured: a figure
    that other processes on a shared machine disturb far less than req/s."""
    ms = point.get("cpu_ms_per_req")
    return f"CPU-time ceiling ≈ {1000 / ms:,.0f} {unit} per busy core ({ms:.3f} ms CPU each)" if ms else ""


def _relay_floor_note(floors: dict, direct_p50: float | None) -> str:
    """"; floors: aio +x ms, sync +y ms added" — bare grpc servers making the same upstream call."""
    parts = [f"{kind} +{_f(f['p50_ms'] - direct_p50, 3)} ms" for kind, f in floors.items()
             if f.get("p50_ms") is not None and direct_p50 is not None]
    return f"; relay floors (bare grpc + one aiohttp call) add {', '.join(parts)}" if parts else ""


def target_rows(s: dict) -> list[dict]:
    """One row per target in the issue; rows for skipped scenarios say so."""
    rows: list[dict] = []

    def row(name, target, measured, direct, ratio, ok, note=""):
        rows.append({"target": name, "goal": target, "measured": measured, "direct": direct, "ratio": ratio,
                     "result": _verdict(ok), "note": note})

    def missing(name, target, key):
        sc = s.get(key)
        why = "not run" if sc is None else f"{sc.get('status')}: {sc.get('reason', '')}".strip(": ")
        row(name, target, why, "n/a", "n/a", None)

    u = s.get("unary")
    if u and u.get("status") == "ok":
        best = _best(u["points"])
        if best:
            sv, dv = best["server"]["rps"], best["direct"]["rps"]
            row("unary throughput", "≥ 3,000 req/s", f"{_f(sv)} req/s (c={best['concurrency']})",
                f"{_f(dv)} req/s", _ratio(sv, dv), sv >= 3000, _ceiling(best["server"]))
        c1 = next((p for p in u["points"] if p["concurrency"] == 1), None)
        if c1:
            sp, dp = c1["server"]["latency_ms"].get("p50"), c1["direct"]["latency_ms"].get("p50")
            added = (sp - dp) if sp is not None and dp is not None else None
            row("unary added latency, median, c=1", "≤ 0.5 ms", _f(added, 3, " ms"), _f(dp, 3, " ms (p50)"),
                _ratio(sp, dp), None if added is None else added <= 0.5,
                f"server p50 {_f(sp, 3)} ms" + _relay_floor_note(u.get("relay_floors_c1") or {}, dp))
    else:
        missing("unary throughput", "≥ 3,000 req/s", "unary")
        missing("unary added latency, median, c=1", "≤ 0.5 ms", "unary")

    st = s.get("stream")
    if st and st.get("status") == "ok":
        best = _best(st["points"])
        if best:
            sv, dv = best["server"]["rps"], best["direct"]["rps"]
            row("streaming throughput", "≥ 1,500 streams/s", f"{_f(sv)} streams/s (c={best['concurrency']})",
                f"{_f(dv)} streams/s", _ratio(sv, dv), sv >= 1500,
                f"{st['pieces']} content chunks/stream, {_f(best['chunks_per_s'])} chunks/s; "
                + _ceiling(best["server"], "streams/s"))
    else:
        missing("streaming throughput", "≥ 1,500 streams/s", "stream")

    m = s.get("metrics")
    if m and m.get("status") == "ok" and m.get("cost_pct") is not None:
        gaps = m["cost_pct_per_round"]
        spread = (max(gaps) - min(gaps)) if gaps else 0.0
        busy = max((r.get("interference", {}).get("foreign_pct", 0) for r in m["rounds"]), default=0)
        # Rounds that disagree by more than the target itself cannot settle it either way.
        settled = spread <= 10 and busy < NOISY_PCT
        row("metrics on vs off, unary throughput" + (" (A/A control)" if m.get("control") else ""), "≤ 5 % apart",
            f"{_f(m['rps_on'])} vs {_f(m['rps_off'])} req/s ({_f(m['cost_pct'], 2, ' %')})", "n/a", "n/a",
            abs(m["cost_pct"]) <= 5 if settled else None,
            f"medians of {len(gaps)} alternating rounds, c={m['concurrency']}; CPU/call "
            f"{_f(m['cpu_ms_on'], 4)} vs {_f(m['cpu_ms_off'], 4)} ms ({_f(m['cpu_cost_pct'], 2, ' %')})"
            + ("" if settled else f"; inconclusive: rounds spread {spread:.0f} points, other processes used up to "
               f"{busy:.0f} % of a core")
            + (f"; in-process: metrics cost {m['hotpath']['metrics_us']} µs CPU/call" if m.get("hotpath") else ""))
    else:
        missing("metrics on vs off, unary throughput", "≤ 5 % apart", "metrics")

    o = s.get("open_streams")
    if o and o.get("status") in ("ok", "partial"):
        row(f"{o['requested']:,} open streams, server RSS", "≤ 250 MB",
            f"{_f(o['rss_peak_mb'])} MB peak ({o['opened']:,} open)",
            f"nginx {_f(o['direct']['nginx_rss_holding_mb'])} MB", _ratio(o["rss_peak_mb"],
                                                                          o["direct"]["nginx_rss_holding_mb"]),
            o["rss_peak_mb"] <= 250 and o["opened"] == o["requested"],
            f"idle {_f(o['rss_idle_mb'])} MB; PSS {_f(o.get('pss_holding_mb'))} MB over "
            f"{o.get('server_processes', 1)} process(es)")
    else:
        missing("1,000 open streams, server RSS", "≤ 250 MB", "open_streams")

    k = s.get("soak")
    if k and k.get("status") == "ok":
        g = k["rss_growth_pct"]
        row("soak RSS growth", "< 5 %", f"{_f(g, 2, ' %')} over {k['calls_done']:,} calls"
            + (" (capped)" if k.get("capped_by_time") else ""),
            f"nginx {_f(k['nginx_rss_growth_pct'], 2, ' %')}", "n/a", None if g is None else g < 5,
            f"{_f(k['rss_start_mb'])} → {_f(k['rss_end_mb'])} MB; second half "
            f"{_f(k.get('rss_growth_second_half_pct'), 2, ' %')}")
    else:
        missing("soak RSS growth", "< 5 %", "soak")

    a = s.get("auth")
    if a and a.get("status") == "ok":
        cost = a.get("cost_pct")
        row(f"unary throughput, auth + limits on vs off (c={a['concurrency']})", "within 10 %",
            f"{_f(a['rps_on'])} req/s on, {_f(a['rps_off'])} off: {_f(cost, 2, ' %')} apart", "n/a", "n/a",
            None if cost is None else cost <= 10,
            f"server CPU per call {_f(a.get('cpu_ms_per_req_on'), 3)} vs {_f(a.get('cpu_ms_per_req_off'), 3)} ms "
            f"(+{_f(a.get('added_cpu_us_per_req'), 1)} µs); rounds {'/'.join(a['order'])}"
            + (f"; instructions per call (callgrind) {a['instructions_per_call']['on']:,} on vs "
               f"{a['instructions_per_call']['off']:,} off, +{_f(a['instructions_added_pct'], 2)} %"
               if "instructions_per_call" in a else "")
            + (f"; counters in Redis: {_f(a['rps_redis'])} req/s, {_f(a.get('cpu_ms_per_req_redis'), 3)} ms CPU/call"
               if "rps_redis" in a else ""))
    else:
        missing("unary throughput, auth + limits on vs off", "within 10 %", "auth")

    c = s.get("cancel")
    if c and c.get("status") in ("ok", "partial"):
        sm, dm = c["cancel_to_upstream_close_ms"], c["direct_close_ms"]
        worst = sm.get("max")
        ok = None if worst is None else worst <= 50 and not c["not_closed_within_5s"]
        row("cancel → upstream closed", "≤ 50 ms (max)",
            f"p50 {_f(sm.get('p50'), 2)} / max {_f(worst, 2)} ms", f"p50 {_f(dm.get('p50'), 2)} ms",
            _ratio(sm.get("p50"), dm.get("p50")), ok, f"{c['samples']} samples")
    else:
        missing("cancel → upstream closed", "≤ 50 ms (max)", "cancel")

    d = s.get("doors")
    if d and d.get("status") == "ok":
        for kind in ("unary", "stream"):
            g, h = d["legs"][f"grpc {kind}"], d["legs"][f"http {kind}"]
            gm, hm, r = g["cpu_ms_per_call"], h["cpu_ms_per_call"], d["grpc_vs_http_cpu"][kind]
            floor = d["legs"][f"aio floor {kind}"]["cpu_ms_per_call"]
            row(f"gRPC vs HTTP door, {kind}, CPU/call", "≤ 1.45× HTTP, ≤ 0.6 ms",
                f"{_f(gm, 3)} ms ({_f(g['calls_per_s'])} calls/s)", f"HTTP {_f(hm, 3)} ms", f"{_f(r, 2)}×",
                None if r is None or gm is None else r <= 1.45 and gm <= 0.6,
                f"c={d['concurrency']}, median of {d['rounds']} interleaved rounds; grpc.aio echo floor {_f(floor, 3)} ms")
    return rows


def point_rows(s: dict) -> list[dict]:
    rows = []
    for key in ("unary", "stream", "embeddings", "http"):
        sc = s.get(key) or {}
        for p in sc.get("points", []):
            sv, dv = p["server"], p["direct"]
            rows.append({
                "scenario": key, "c": p["concurrency"], "rps": sv["rps"], "p50": sv["latency_ms"].get("p50"),
                "p99": sv["latency_ms"].get("p99"), "ok2xx": sv["status_2xx"], "body_ok": sv["body_ok"],
                "cpu_ms": sv["cpu_ms_per_req"], "d_rps": dv["rps"], "d_p50": dv["latency_ms"].get("p50"),
                "d_p99": dv["latency_ms"].get("p99"), "error": sv["error"] or dv["error"],
                "foreign": max(sv.get("interference", {}).get("foreign_pct", 0),
                               dv.get("interference", {}).get("foreign_pct", 0)),
                "steal": max(sv.get("interference", {}).get("steal_pct", 0),
                             dv.get("interference", {}).get("steal_pct", 0)),
            })
    return rows


def console(results: dict) -> str:
    lines = ["", "Targets (reported, not asserted):"]
    hdr = f"{'target':<36} {'goal':<18} {'measured':<34} {'direct upstream':<24} {'ratio':<9} result"
    lines += [hdr, "-" * len(hdr)]
    for r in results["targets"]:
        lines.append(f"{r['target']:<36} {r['goal']:<18} {r['measured']:<34} {r['direct']:<24} "
                     f"{r['ratio']:<9} {r['result']}")
    lines += ["", "Load points (server vs the same request sent directly to nginx):"]
    hdr = (f"{'scenario':<11} {'c':>3} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>10} "
           f"{'direct req/s':>13} {'d p50 ms':>9} {'ratio':>7} {'other cpu':>9}")
    lines += [hdr, "-" * len(hdr)]
    for r in point_rows(results["scenarios"]):
        lines.append(f"{r['scenario']:<11} {r['c']:>3} {_f(r['rps']):>10} {_f(r['p50'], 3):>8} "
                     f"{_f(r['p99'], 3):>8} {_f(r['cpu_ms'], 3):>10} {_f(r['d_rps']):>13} "
                     f"{_f(r['d_p50'], 3):>9} {_ratio(r['rps'], r['d_rps']):>7} {_f(r['foreign'], 0, '%'):>9}"
                     + (f"  ! {r['error']}" if r["error"] else "")
                     + ("" if r["body_ok"] in (None, True) else "  ! DATA too small"))
    for name, sc in results["scenarios"].items():
        if sc.get("status") not in ("ok",):
            lines.append(f"{name}: {sc.get('status')} {sc.get('reason', '')}")
    lines += [f"note: {n}" for n in results.get("notes", [])]
    return "\n".join(lines)


def markdown(results: dict) -> str:
    m, cfg, s = results["machine"], results["settings"], results["scenarios"]
    out = [f"# Model Runtime benchmark — {results['started']}", "",
           (f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, {m['os']}, kernel "
           f"{m['kernel']}; Python {m['python']}, grpcio {m['grpcio']}; nginx {m['nginx']}, h2load {m['h2load']}."),
           "", f"Placement: {results['placement']}", "",
           f"Settings: {cfg['duration']:g} s per load point after {cfg['warmup']:g} s warm-up; "
           f"unary c={list(cfg['unary_levels'])}, streaming c={list(cfg['stream_levels'])} "
           f"({cfg['stream_pieces']} content chunks/stream), embeddings c={list(cfg['embed_levels'])} "
           f"(batch {cfg['embed_batch']}), {cfg['open_streams']:,} open streams, soak {cfg['soak_calls']:,} calls "
           f"at c={cfg['soak_concurrency']}"
           + (f" (cut to fit {cfg['soak_max_s']:.0f} s)" if cfg.get("soak_max_s") else "")
           + f", {cfg['cancel_samples']} cancellations. Total runtime "
           f"{results['elapsed_s']:.0f} s.", "",
           "## Targets (reported, not asserted)", "",
           "| target | goal | measured | direct upstream | ratio | result | note |", "|---|---|---|---|---|---|---|"]
    for r in results["targets"]:
        out.append(f"| {r['target']} | {r['goal']} | {r['measured']} | {r['direct']} | {r['ratio']} | "
                   f"**{r['result']}** | {r['note']} |")
    out += ["", "## Load points", "",
            ("Closed loop, h2load, fixed concurrency. gRPC: up to 4 h2c connections multiplexing the rest; "
            "direct: HTTP/1.1 to nginx, one connection per in-flight request. Latency from h2load's "
            "per-request log. `cpu ms/req`: server CPU time in the measured window per request. `other cpu`: "
            "CPU used by processes that are not part of the benchmark during the point (worst of the two "
            "sides, % of one core); above 10 % the point was disturbed."), "",
            ("| scenario | c | req/s | p50 ms | p99 ms | cpu ms/req | direct req/s | direct p50 ms | direct p99 ms "
            "| ratio | other cpu | check |"), "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in point_rows(s):
        check = r["error"] or ("DATA too small" if r["body_ok"] is False else f"{r['ok2xx']:,} × 2xx, body ok")
        out.append(f"| {r['scenario']} | {r['c']} | {_f(r['rps'])} | {_f(r['p50'], 3)} | {_f(r['p99'], 3)} | "
                   f"{_f(r['cpu_ms'], 3)} | {_f(r['d_rps'])} | {_f(r['d_p50'], 3)} | {_f(r['d_p99'], 3)} | "
                   f"{_ratio(r['rps'], r['d_rps'])} | {_f(r['foreign'], 0, ' %')} | {check} |")
    st = s.get("stream", {})
    if st.get("status") == "ok":
        t, d, g = st["ttft_ms"], st["direct_ttft_ms"], st["inter_chunk_gap_ms"]
        out += ["", "## Streaming timings (grpc.aio client, sequential, c=1)", "",
                (f"- time to first chunk: p50 {_f(t.get('p50'), 3)} ms, p99 {_f(t.get('p99'), 3)} ms "
                f"(direct to nginx: p50 {_f(d.get('p50'), 3)} ms, p99 {_f(d.get('p99'), 3)} ms; ratio "
                f"{_ratio(t.get('p50'), d.get('p50'))}) over {t.get('n', 0)} streams"),
                (f"- whole stream: p50 {_f(st['stream_total_ms'].get('p50'), 3)} ms (direct "
                f"{_f(st['direct_stream_total_ms'].get('p50'), 3)} ms)"),
                f"- gap between chunks: p50 {_f(g.get('p50'), 3)} ms, p99 {_f(g.get('p99'), 3)} ms; "
                f"{_f(st['per_stream_chunks_per_s'])} chunks/s within one stream; "
                + ", ".join(f"c={p['concurrency']}: {_f(p['chunks_per_s'])} chunks/s aggregate"
                            for p in st["points"])]
    o = s.get("open_streams", {})
    if o.get("status") in ("ok", "partial"):
        out += ["", "## Open streams", "",
                (f"{o['opened']:,} of {o['requested']:,} streams opened in {o['open_seconds']} s over "
                f"{o['server_channels']} connections (errors: {o['errors'] or 'none'}). Server RSS idle "
                f"{o['rss_idle_mb']} MB, holding {o['rss_holding_mb']} MB, peak {o['rss_peak_mb']} MB, after "
                f"release {o['rss_after_release_mb']} MB ({o['rss_per_stream_kb']} KB/stream). Direct: nginx "
                f"held {o['direct']['opened']:,} streams at {o['direct']['nginx_rss_holding_mb']} MB "
                f"(idle {o['direct']['nginx_rss_idle_mb']} MB).")]
    k = s.get("soak", {})
    if k.get("status") == "ok":
        out += ["", "## Soak", "",
                f"**{k['calls_done']:,} calls run** ({k['calls_requested']:,} requested"
                + (f", cut to {k['calls_planned']:,} to fit ~{k['soak_max_s']:.0f} s at the warm-up's "
                   f"{_f(k['warmup_rps'])} req/s" if k.get("capped_by_time") else "")
                + f"; {k['calls_2xx']:,} 2xx) after {k['warmup_calls']:,} warm-up calls, at "
                f"{_f(k['server']['rps'])} req/s. RSS "
                f"{k['rss_start_mb']} → {k['rss_end_mb']} MB (peak {k['rss_peak_mb']} MB): "
                f"{k['rss_growth_pct']} % (from mid-soak to the end: {_f(k.get('rss_growth_second_half_pct'), 2, ' %')}). "
                f"Direct: nginx {k['nginx_rss_start_mb']} → {k['nginx_rss_end_mb']} MB "
                f"at {_f(k['direct']['rps'])} req/s."
                + (" The full soak is `BENCH_SOAK_CALLS=500000 make bench`." if k["calls_done"] < 500_000 else "")]
    c = s.get("cancel", {})
    if c.get("status") in ("ok", "partial"):
        sm, dm = c["cancel_to_upstream_close_ms"], c["direct_close_ms"]
        out += ["", "## Cancellation", "",
                (f"Client cancels a StreamGenerate after its first chunk; a close-recording asyncio upstream "
                f"timestamps the upstream connection's close (CLOCK_MONOTONIC). {c['samples']} samples: "
                f"p50 {_f(sm.get('p50'), 2)} ms, p90 {_f(sm.get('p90'), 2)} ms, max {_f(sm.get('max'), 2)} ms; "
                f"not closed within 5 s: {c['not_closed_within_5s']}. Direct (raw client closes its socket): "
                f"p50 {_f(dm.get('p50'), 2)} ms, max {_f(dm.get('max'), 2)} ms.")]
    d = s.get("doors", {})
    if d.get("status") == "ok":
        out += ["", "## Front doors side by side", "",
                (f"Same server process, same nginx upstream, {d['concurrency']} calls in flight, {d['rounds']} rounds "
                 "with the legs interleaved (median shown). Credentials travel with each call on both doors. "
                 "Floors: bare echo servers (bench/floors.py) answering bytes of the real reply's size, pinned "
                 "where the server is."), "",
                "| leg | CPU ms/call | calls/s | p50 ms | samples (CPU ms/call) | other cpu (max) |",
                "|---|---|---|---|---|---|"]
        for name, leg in d["legs"].items():
            out.append(f"| {name} | {_f(leg['cpu_ms_per_call'], 3)} | {_f(leg['calls_per_s'])} | "
                       f"{_f(leg['p50_ms'], 3)} | {', '.join(_f(x, 3) for x in leg['cpu_ms_samples'])} | "
                       f"{_f(leg['foreign_pct_max'], 0, ' %')} |")
        out += ["", (f"gRPC / HTTP CPU per call: unary {_f(d['grpc_vs_http_cpu']['unary'], 2)}×, stream "
                     f"{_f(d['grpc_vs_http_cpu']['stream'], 2)}×.")]
    prof = results.get("profile")
    if prof and prof.get("top_self_pct"):
        out += ["", (f"## Profile ({prof.get('label', 'unary')}, {prof['event_loop_samples']:,} event-loop "
                f"samples; the server ran at {_f(prof.get('rps_while_profiled'))} req/s while sampled)"), "",
                ("Percent of the event-loop thread's samples. Time inside grpc's Cython/C core counts as "
                "self time of asyncio's `Handle._run`. Raw stacks and a flame graph: "
                "`bench/results/profile-unary.{txt,svg}`."), "",
                "| function (inclusive) | % | | function (self) | % |", "|---|---|---|---|---|"]
        inc, own = prof["top_inclusive_pct"][:15], prof["top_self_pct"][:15]
        for i in range(max(len(inc), len(own))):
            a = inc[i] if i < len(inc) else ["", ""]
            b = own[i] if i < len(own) else ["", ""]
            out.append(f"| `{a[0][:90]}` | {a[1]} | | `{b[0][:90]}` | {b[1]} |")
    elif prof:
        out += ["", f"Profile: {prof.get('error')}"]
    skipped = [(n, sc) for n, sc in s.items() if sc.get("status") not in ("ok", "partial")]
    if skipped or results.get("notes"):
        out += ["", "## Notes", ""]
        out += [f"- {n}: {sc.get('status')} — {sc.get('reason', '')}" for n, sc in skipped]
        out += [f"- {note}" for note in results.get("notes", [])]
    return "\n".join(out) + "\n"


def write(results: dict, results_dir: Path) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["started"].replace(":", "").replace("-", "")
    path = results_dir / f"bench-{stamp}.json"
    text = json.dumps(results, indent=2, default=str)
    path.write_text(text)
    (results_dir / "latest.json").write_text(text)
    md = results_dir / "latest.md"
    md.write_text(markdown(results))
    return path, md
