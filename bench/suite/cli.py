"""The benchmark suite: every benchmark of bench/ in one run, written to bench/results.json and
docs/benchmarks.md.

    .venv/bin/python -m bench.suite [--size default|tiny] [--only NAMES] [--skip NAMES]
        [--server-url URL] [--redis-url URL] [--results PATH] [--markdown PATH]
    .venv/bin/python -m bench.suite --render bench/results.json   # rewrite the doc from the data
    .venv/bin/python -m bench.suite --only api --keep-others      # run one, keep the others' last figures

``make bench`` runs it with the defaults. Each benchmark runs as its own process with ``--json``
(its progress goes to this process's stderr, prefixed with its name); the suite turns the JSON it
prints into figures, each with the floor (or, for accuracy, the truth) it is compared with,
measured in the same run, and the ratio figure / floor. results.json holds every entry (its
command, wall time, load average before and after, figures, and the benchmark's whole output)
and the machine; the markdown is written from results.json alone, so the two cannot disagree.

A benchmark that fails (its module is missing, it exits non-zero, it prints no JSON, it times
out) is recorded as failed with the reason and the end of its stderr; the others still run and
the files are still written; the suite then exits 1. A benchmark left out with --only/--skip is
recorded as skipped; with --keep-others it keeps instead the entry the results file already holds
for it, marked with the time of the run that measured it. The suite may create and drop scratch
databases on --server-url and flush the --redis-url database (default db 12).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.suite.probe import machine
from bench.suite.registry import benchmarks
from bench.suite.render import render_markdown
from bench.suite.runner import REPO, Progress, display_command, load_average, run_bench

DEFAULT_RESULTS = REPO / "bench" / "results.json"
DEFAULT_MARKDOWN = REPO / "docs" / "benchmarks.md"
DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
SIZES = ("default", "tiny")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--size", choices=SIZES, default="default",
                        help="default: the sizes of `make bench`; tiny: a smoke run (figures meaningless)")
    parser.add_argument("--only", help="comma-separated benchmark names to run (the others are recorded as skipped)")
    parser.add_argument("--skip", help="comma-separated benchmark names not to run (recorded as skipped)")
    parser.add_argument("--server-url", default=os.environ.get("TEST_MYSQL_URL", DEFAULT_SERVER_URL),
                        help="MySQL/MariaDB server for scratch databases (default: %(default)s)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="a Redis database the suite may flush "
                                                                       "(default: %(default)s)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results JSON (default: bench/results.json)")
    parser.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN,
                        help="the document (default: docs/benchmarks.md)")
    parser.add_argument("--accuracy-module", default="bench.accuracy", help=argparse.SUPPRESS)
    parser.add_argument("--keep-others", action="store_true",
                        help="benchmarks not run keep their entries from --results (marked with when they ran)")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="only rewrite --markdown from this results file")
    args = parser.parse_args(argv)

    if args.render:
        write(args.markdown, render_markdown(json.loads(args.render.read_text())))
        return 0

    all_benches = benchmarks(args)
    names = [b.name for b in all_benches]
    only = set(args.only.split(",")) if args.only else set(names)
    skip = set(args.skip.split(",")) if args.skip else set()
    unknown = (only | skip) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; the names are {', '.join(names)}")

    progress = Progress()
    started_at = datetime.now(UTC)
    info = machine(args) | {"load_average_start": load_average()}
    progress(f"{info['cpu_model']}, {info['cores']} cores, load {info['load_average_start']}; "
             f"MariaDB {info['mariadb']}, Redis {info['redis']}")
    earlier: dict[str, dict] = {}
    if args.keep_others and args.results.exists():
        kept = json.loads(args.results.read_text())
        for entry in kept.get("benchmarks", []):
            if entry.get("status") != "skipped":
                earlier[entry["name"]] = {**entry, "measured_at": entry.get("measured_at") or kept["suite"]["started_at"],
                                          "measured_on": entry.get("measured_on") or kept["machine"].get("cpu_model")}
    entries: dict[str, dict] = {}
    for bench in all_benches:
        if (bench.name not in only or bench.name in skip) and bench.name in earlier:
            entries[bench.name] = earlier[bench.name]
            continue
        if bench.name not in only or bench.name in skip:
            entries[bench.name] = {"name": bench.name, "title": bench.title, "reference": bench.reference,
                                   "about": bench.about, "status": "skipped",
                                   "error": "not selected (--only/--skip)", "figures": [], "context": []}
            continue
        entries[bench.name] = run_bench(bench, args, entries, progress) | {
            "measured_at": started_at.strftime("%Y-%m-%d %H:%M:%S")}
    info["load_average_end"] = load_average()
    failed = [name for name, e in entries.items() if e["status"] == "failed"]
    results = {
        "suite": {
            "started_at": started_at.strftime("%Y-%m-%d %H:%M:%S"),
            "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "wall_seconds": round(time.monotonic() - progress.started, 1),
            "command": display_command([sys.executable, "-m", "bench.suite", *(sys.argv[1:] if argv is None else argv)]),
            "size": args.size,
            "ok": not failed,
            "failed": failed,
            "skipped": [name for name, e in entries.items() if e["status"] == "skipped"],
            "kept": [name for name, e in entries.items() if name in earlier and e is earlier[name]],
        },
        "machine": info,
        "benchmarks": list(entries.values()),
    }
    write(args.results, json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    write(args.markdown, render_markdown(results))
    progress(f"wrote {args.results} and {args.markdown}")
    if failed:
        progress(f"FAILED: {', '.join(failed)}")
        return 1
    progress("all benchmarks ran")
    return 0
