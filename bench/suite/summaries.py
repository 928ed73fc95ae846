"""The suite's figures: what each benchmark's JSON output becomes, each figure with the floor
(or, for accuracy, the truth) it is compared with and the ratio figure / floor."""

from __future__ import annotations

import dataclasses
import json


def ratio(figure: float | None, floor: float | None) -> float | None:
    if figure is None or floor is None or floor == 0:
        return None
    return figure / floor


def row(name: str, figure, unit: str, floor=None, floor_name: str = "", better: str = "lower",
        goal: float | None = None, note: str = "") -> dict:
    """One figure against its floor. ``ratio`` is always figure / floor; ``better`` says which
    way is good (for a rate, a ratio under 1 means slower than the floor). ``goal`` is the
    largest (better=lower) or smallest (better=higher) acceptable ratio."""
    value = {"name": name, "figure": figure, "unit": unit, "floor": floor, "floor_name": floor_name,
             "ratio": ratio(figure, floor), "better": better}
    if goal is not None:
        value["goal_ratio"] = goal
        r = value["ratio"]
        value["within_goal"] = None if r is None else (r <= goal if better == "lower" else r >= goal)
    if note:
        value["note"] = note
    return value


def context(name: str, figure, unit: str = "", note: str = "") -> dict:
    """A figure reported beside the others, with no floor of its own."""
    value = {"name": name, "figure": figure, "unit": unit}
    if note:
        value["note"] = note
    return value


@dataclasses.dataclass
class Summary:
    figures: list[dict]
    context: list[dict] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def _ok(entries: dict, name: str) -> dict | None:
    entry = entries.get(name)
    return entry["output"] if entry and entry["status"] == "ok" else None


def summarize_ingest(out: dict, entries: dict) -> Summary:
    i, f, w = out["ingest"], out["floor"], out["workload"]
    floor_name = "floor: SELECT 1,200 keys + one 1,200-row upsert"
    return Summary(
        figures=[
            row("ingest.apply per result, p50", i["p50_ms"], "ms", f["p50_ms"], f"{floor_name}, p50",
                goal=out.get("goal_ratio", 3.0)),
            row("ingest.apply per result, p95", i["p95_ms"], "ms", f["p95_ms"], f"{floor_name}, p95"),
            row("items applied per second", i["items_per_s"], "items/s", f["items_per_s"], floor_name, better="higher"),
        ],
        context=[
            context("first (baseline) crawl of an IP, mean", w["baseline_ms_mean"], "ms"),
            context("workload", f"{w['results']} results × {w['items_per_result']} items over {w['ips']} IPs, "
                                f"mean inflow {w['mean_inflow']:.0f} / outflow {w['mean_outflow']:.0f} per result"),
            context("database", f"{out['machine']['database']} {out['machine']['server_version']}"),
        ],
    )


def summarize_queue(out: dict, entries: dict) -> Summary:
    figures = [
        row(f"enqueue + take + ack, {r['consumers']} consumer{'s' if r['consumers'] != 1 else ''}",
            r["reliable_per_second"], "round trips/s", r["floor_per_second"], "floor: plain LPUSH / RPOP",
            better="higher")
        for r in out["runs"]
    ]
    return Summary(figures, [context("tasks per measurement", out["tasks"])])


def summarize_crawl(out: dict, entries: dict) -> Summary:
    (r,) = out["results"]
    figures = [row(f"{r['pages']}-page crawl, wall", r["wall_seconds"], "s", r["floor_seconds"],
                   f"floor: pages / APP_RATE_LIMIT ({out['rate']:g}/s)")]
    ctx = [context("items crawled", r["items"]), context("items per second", r["items_per_second"], "items/s")]
    api = _ok(entries, "crawl-api")
    if r["mode"] == "browser":
        api_result = api["results"][0] if api else None
        floor_name = "api mode, same run" if api_result else "api mode (did not run)"
        figures.append(row("CPU per page (node's process tree)", r["cpu_seconds_per_page"], "CPU s",
                           api_result and api_result["cpu_seconds_per_page"], floor_name))
        figures.append(row("peak PSS of the node's process tree", r["peak_pss_mb"], "MB",
                           api_result and api_result["peak_pss_mb"], floor_name))
        ctx.append(context("peak RSS (summed over the tree)", r["peak_rss_mb"], "MB"))
    else:
        ctx += [context("CPU per page (node's process tree)", r["cpu_seconds_per_page"], "CPU s"),
                context("peak PSS of the node's process tree", r["peak_pss_mb"], "MB"),
                context("peak RSS (summed over the tree)", r["peak_rss_mb"], "MB")]
    return Summary(figures, ctx)


