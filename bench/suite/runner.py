"""Running one benchmark: its own process in its own session, stderr relayed line by line with its
name, stdout parsed as one JSON object, a timeout that stops it with SIGINT first."""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from animehot_dagster.stack.processes import terminate
from bench.suite.registry import Bench

REPO = Path(__file__).resolve().parents[2]
STDERR_TAIL = 25


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        print(f"[suite +{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def display_command(argv: list[str]) -> str:
    words = list(argv)
    with contextlib.suppress(ValueError):
        words[0] = os.path.relpath(words[0], REPO) if words[0].startswith(str(REPO)) else words[0]
    return shlex.join(words)


def parse_output(stdout: str) -> dict:
    text = stdout.strip()
    if not text:
        raise ValueError("it printed nothing on stdout")
    with contextlib.suppress(json.JSONDecodeError):
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    for line in reversed(text.splitlines()):  # one JSON object on the last line, after other output
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    raise ValueError(f"its stdout is not one JSON object: {text[:200]!r}")


def run_process(argv: list[str], name: str, timeout: float, env: dict) -> tuple[int | None, str, list[str]]:
    """Runs ``argv`` in its own session; its stderr goes to ours line by line, prefixed. Returns
    (exit code or None on timeout, stdout, the last lines of stderr)."""
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
    chunks: list[str] = []

    def relay() -> None:
        for line in process.stderr:
            tail.append(line.rstrip("\n"))
            print(f"    {name} | {line.rstrip()}", file=sys.stderr, flush=True)

    def collect() -> None:
        chunks.append(process.stdout.read())

    threads = [threading.Thread(target=relay, daemon=True), threading.Thread(target=collect, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
        # SIGINT first: the benchmarks clean up (databases, child processes) on KeyboardInterrupt.
        terminate(process, 60, first_signal=signal.SIGINT)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
        raise
    for thread in threads:
        thread.join(10)
    return code, "".join(chunks), list(tail)


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def run_bench(bench: Bench, args: argparse.Namespace, entries: dict, progress: Progress) -> dict:
    argv = [sys.executable, "-m", bench.module, *bench.args(args)]
    entry = {"name": bench.name, "title": bench.title, "reference": bench.reference, "about": bench.about,
             "command": display_command(argv), "status": "failed", "error": None, "wall_seconds": None,
             "load_average": {"start": load_average(), "end": None}, "figures": [], "context": [], "notes": [],
             "output": None}
    missing = (f"{bench.module} does not exist: this benchmark is not built yet" if not module_exists(bench.module)
               else bench.precheck())
    if missing:
        entry["error"] = missing
        entry["load_average"]["end"] = load_average()
        progress(f"{bench.name}: FAILED: {entry['error']}")
        return entry
    progress(f"{bench.name}: running {entry['command']}")
    env = os.environ | {"REDIS_URL": args.redis_url, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    code, stdout, tail = run_process(argv, bench.name, bench.timeout, env)
    entry["wall_seconds"] = round(time.monotonic() - started, 2)
    entry["load_average"]["end"] = load_average()
    try:
        if code is None:
            raise RuntimeError(f"timed out after {bench.timeout:.0f} s (stopped)")
        if code:
            last = next((line.strip() for line in reversed(tail) if line.strip()), "")
            raise RuntimeError(f"exited with {code}" + (f": {last}" if last else ""))
        entry["output"] = parse_output(stdout)
        summary = bench.summarize(entry["output"], entries)
        entry.update(figures=summary.figures, context=summary.context, notes=summary.notes, status="ok")
    except Exception as exc:  # noqa: BLE001 - any failure is this entry's, the suite goes on
        entry["error"] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, RuntimeError) else str(exc)
        entry["stderr_tail"] = tail
        progress(f"{bench.name}: FAILED after {entry['wall_seconds']:.1f} s: {entry['error']}")
        return entry
    progress(f"{bench.name}: ok in {entry['wall_seconds']:.1f} s")
    return entry
