"""The ``simulator`` command: serves a market from its options, refuses bad files up front."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from animehot_dagster.simulator.commands import simulator_command

IPS_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "ips_sample.json"
RUN_COMMAND = "from animehot_dagster.simulator.commands import simulator_command; simulator_command()"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_serves_the_ips_of_a_file_on_a_fast_clock():
    port = free_port()
    start = "2026-01-14T00:00:00+09:00"
    command = [sys.executable, "-c", RUN_COMMAND, "--port", str(port), "--ips", str(IPS_SAMPLE)]
    command += ["--seed", "3", "--time-scale", "60", "--start", start]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/health").json()
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
                time.sleep(0.1)
        assert health["scale"] == 60 and 1_768_316_400 <= health["market_time"] < 1_768_316_400 + 60 * 60
        truth = httpx.get(f"{url}/__truth", params={"keyword": "ちいかわ", "from": start, "to": health["market_time"]})
        assert truth.json()["known"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_bad_scenario_stops_the_command_with_the_reason(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("keywords:\n  k: {listings_per_hour: 5, colour: red}\n", encoding="utf-8")
    result = CliRunner().invoke(simulator_command, ["--scenario", str(scenario)])
    assert result.exit_code == 1 and "unknown fields ['colour']" in result.output
    bad_kind = CliRunner().invoke(simulator_command, ["--fault-rate", "0.1", "--fault-kinds", "meteor"])
    assert bad_kind.exit_code == 2 and "meteor" in bad_kind.output
