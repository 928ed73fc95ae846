"""scripts/health_check.sh, check_redis.sh and check_mysql.sh against real servers: a running
``animehot api``, a redis-server of our own (stopped to make Redis fail) and the MariaDB."""

from __future__ import annotations

import re
import shlex
import subprocess
import time

import sqlalchemy as sa

from animehot_dagster.queue import keys
from animehot_dagster.queue.reliable import ResultQueue, TaskQueue
from animehot_dagster.queue.schedule import ScheduleStore
from animehot_dagster.storage.schema import ip_alerts, ip_metadata, ip_stats_hourly, item_snapshots
from animehot_dagster_tests.factories import T0, on_sale, response
from animehot_dagster_tests.queue import request
from animehot_dagster_tests.scripts import RedisServer, free_port, run_script, script_env


def _line_value(output: str, key: str) -> str:
    match = re.search(rf"^{re.escape(key)}\s+\S+\s+(\S+)$", output, re.M)
    assert match, f"no line for {key} in:\n{output}"
    return match.group(1)


# ---------------------------------------------------------------------------- health_check.sh

def test_health_check_passes_on_a_running_system_and_names_redis_when_it_stops(api, empty_url, redis_server):
    env = script_env(API_URL=api.url, DATABASE_URL=empty_url, REDIS_URL=redis_server.url)
    healthy = run_script("health_check.sh", env=env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.strip().splitlines()[-1] == "OK: All health checks passed"
    assert "queues: tasks=0 results=0 dead_letter=0" in healthy.stdout
    assert "stats: active_items=0 unacked_alerts=0" in healthy.stdout
    assert "WARNING" not in healthy.stdout + healthy.stderr

    redis_server.stop()
    broken = run_script("health_check.sh", env=env)
    assert broken.returncode == 1
    assert f"ERROR: Redis health check failed (127.0.0.1:{redis_server.port}, db 0: " in broken.stderr
    assert "Connection refused" in broken.stderr
    assert "OK: All health checks passed" not in broken.stdout
    assert "ok: API" in broken.stdout and "ok: MySQL" in broken.stdout  # the others still pass
    assert "ERROR: API health check" not in broken.stderr and "ERROR: MySQL health check" not in broken.stderr


def test_the_manuals_jq_lines_read_the_api(api):
    """Manual §5.3: ``curl -sf …/api/v1/system/status | jq -r '.data.stats.active_items // 0'``
    gives a number (the original's shape), and the list endpoints put their array in data."""
    def jq(path: str, expression: str) -> str:
        result = subprocess.run(f"curl -sf {api.url}{path} | jq -r {shlex.quote(expression)}", shell=True,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert jq("/api/v1/system/status", ".data.stats.active_items // 0").isdigit()
    assert jq("/api/v1/system/status", ".data.database.connected") == "true"
    assert jq("/api/v1/system/scheduler", ".data.schedules | length").isdigit()
    assert jq("/api/v1/ips", ".data | type") == "array"
    assert jq("/api/v1/ips", ".page_size") == "20"
    assert jq("/health", ".status") == "ok"


def test_health_check_warns_about_a_deep_task_queue(api, empty_url, redis_server):
    tasks = TaskQueue(redis_server.client())
    for ip_id in range(1, 5):
        assert tasks.enqueue(request(ip_id))
    env = script_env(API_URL=api.url, DATABASE_URL=empty_url, REDIS_URL=redis_server.url, QUEUE_DEPTH_WARN="3")
    result = run_script("health_check.sh", env=env)
    assert result.returncode == 0, result.stderr  # a warning, not a failure
    assert "WARNING: Task queue depth is high: 4 (above 3)" in result.stdout
    assert "queues: tasks=4 " in result.stdout

    quiet = run_script("health_check.sh", env={**env, "QUEUE_DEPTH_WARN": "4"})
    assert quiet.returncode == 0 and "WARNING" not in quiet.stdout


def test_health_check_names_the_api_and_mysql_when_they_are_down(empty_url, redis_server):
    api_port, mysql_port = free_port(), free_port()
    env = script_env(API_URL=f"http://127.0.0.1:{api_port}", MYSQL_HOST="127.0.0.1", MYSQL_PORT=str(mysql_port),
                     MYSQL_USER="root", REDIS_URL=redis_server.url)
    result = run_script("health_check.sh", env=env)
    assert result.returncode == 1
    assert f"ERROR: API health check failed (http://127.0.0.1:{api_port}/health: " in result.stderr
    assert f"ERROR: MySQL health check failed (127.0.0.1:{mysql_port}, database animetop, user root: " in result.stderr
    assert "ERROR: Redis" not in result.stderr
    assert "ok: Redis" in result.stdout


# ---------------------------------------------------------------------------- check_redis.sh

def test_check_redis_shows_every_queue_labelled(redis_server):
    client = redis_server.client()
    tasks = TaskQueue(client)
    for ip_id in (1, 2, 3):
        tasks.enqueue(request(ip_id))
    taken = tasks.take()  # one in flight
    assert taken is not None
    tasks.dead_letter(tasks.take(), "test")  # one dead
    ResultQueue(client).push(response(9, T0, [on_sale("m1")]))
    schedule = ScheduleStore(client)
    now = time.time()
    for ip_id, offset in ((1, -120), (2, -60), (3, 600), (4, 1200), (5, 1800), (6, 2400)):
        schedule.schedule(ip_id, now + offset)

    result = run_script("check_redis.sh", env=script_env(REDIS_URL=redis_server.url))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for section in ("=== Queue Status ===", "=== Schedule ZSET ===", "=== Pending Set ===", "=== Dead Letters ==="):
        assert section in out
    assert _line_value(out, keys.TASKS) == "1"
    assert _line_value(out, keys.TASKS_PROCESSING) == "1"
    assert _line_value(out, keys.TASKS_DEADLETTER) == "1"
    assert _line_value(out, keys.RESULTS) == "1"
    assert _line_value(out, keys.RESULTS_DEADLETTER) == "0"
    assert _line_value(out, keys.SCHEDULE) == "6"
    assert _line_value(out, "  of which overdue") == "2"
    assert _line_value(out, keys.TASKS_PENDING) == str(client.scard(keys.TASKS_PENDING))
    # the next five IPs of the schedule, earliest first, with their times
    assert re.findall(r"^    (\S+)\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", out, re.M) == ["1", "2", "3", "4", "5"]
    assert "used_memory_human = " in out
    client.close()


def test_check_redis_fails_naming_redis_when_it_is_unreachable(redis_server):
    redis_server.stop()
    result = run_script("check_redis.sh", env=script_env(REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_server.port)))
    assert result.returncode == 1
    assert f"ERROR: Redis check failed (127.0.0.1:{redis_server.port}, db 0: " in result.stderr
    assert "Connection refused" in result.stderr
    assert "=== Queue Status ===" not in result.stdout


def test_check_redis_uses_the_password_of_redis_url(tmp_path):
    server = RedisServer(tmp_path / "auth", password="s3cr%t").start()
    try:
        server_client = server.client()
        server_client.lpush(keys.TASKS, b"x", b"y")
        ok = run_script("check_redis.sh", env=script_env(REDIS_URL=f"redis://:s3cr%25t@127.0.0.1:{server.port}/0"))
        assert ok.returncode == 0, ok.stderr
        assert _line_value(ok.stdout, keys.TASKS) == "2"
        assert "s3cr" not in ok.stdout + ok.stderr
        backup = run_script("backup.sh", "--redis-only", env=script_env(
            REDIS_URL=f"redis://:s3cr%25t@127.0.0.1:{server.port}/0", BACKUP_DIR=str(tmp_path / "b")))
        assert backup.returncode == 0, backup.stderr
        (snapshot,) = (tmp_path / "b").glob("redis_*.rdb")
        assert snapshot.read_bytes().startswith(b"REDIS00") and b"animetop:queue:tasks" in snapshot.read_bytes()
        denied = run_script("check_redis.sh", env=script_env(REDIS_URL=f"redis://:wrong@127.0.0.1:{server.port}/0"))
        assert denied.returncode == 1
        assert "ERROR: Redis check failed" in denied.stderr
    finally:
        server.stop()


# ---------------------------------------------------------------------------- check_mysql.sh

def test_check_mysql_shows_the_counts_and_table_sizes(seeded_url):
    engine = sa.create_engine(seeded_url)
    with engine.connect() as connection:
        expected = {
            "ip_metadata": connection.execute(sa.select(sa.func.count()).select_from(ip_metadata)).scalar_one(),
            "ip_stats_hourly": connection.execute(sa.select(sa.func.count()).select_from(ip_stats_hourly)).scalar_one(),
            "item_snapshots": connection.execute(sa.select(sa.func.count()).select_from(item_snapshots)).scalar_one(),
            "ip_alerts (unacked)": connection.execute(
                sa.select(sa.func.count()).select_from(ip_alerts).where(ip_alerts.c.acknowledged.is_(False))).scalar_one(),
            "all alerts": connection.execute(sa.select(sa.func.count()).select_from(ip_alerts)).scalar_one(),
        }
    engine.dispose()
    assert expected["ip_alerts (unacked)"] < expected["all alerts"]  # the seed acknowledged one

    result = run_script("check_mysql.sh", env=script_env(DATABASE_URL=seeded_url))
    assert result.returncode == 0, result.stderr
    for label in ("ip_metadata", "ip_stats_hourly", "item_snapshots", "ip_alerts (unacked)"):
        assert re.search(rf"\|\s*{re.escape(label)}\s*\|\s*{expected[label]}\s*\|", result.stdout), (label, result.stdout)
    assert "=== Table sizes ===" in result.stdout
    for table in ("item_snapshots", "ip_stats_daily", "crawl_log"):
        assert re.search(rf"\|\s*{table}\s*\|\s*\d+\.\d\d\s*\|\s*\d+\.\d\d\s*\|", result.stdout), table
    assert "Threads_connected" in result.stdout


def test_check_mysql_fails_naming_mysql_on_a_wrong_port(seeded_url):
    port = free_port()
    wrong = re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{port}/", seeded_url)
    assert wrong != seeded_url
    result = run_script("check_mysql.sh", env=script_env(DATABASE_URL=wrong))
    assert result.returncode == 1
    assert f"ERROR: MySQL check failed (127.0.0.1:{port}, database " in result.stderr
    assert "Can't connect" in result.stderr
    assert "=== Data ===" not in result.stdout


def test_check_mysql_fails_naming_mysql_when_the_tables_are_missing(seeded_url):
    url = re.sub(r"/(animehot_scripts_\w+)\?", "/information_schema?", seeded_url)
    result = run_script("check_mysql.sh", env=script_env(DATABASE_URL=url))
    assert result.returncode == 1
    assert "ERROR: MySQL check failed" in result.stderr
    assert "ip_metadata" in result.stderr  # the missing table is named


def test_check_mysql_reads_the_mysql_variables(seeded_url):
    database = re.search(r"/(animehot_scripts_\w+)\?", seeded_url).group(1)
    result = run_script("check_mysql.sh", env=script_env(MYSQL_HOST="127.0.0.1", MYSQL_PORT="3306", MYSQL_USER="root",
                                                         MYSQL_DATABASE=database))
    assert result.returncode == 0, result.stderr
    assert f"MySQL: 127.0.0.1:3306, database {database}, user root" in result.stdout


# ---------------------------------------------------------------------------- Docker mode

def test_forcing_docker_without_compose_fails_clearly(tmp_path):
    empty = tmp_path / "no-compose-project"
    empty.mkdir()
    env = script_env(ANIMEHOT_USE_DOCKER="1", ANIMEHOT_COMPOSE_DIR=str(empty))
    result = run_script("check_redis.sh", env=env)
    assert result.returncode == 1
    assert "ANIMEHOT_USE_DOCKER=1" in result.stderr and "redis" in result.stderr
    bad = run_script("check_mysql.sh", env={**env, "ANIMEHOT_USE_DOCKER": "maybe"})
    assert bad.returncode == 1 and "ANIMEHOT_USE_DOCKER=maybe" in bad.stderr