def summarize_api(out: dict, entries: dict) -> Summary:
    """Req/s and latency from wrk; each route against the bare route of the same server, same run."""
    redis_floor = "floor: bare ASGI route, same Redis GET"
    bare_floor = "floor: bare ASGI route, same bytes"
    figures = []
    for what, label, floor in (("leaderboard", "leaderboard (hot, 3 h), cached", redis_floor),
                               ("liquidity", "IP liquidity, cached", redis_floor),
                               ("health", "/health", bare_floor)):
        cached = out[what if what == "health" else f"{what}_cached"]
        base = out[f"{what}_floor"]
        figures += [
            row(f"{label}, throughput", cached["rps"], "req/s", base["rps"], floor, better="higher"),
            row(f"{label}, p50", cached["p50_ms"], "ms", base["p50_ms"], f"{floor}, p50",
                goal=1.5 if what != "health" else None),
            row(f"{label}, p99", cached["p99_ms"], "ms", base["p99_ms"], f"{floor}, p99"),
        ]
    for hours in (23, 1):
        key = f"leaderboard_uncached_{hours}h"
        if key in out:
            figures.append(row(f"leaderboard ({hours} h, limit 100), cache miss, p50 (one at a time)",
                               out[key]["p50_ms"], "ms", out["leaderboard_floor"]["p50_ms"],
                               f"{redis_floor}, p50 under load"))
    generator = out.get("generator", "wrk")
    ctx = [
        context("load", f"{generator}: {out['concurrency']} connections on {out.get('threads', 1)} thread(s), "
                        f"{out.get('duration_seconds')} s per measurement; {out['ips']} IPs, "
                        f"{out['hourly_rows']:,} hourly rows; one uvicorn process"),
    ]
    for key, label in (("leaderboard_cached", "cached leaderboard"), ("health", "/health"),
                       ("health_floor", "bare route")):
        if key in out and "server_cpu_cores" in out[key]:
            ctx.append(context(f"CPU during {label}: server / wrk",
                               f"{out[key]['server_cpu_cores']} / {out[key]['wrk_cpu_cores']}", "cores"))
    notes = [("Load from wrk, a C event loop (one thread): it sends far more than the API answers, so the "
             "figures are the server's (one uvicorn process); the CPU lines above show the server's share of a "
             "core and wrk's during a measurement. The bare routes are the ceiling of uvicorn's HTTP layer on "
             "this machine; the ratio is what FastAPI, the middleware and the route add. The project's earlier "
             "Python load generator topped out near 200 req/s (issue 17).")]
    return Summary(figures, ctx, notes)


_ACCURACY_FIGURES = {  # overall key → (label, unit, truth's value)
    "{flow}_24h_rel_error": ("{flow}: relative error of the 24 h total, all IPs", "fraction", 0.0),
    "{flow}_24h_abs_rel_error_median": ("{flow}: |relative error| of the 24 h total, median over IPs", "fraction", 0.0),
    "{flow}_hourly_mae": ("{flow}: hourly mean absolute error, mean over IPs", "items/h", 0.0),
    "{flow}_hourly_nmae_median": ("{flow}: hourly MAE / mean hourly truth, median over IPs", "", 0.0),
    "{flow}_hourly_correlation_median": ("{flow}: hourly correlation with the truth, median over IPs", "", 1.0),
    "{flow}_first_day_rel_error": ("{flow}: relative error on day 1 (holds the baseline crawl)", "fraction", 0.0),
}
_ACCURACY_CONTEXT = {
    "saturation_rate": ("crawls whose page window was full of items new since the last crawl (a lower bound)", "fraction"),
    "saturation_rate_on_sale": ("… of them on the on-sale pages", "fraction"),
    "saturation_rate_sold": ("… of them on the sold pages", "fraction"),
    "crawls": ("crawls", ""),
    "pages": ("pages crawled", ""),
    "ips": ("IPs", ""),
    "wall_seconds": ("harness wall time", "s"),
}


