"""bench.suite --keep-others: one benchmark run again, the others' entries kept from the results
file with the time of the run that measured them (how docs/benchmarks.md gets one benchmark's new
figures without running the whole suite). Quick: the one benchmark run is a missing module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from animehot_dagster_tests.bench.test_suite import REDIS_URL, REPO, SERVER_URL
from bench.suite import cli, render


def test_keep_others_keeps_the_entries_not_run_and_marks_when_they_ran(tmp_path: Path) -> None:
    results_path, markdown_path = tmp_path / "results.json", tmp_path / "benchmarks.md"
    shutil.copy(REPO / "bench" / "results.json", results_path)
    before = json.loads(results_path.read_text())
    earlier = {e["name"]: e for e in before["benchmarks"]}

    code = cli.main(["--only", "accuracy", "--accuracy-module", "bench.no_such_accuracy", "--keep-others",
                       "--server-url", SERVER_URL, "--redis-url", REDIS_URL,
                       "--results", str(results_path), "--markdown", str(markdown_path)])
    assert code == 1  # the one benchmark run failed (no script)

    after = json.loads(results_path.read_text())
    entries = {e["name"]: e for e in after["benchmarks"]}
    assert entries["accuracy"]["status"] == "failed"
    assert entries["accuracy"]["measured_at"] == after["suite"]["started_at"]
    kept = [name for name, e in earlier.items() if name != "accuracy" and e["status"] != "skipped"]
    assert kept and after["suite"]["kept"] == kept
    for name in kept:
        assert entries[name]["figures"] == earlier[name]["figures"], name
        assert entries[name]["measured_at"] == earlier[name].get("measured_at", before["suite"]["started_at"])
    markdown = markdown_path.read_text()
    assert markdown == render.render_markdown(after)
    assert f"; measured {entries[kept[0]]['measured_at']} UTC" in markdown
    assert "is this run's machine): " + ", ".join(kept) in markdown

    # Without the flag, what was not run is recorded as skipped, as before.
    cli.main(["--only", "accuracy", "--accuracy-module", "bench.no_such_accuracy", "--server-url", SERVER_URL,
                "--redis-url", REDIS_URL, "--results", str(results_path), "--markdown", str(markdown_path)])
    again = {e["name"]: e["status"] for e in json.loads(results_path.read_text())["benchmarks"]}
    assert {name: status for name, status in again.items() if name != "accuracy"} == dict.fromkeys(kept, "skipped")
