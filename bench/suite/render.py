"""docs/benchmarks.md, written from results.json alone (so the two cannot disagree)."""

from __future__ import annotations

import math

INTRO = """\
# Benchmarks

Written by `bench.suite` from `bench/results.json` (do not edit by hand: run the suite, or
`.venv/bin/python -m bench.suite --render bench/results.json` to rewrite this page from the data).

Every figure is compared with a **floor** measured in the same run, on the same machine and
services: the cheapest way to do the same work (a bare upsert, plain LPUSH/RPOP, the rate limit,
a bare Redis-backed route, applying a crawl without Dagster). The **ratio** is always
figure / floor: for times (lower is better) a ratio of 2× means twice the floor's time; for rates
(higher is better) a ratio under 1× means that fraction of the floor's rate. The accuracy
benchmark has no timing floor: its reference is the simulator's ground truth. Timings depend on
the machine and on its load, recorded below and for each benchmark.
"""


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
    elif unit == "fraction":
        return f"{value * 100:.2f} %"
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1 or value == 0:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip() if unit and unit != "fraction" else text


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}×" if abs(value) < 10 else f"{value:.1f}×" if abs(value) < 100 else f"{value:,.0f}×"


def fmt_goal(figure: dict) -> str:
    if "goal_ratio" not in figure:
        return ""
    sign = "≤" if figure["better"] == "lower" else "≥"
    verdict = {True: "met", False: "**missed**", None: "—"}[figure.get("within_goal")]
    return f"{sign} {figure['goal_ratio']:g}×: {verdict}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def figure_row(figure: dict, reference: str) -> str:
    better = "lower" if figure["better"] == "lower" else "higher"
    name = figure["name"] + (f" ({figure['note']})" if figure.get("note") else "")
    cells = [name, fmt(figure["figure"], figure["unit"]), figure["floor_name"], fmt(figure["floor"], figure["unit"]),
             fmt_ratio(figure["ratio"])]
    if reference == "floor":
        cells += [better, fmt_goal(figure)]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render_markdown(results: dict) -> str:
    m, suite = results["machine"], results["suite"]
    lines = [INTRO]
    lines += ["## The run", "",
              f"- {suite['started_at']} UTC, {suite['wall_seconds']:.0f} s in all, size `{suite['size']}`; "
              f"result: {'all benchmarks ran' if suite['ok'] else 'FAILED: ' + ', '.join(suite['failed'])}"
              + (f"; skipped: {', '.join(suite['skipped'])}" if suite.get("skipped") else "")
              + (f"; kept from earlier runs (each marked with when and on which CPU it ran; the table below "
                 f"is this run's machine): {', '.join(suite['kept'])}" if suite.get("kept") else ""),
              f"- command: `{suite['command']}`",
              "",
              "| machine | |", "|---|---|",
              f"| CPU | {_cell(m['cpu_model'])}, {m['cores']} cores ({m['usable_cores']} usable) |",
              f"| RAM | {m['ram_gib']} GiB |",
              f"| kernel, OS | {_cell(m['kernel'])}, {_cell(m['os'])} |",
              f"| Python | {m['python']} |",
              f"| MariaDB | {_cell(m['mariadb'])} |",
              f"| Redis | {_cell(m['redis'])} |"]
    if m.get("dagster"):
        lines.append(f"| Dagster | {m['dagster']} |")
    lines += [f"| load average (1, 5, 15 min) | {m['load_average_start']} at start, {m['load_average_end']} at end |", ""]
    lines += ["| benchmark | status | wall | load at start → end |", "|---|---|---|---|"]
    for entry in results["benchmarks"]:
        load = entry.get("load_average") or {}
        status = {"ok": "ok", "skipped": "skipped", "failed": "**FAILED**"}[entry["status"]]
        lines.append(f"| [{entry['name']}](#{entry['name']}) | {status} | {fmt(entry.get('wall_seconds'), 's')} | "
                     f"{(load.get('start') or ['—'])[0]} → {(load.get('end') or ['—'])[0]} |")
    lines.append("")
    for entry in results["benchmarks"]:
        lines += [f"## {entry['name']}", "", f"**{entry['title']}.** {entry['about']}", ""]
        if entry["status"] == "skipped":
            lines += [f"Skipped: {entry['error']}.", ""]
            continue
        when = entry.get("measured_at")
        lines += [(f"`{entry['command']}` — wall {fmt(entry['wall_seconds'], 's')}, load average "
                  f"{entry['load_average']['start']} → {entry['load_average']['end']}"
                  + (f"; measured {when} UTC" if when and when != suite["started_at"] else "")
                  + (f" on {entry['measured_on']}" if entry.get("measured_on") and when != suite["started_at"]
                     and entry["measured_on"] != m.get("cpu_model") else "")), ""]
        if entry["status"] == "failed":
            lines += [f"**FAILED**: {_cell(entry['error'])}", ""]
            if entry.get("stderr_tail"):
                lines += ["```", *entry["stderr_tail"][-10:], "```", ""]
            continue
        if entry["reference"] == "truth":
            lines += ["| figure | measured | reference | truth | measured / truth |", "|---|---|---|---|---|"]
        else:
            lines += ["| figure | value | floor | floor value | ratio | better | goal |", "|---|---|---|---|---|---|---|"]
        lines += [figure_row(f, entry["reference"]) for f in entry["figures"]]
        lines.append("")
        if entry.get("context"):
            lines += ["| also measured (no floor) | |", "|---|---|"]
            lines += [f"| {_cell(c['name'])} | {_cell(fmt(c['figure'], c.get('unit', '')))}"
                      f"{_cell(' (' + c['note'] + ')') if c.get('note') else ''} |" for c in entry["context"]]
            lines.append("")
        lines += [note + "\n" for note in entry.get("notes", [])]
    lines += ["## Reproduce", "",
              "```",
              "make bench                                  # every benchmark, default sizes (about 10-15 min)",
              ".venv/bin/python -m bench.suite --only ingest,queue   # some of them (names as the headings above)",
              ".venv/bin/python -m bench.suite --size tiny           # a smoke run in about a minute",
              "```", "",
              ("Each benchmark also runs alone with the command shown under its heading (without `--json` "
              "it prints a table). MariaDB on `--server-url` (default `mysql+pymysql://root@127.0.0.1:3306`, "
              "where scratch databases are created and dropped) and Redis on `--redis-url` (default "
              "`redis://127.0.0.1:6379/12`, a database the suite may flush) must be running: "
              "`scripts/ensure_services.sh` starts the local ones."), ""]
    return "\n".join(lines)