def summarize_accuracy(out: dict, entries: dict) -> Summary:
    """Accuracy has no timing floor: its reference is the simulator's ground truth, in the same
    run. Totals are compared with the true totals (ratio measured / truth); an error's truth is
    0 (no ratio) and a correlation's is 1."""
    overall, ips = out["overall"], out.get("ips") or []
    days = str(out.get("steady_days", ""))
    first, _, last = days.partition("-")
    days = f"day {first}" if not last or first == last else f"days {days}"
    figures, ctx, seen = [], [], set()
    for flow in ("inflow", "outflow"):
        if ips and all(isinstance(ip.get(flow), dict) and "truth_total" in ip[flow] for ip in ips):
            figures.append(row(f"{flow}: total over {days}, all IPs", sum(ip[flow]["measured_total"] for ip in ips),
                               "items", sum(ip[flow]["truth_total"] for ip in ips), "truth", better="exact"))
        for pattern, (label, unit, truth) in _ACCURACY_FIGURES.items():
            key = pattern.format(flow=flow)
            if key in overall:
                seen.add(key)
                figures.append(row(label.format(flow=flow), overall[key], unit, truth,
                                   "truth: exact" if truth == 0 else "truth: perfect", better="exact"))
    for key, value in overall.items():
        if key in seen:
            continue
        label, unit = _ACCURACY_CONTEXT.get(key, (key, ""))
        if not isinstance(value, int | float | str | None):
            value = json.dumps(value, ensure_ascii=False)
        ctx.append(context(label, value, unit))
    if not figures:
        raise ValueError(f"no known figure in the accuracy output's 'overall': {sorted(overall)}")
    notes = [(f"Scenario `{out.get('scenario')}` in {out.get('mode')} mode over {out.get('days')} day(s); the "
             f"figures are over {days} (day 1 holds the baseline crawl). The reference is the simulator's "
             "ground truth, not a timing floor: a total is compared with the true total (measured / truth, 1× "
             "is exact), an error with 0 and a correlation with 1.")]
    return Summary(figures, ctx, notes)


def summarize_dagster_loop(out: dict, entries: dict) -> Summary:
    ingest = _ok(entries, "ingest")
    baseline_s = ingest["workload"]["baseline_ms_mean"] / 1000 if ingest else None
    floor_name = ("ingest.apply of a 1,200-item first crawl, direct (ingest bench, same run)" if ingest
                  else "ingest.apply direct (unavailable: the ingest benchmark did not run)")
    latency = out["latency_seconds_all_sizes"]
    throughput = out["throughput"]
    figures = [
        row("pushed → materialized latency, p50", latency["p50"], "s", baseline_s, floor_name),
        row("pushed → materialized latency, p95", latency["p95"], "s", baseline_s, floor_name),
    ]
    ctx = []
    for size in out.get("sizes", []):
        for sensor, ticks in size.get("sensor_ticks", {}).items():
            ctx.append(context(f"{size['ips']} IPs: {sensor} tick, p50", ticks["duration_seconds"]["p50"], "s",
                               f"{ticks['failed']} failed" if ticks.get("failed") else ""))
        graphql = size.get("graphql_asset_page") or {}
        rest = graphql.get("rest") or {}
        ctx.append(context(f"{size['ips']} IPs: asset page GraphQL query, first / then p50",
                           f"{graphql.get('first_seconds')} / {rest.get('p50')}", "s"))
        ctx.append(context(f"{size['ips']} IPs: ip partitions registered after", size.get("registration_seconds"), "s"))
    step_seconds = float((out.get("settings") or {}).get("step") or 0)
    for step in throughput["steps"]:
        ctx.append(context(f"step {step['rate_per_minute']:g}/min: materialized per minute",
                           step["throughput_per_minute"], "results/min",
                           f"{step['pushed']} pushed in {step_seconds:g} s, backlog {step['backlog_start']}→{step['backlog_end']}"))
    drain = out.get("drain") or {}
    if drain:
        ctx.append(context("drain at the end", f"{drain.get('drained')} of {drain.get('backlog')} in {drain.get('seconds')} s",
                           note=f"{drain['per_minute']}/min" if drain.get("per_minute") else ""))
    results = out.get("all_results", {})
    ctx.append(context("results materialized / pushed", f"{results.get('materialized')} / {results.get('pushed')}"))
    notes = [("The latency is mostly waiting: for a tick of crawl_results_sensor (every 10 s at least), for the "
             "run to be launched and its process to start. The throughput figures of this short run are "
             "indicative only (one short step); `python -m bench.dagster_loop` alone measures throughput at 1,000 IPs.")]
    if out.get("failed_sensor_ticks"):
        notes.append(f"FAILED sensor ticks: {out['failed_sensor_ticks']} (first error: {out.get('first_sensor_error')})")
    return Summary(figures, ctx, notes)
