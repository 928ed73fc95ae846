"""Issue 17 #10: the local system (``animehot up``) supervises its pieces like Compose's
``restart: unless-stopped``: a piece that dies is restarted with backoff and reported each time,
the restarted process is the one tracked (and stopped at the end). The embedded Redis keeps an
append-only file in the run directory, so a Redis crash loses at most a second of writes.

Real processes throughout: a sleeping Python child for the policy, and a local system of Redis,
the simulator and a crawler node for the pieces themselves.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import redis

from animehot_dagster.stack.processes import RestartPolicy, Stack, Supervisor
from animehot_dagster.stack.system import LocalSystem, SystemConfig, read_env_file

SLEEPER = (sys.executable, "-c", "import time; time.sleep(600)")
FAST = RestartPolicy(first_delay=0.3, max_delay=1.2, reset_after=3.0)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its parent) counts as dead.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def kill(pid: int) -> float:
    os.killpg(pid, signal.SIGKILL)
    return time.monotonic()


def supervise_until(supervisor: Supervisor | LocalSystem, condition, timeout: float = 20) -> float:
    poll = supervisor.supervise if isinstance(supervisor, LocalSystem) else supervisor.poll
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the supervisor did not get there in time"
        poll()
        time.sleep(0.05)
    return time.monotonic()


def test_a_piece_that_dies_is_restarted_with_backoff_and_reported_each_time(tmp_path):
    stack = Stack(tmp_path, dict(os.environ))
    service = stack.start("sleeper", *SLEEPER)
    reports: list[str] = []
    supervisor = Supervisor(stack, log=reports.append, policy=FAST)
    try:
        pids, delays = [service.process.pid], []
        for _ in range(3):
            died = kill(pids[-1])
            restarted = supervise_until(supervisor, lambda: service.process.pid != pids[-1])
            delays.append(restarted - died)
            pids.append(service.process.pid)
            assert service.process.poll() is None
        assert service.restarts == 3
        # Backoff doubles: 0.3, 0.6, 1.2 s (the cap).
        assert delays[0] >= 0.25 and delays[1] >= 0.55 and delays[2] >= 1.15, delays
        assert delays[2] < 4, delays
        # Reported each time: the death (with its exit code) and the restart.
        deaths = [line for line in reports if "exited" in line]
        assert len(deaths) == 3 and all("-9" in line for line in deaths), reports
        assert [line for line in reports if "restarted" in line and "sleeper" in line].__len__() == 3, reports
        assert stack.services == [service]  # the restarted process is the one tracked
        # The log keeps every run, each restart marked.
        assert service.log.read_text().count("restart") >= 3
    finally:
        stack.stop(timeout=5)
    assert not any(alive(pid) for pid in pids)


def test_a_piece_that_stays_up_long_enough_starts_its_backoff_over(tmp_path):
    stack = Stack(tmp_path, dict(os.environ))
    service = stack.start("sleeper", *SLEEPER)
    supervisor = Supervisor(stack, log=lambda line: None, policy=FAST)
    try:
        for _ in range(2):
            old = service.process.pid
            kill(old)
            supervise_until(supervisor, lambda old=old: service.process.pid != old)
        # Up for longer than reset_after: the next death is restarted after the first delay again.
        end = time.monotonic() + FAST.reset_after + 0.5
        while time.monotonic() < end:
            supervisor.poll()
            time.sleep(0.1)
        old = service.process.pid
        died = kill(old)
        restarted = supervise_until(supervisor, lambda: service.process.pid != old)
        assert restarted - died < FAST.first_delay + 0.5
    finally:
        stack.stop(timeout=5)


def test_a_piece_stopped_on_purpose_is_not_restarted(tmp_path):
    stack = Stack(tmp_path, dict(os.environ))
    service = stack.start("sleeper", *SLEEPER)
    supervisor = Supervisor(stack, log=lambda line: None, policy=FAST)
    stack.stop(timeout=5)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        supervisor.poll()
        time.sleep(0.1)
    assert service.process.poll() is not None and service.restarts == 0


@pytest.fixture
def local_system(tmp_path):
    env = {name: value for name, value in os.environ.items()
           if name not in ("REDIS_URL", "REDIS_HOST", "DATABASE_URL", "MYSQL_HOST", "DAGSTER_MYSQL_URL", "DAGSTER_HOME")}
    system = LocalSystem(
        SystemConfig(workdir=tmp_path / "run", ips_file=None, components=frozenset({"simulator", "crawler"}),
                     simulator_port=0),
        env, log=lambda line: None,
    )
    system.supervisor.policy = FAST
    try:
        system.start()
        yield system
    finally:
        system.stop()


def test_a_killed_crawler_of_the_local_system_comes_back_and_system_env_names_its_new_pid(local_system):
    crawler = next(s for s in local_system.stack.services if s.name == "crawler")
    local_system.stack.wait_for_log(crawler, "crawler node started", 60)
    old = crawler.process.pid
    assert read_env_file(local_system.state_file)["CRAWLER_PID"] == str(old)
    kill(old)
    supervise_until(local_system, lambda: crawler.process.pid != old)
    # Back for good: it runs, its log shows a node started again, the state file follows it.
    deadline = time.monotonic() + 60
    while crawler.log.read_text(errors="replace").count("crawler node started") < 2:
        assert crawler.process.poll() is None, crawler.tail()
        assert time.monotonic() < deadline, crawler.tail()
        local_system.supervise()
        time.sleep(0.2)
    assert read_env_file(local_system.state_file)["CRAWLER_PID"] == str(crawler.process.pid)
    assert not alive(old)


def test_the_embedded_redis_keeps_an_append_only_file_and_a_crash_loses_at_most_a_second(local_system):
    workdir = local_system.config.workdir
    client = redis.Redis.from_url(local_system.endpoints.redis)
    config = client.config_get("*")
    assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec"
    assert Path(config["dir"]).resolve() == workdir.resolve()
    client.lpush("animetop:queue:results", *[f"result-{n}" for n in range(100)])
    time.sleep(1.5)  # everysec: on disk within a second
    redis_service = next(s for s in local_system.stack.services if s.name == "redis")
    old = redis_service.process.pid
    kill(old)
    supervise_until(local_system, lambda: redis_service.process.pid != old)
    deadline = time.monotonic() + 20
    while True:
        try:
            length = client.llen("animetop:queue:results")
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert length == 100
    assert read_env_file(local_system.state_file)["REDIS_PID"] == str(redis_service.process.pid)
    client.close()
