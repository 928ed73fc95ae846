"""The benchmark suite, for real with tiny sizes: every benchmark that runs gets its figures, each
with the floor measured in the same run and ratio = figure / floor; a missing benchmark fails
clearly without stopping the others; the markdown is written from results.json."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.suite import render

# Slow (the benchmark suite): left out of `make test-fast`.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SERVER_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
# The suite flushes this database (bench.api does): not the one the other tests share.
REDIS_URL = os.environ.get("BENCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
RAN = ("ingest", "queue", "crawl-api", "api")
MODULES = {"queue": "bench.reliable_queue"}


def test_tiny_run_writes_every_figure_with_its_floor_and_ratio(tmp_path: Path) -> None:
    results_path, markdown_path = tmp_path / "results.json", tmp_path / "benchmarks.md"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--size", "tiny", "--only", ",".join([*RAN, "accuracy"]),
         "--accuracy-module", "bench.no_such_accuracy", "--server-url", SERVER_URL, "--redis-url", REDIS_URL,
         "--results", str(results_path), "--markdown", str(markdown_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    # The missing accuracy script fails the suite, after the others ran and the files were written.
    assert completed.returncode == 1, completed.stderr[-3000:]
    assert "accuracy: FAILED" in completed.stderr
    for name in RAN:
        assert f"{name}: ok in" in completed.stderr, completed.stderr[-3000:]

    results = json.loads(results_path.read_text())
    machine = results["machine"]
    for key in ("cpu_model", "cores", "ram_gib", "kernel", "python", "mariadb", "redis",
                "load_average_start", "load_average_end"):
        assert machine[key], key
    assert not str(machine["mariadb"]).startswith("unreachable") and not str(machine["redis"]).startswith("unreachable")
    assert results["suite"]["started_at"] and results["suite"]["failed"] == ["accuracy"]
    assert not results["suite"]["ok"]

    entries = {entry["name"]: entry for entry in results["benchmarks"]}
    assert set(entries) == {"ingest", "queue", "crawl-api", "crawl-browser", "api", "accuracy", "dagster-loop"}
    assert entries["crawl-browser"]["status"] == entries["dagster-loop"]["status"] == "skipped"
    accuracy = entries["accuracy"]
    assert accuracy["status"] == "failed" and "does not exist" in accuracy["error"]

    for name in RAN:
        entry = entries[name]
        assert entry["status"] == "ok", (name, entry.get("error"), entry.get("stderr_tail"))
        module = MODULES.get(name, "bench.crawl" if name.startswith("crawl") else f"bench.{name}")
        assert f" -m {module} " in entry["command"] and "--json" in entry["command"]
        assert entry["wall_seconds"] > 0 and len(entry["load_average"]["start"]) == 3
        assert entry["output"], name  # the benchmark's own JSON, kept whole
        assert entry["figures"], name
        for figure in entry["figures"]:
            assert figure["unit"] and figure["floor_name"], figure
            assert isinstance(figure["figure"], int | float) and figure["figure"] > 0, figure
            assert isinstance(figure["floor"], int | float) and figure["floor"] > 0, figure
            assert math.isclose(figure["ratio"], figure["figure"] / figure["floor"], rel_tol=1e-12), figure

    # Figures are the benchmark's own measurements, not recomputed: spot-check one of each.
    ingest = entries["ingest"]
    assert ingest["figures"][0]["figure"] == ingest["output"]["ingest"]["p50_ms"]
    assert ingest["figures"][0]["floor"] == ingest["output"]["floor"]["p50_ms"]
    queue = entries["queue"]["figures"][0]
    run = entries["queue"]["output"]["runs"][0]
    assert (queue["figure"], queue["floor"]) == (run["reliable_per_second"], run["floor_per_second"])

    # The markdown is written from results.json alone: rendering the data again gives the file.
    markdown = markdown_path.read_text()
    assert markdown == render.render_markdown(results)
    for name, entry in entries.items():
        assert f"\n## {name}\n" in markdown
        for figure in entry["figures"]:
            line = render.figure_row(figure, entry["reference"])
            assert line in markdown
            assert render.fmt_ratio(figure["figure"] / figure["floor"]) in line
    assert "**FAILED**: bench.no_such_accuracy does not exist" in markdown
    for key in ("cpu_model", "kernel", "python", "mariadb", "redis"):
        assert str(machine[key]) in markdown
