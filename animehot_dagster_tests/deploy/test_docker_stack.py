"""The deployment for real (issue 15): the images built and the compose stacks brought up on a
local Docker engine, against the market simulator, and checked through the containers.

No registry can be reached here, so the images are built FROM the local Debian base of
scripts/build_base_image.sh, and mysql, redis and nginx are replaced by stand-ins built from
Debian's packages (deploy/test/services.Dockerfile). Every container and every build runs on the
host network (the tests' traffic stays on 127.0.0.1), each service on a port of its own
(deploy/test/compose.*.yml): the manual's commands that name a port run with the test port
(``on_test_ports``). What it measured is written to var/docker-test/measurements.json.

``make docker-test`` runs this module alone. ANIMEHOT_DOCKER_SOAK=SECONDS keeps the prod stack
crawling that long before the containers' memory is measured.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from animehot_dagster.domain.timebuckets import JST
from animehot_dagster_tests.deploy.tools import REPO, compose_binary

# ANIMEHOT_DOCKER_SOAK=SECONDS: the prod test's time limit grows by the soak.
SOAK = float(os.environ.get("ANIMEHOT_DOCKER_SOAK", "0") or 0)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400 + SOAK)]

MEASUREMENTS = REPO / "var" / "docker-test" / "measurements.json"
APP_IMAGE, CRAWLER_IMAGE = "animehot-app:test", "animehot-crawler:test"
API = "http://127.0.0.1:18080"
METRICS = "http://127.0.0.1:12112/metrics"
NGINX = "https://127.0.0.1:18443"
# The ports of the manual (inside a container of the production files) → the test's.
TEST_PORTS = {"4266": "14266", "8080": "18080", "2112": "12112", "2113": "12113", "3000": "13000"}
SECRETS = {
    "MYSQL_ROOT_PASSWORD": "root-secret",
    "MYSQL_PASSWORD": "mysql-secret",
    "REDIS_PASSWORD": "redis-secret",
    "ADMIN_API_KEY": "admin-secret",
}
HTPASSWD_USER, HTPASSWD_PASSWORD = "admin", "dagster-secret"
IPS = [
    {"name": "初音ミク", "name_en": "Hatsune Miku", "category": "vocaloid", "weight": 1.0},
    {"name": "葬送のフリーレン", "name_en": "Frieren", "category": "anime", "weight": 0.5},
]
FIGURE_TIMEOUT = 420

measured: dict = {}


def on_test_ports(command: str) -> str:
    """A manual command with the production ports replaced by the test stack's."""
    return re.sub(r"(?<=[: ])(4266|8080|2112|2113|3000)\b", lambda m: TEST_PORTS[m.group(1)], command)


def save_measurements() -> None:
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    MEASUREMENTS.write_text(json.dumps(measured, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- the engine and the images ---------------------------------------------------------------


def sh(command: list[str] | str, env: dict, timeout: float = 300, check: bool = True,
       input: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, shell=isinstance(command, str), capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=REPO, input=input)
    if check and result.returncode != 0:
        pytest.fail(f"{command!r} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def docker_env(tmp_path_factory) -> Iterator[dict]:
    """A running engine (started here when none runs, and stopped again) and `docker compose`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    env["PATH"] = f"{env.get('PATH', '/usr/bin:/bin')}:/usr/sbin:/sbin"
    if shutil.which("dockerd", path=env["PATH"]) is None or shutil.which("debootstrap", path=env["PATH"]) is None:
        installed = subprocess.run([str(REPO / "scripts/install_system_packages.sh"), "docker"],
                                   capture_output=True, text=True, timeout=900)
        if installed.returncode != 0:
            pytest.skip(f"docker.io/debootstrap cannot be installed here: {installed.stderr.strip()[-500:]}")
    engine = subprocess.run([str(REPO / "deploy/test/ensure_dockerd.sh")], capture_output=True, text=True,
                            timeout=120, env=env)
    if engine.returncode != 0:
        pytest.skip(f"dockerd cannot run here: {engine.stderr.strip()}")
    started = engine.stdout.split()[1] if engine.stdout.startswith("started") else None
    if subprocess.run(["docker", "compose", "version"], capture_output=True, env=env).returncode != 0:
        # The Compose v2 binary of the dev extras, as the docker CLI plugin.
        config = tmp_path_factory.mktemp("docker-config")
        (config / "cli-plugins").mkdir()
        (config / "cli-plugins" / "docker-compose").symlink_to(compose_binary())
        env["DOCKER_CONFIG"] = str(config)
    yield env
    save_measurements()
    if started:
        subprocess.run(["kill", started], check=False)
        for _ in range(60):
            if subprocess.run(["kill", "-0", started], capture_output=True).returncode != 0:
                break
            time.sleep(0.5)


def image_size(env: dict, image: str) -> int:
    return int(sh(["docker", "image", "inspect", "-f", "{{.Size}}", image], env).stdout)


@pytest.fixture(scope="module")
def images(docker_env, tmp_path_factory) -> dict:
    """The base image (once per machine), then the app, crawler and stand-in images, with
    `docker compose build` of the prod stack and its test override (host networking)."""
    env = docker_env
    started = time.monotonic()
    sh([str(REPO / "scripts/build_base_image.sh")], env, timeout=900)
    measured["base_image_seconds"] = round(time.monotonic() - started, 1)
    prod = prod_env(env, tmp_path_factory.mktemp("prod"))
    started = time.monotonic()
    build = sh(["docker", "compose", "build"], prod, timeout=1800)
    measured["compose_build_seconds"] = round(time.monotonic() - started, 1)
    measured["compose_build_tail"] = build.stdout.splitlines()[-3:] + build.stderr.splitlines()[-3:]
    measured["image_bytes"] = {image: image_size(env, image) for image in (
        "animehot-base:bookworm", APP_IMAGE, CRAWLER_IMAGE, "animehot-test-mariadb:local",
        "animehot-test-redis:local", "animehot-test-nginx:local")}
    save_measurements()
    return prod


# -- stacks -------------------------------------------------------------------------------------


def dev_env(env: dict) -> dict:
    return {**env, "COMPOSE_FILE": "docker-compose.yml:deploy/test/compose.dev.yml", "COMPOSE_PROFILES": "simulator",
            "ANIMEHOT_TAG": "test"}


def prod_env(env: dict, workdir: Path) -> dict:
    """The prod stack's variables (what .env holds in production), its TLS certificate, htpasswd
    and the test instance: dagster.prod.yaml with its run containers on the host network."""
    tls = workdir / "tls"
    tls.mkdir(exist_ok=True)
    if not (tls / "fullchain.pem").exists():
        sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-keyout", str(tls / "privkey.pem"), "-out", str(tls / "fullchain.pem")], env)
        (tls / "privkey.pem").chmod(0o644)
    hashed = sh(["openssl", "passwd", "-apr1", HTPASSWD_PASSWORD], env).stdout.strip()
    (workdir / "dagster.htpasswd").write_text(f"{HTPASSWD_USER}:{hashed}\n")
    instance = yaml.safe_load((REPO / "deploy/dagster/dagster.prod.yaml").read_text())
    launcher = instance["run_launcher"]["config"]
    launcher["network"] = "host"
    launcher["env_vars"] = [*launcher["env_vars"], "REDIS_PORT", "NO_PROXY"]
    (workdir / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False))
    return {
        **env, **SECRETS,
        "COMPOSE_FILE": "docker-compose.prod.yml:deploy/test/compose.prod.yml",
        "DOCKER_GID": str(Path("/var/run/docker.sock").stat().st_gid),
        "TLS_DIR": str(tls),
        "DAGSTER_HTPASSWD_FILE": str(workdir / "dagster.htpasswd"),
        "ANIMEHOT_APP_IMAGE": APP_IMAGE,
        "ANIMEHOT_CRAWLER_IMAGE": CRAWLER_IMAGE,
        "ANIMEHOT_TEST_DAGSTER_YAML": str(workdir / "dagster.yaml"),
        "ALLOY_ENV_FILE": "deploy/env/alloy.env.example",
    }


def crawler_node_env(prod: dict) -> dict:
    return {**prod, "COMPOSE_FILE": "docker-compose.crawler.yml:deploy/test/compose.crawler.yml",
            "REDIS_HOST": "127.0.0.1", "ALLOY_NODE": "crawler-test-1"}


def services(env: dict) -> list[dict]:
    out = sh(["docker", "compose", "ps", "-a", "--format", "json"], env).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [row for batch in rows for row in (batch if isinstance(batch, list) else [batch])]


def logs(env: dict, *names: str, tail: int = 40) -> str:
    return sh(["docker", "compose", "logs", "--no-color", f"--tail={tail}", *names], env, check=False).stdout


def wait_healthy(env: dict, timeout: float = 300) -> dict[str, float]:
    """Until every service with a healthcheck is healthy, migrate exited 0 and the rest run; the
    seconds at which each turned healthy. Fails at once when a container exits or restarts."""
    started, healthy_at = time.monotonic(), {}
    while True:
        rows = services(env)
        pending = []
        for row in rows:
            name, state, health = row["Service"], row["State"], row.get("Health", "")
            if name == "migrate":
                if state == "exited" and row.get("ExitCode") != 0:
                    pytest.fail(f"migrate exited {row.get('ExitCode')}:\n{logs(env, 'migrate', tail=60)}")
                if state != "exited":
                    pending.append(name)
                continue
            if state in {"exited", "dead", "restarting"}:
                pytest.fail(f"{name} is {state}:\n{logs(env, name, tail=60)}")
            if health == "unhealthy":
                pytest.fail(f"{name} is unhealthy:\n{logs(env, name, tail=60)}")
            if health and health != "healthy" or state != "running":
                pending.append(name)
            elif name not in healthy_at:
                healthy_at[name] = round(time.monotonic() - started, 1)
        if rows and not pending:
            return healthy_at
        if time.monotonic() - started > timeout:
            pytest.fail(f"not healthy within {timeout:.0f} s: {pending}\n{logs(env, *pending, tail=30)}")
        time.sleep(2)


def mysql_query(env: dict, sql: str) -> list[list[str]]:
    out = sh(["docker", "compose", "exec", "-T", "mysql", "mariadb", "-uroot",
              f"-p{env.get('MYSQL_ROOT_PASSWORD', 'root')}", "--batch", "--skip-column-names", "animetop", "-e", sql],
             env).stdout
    return [line.split("\t") for line in out.splitlines()]


def wait_first_figure(env: dict, since: float) -> float:
    """Seconds from ``since`` until the first hourly figure is stored (a run of the crawl chain)."""
    deadline = time.monotonic() + FIGURE_TIMEOUT
    while time.monotonic() < deadline:
        result = sh(["docker", "compose", "exec", "-T", "mysql", "mariadb", "-uroot",
                     f"-p{env.get('MYSQL_ROOT_PASSWORD', 'root')}", "--batch", "--skip-column-names", "animetop",
                     "-e", "SELECT COUNT(*) FROM ip_stats_hourly"], env, check=False)
        if result.returncode == 0 and result.stdout.strip() not in {"", "0"}:
            return round(time.monotonic() - since, 1)
        time.sleep(3)
    pytest.fail(f"no hourly figure within {FIGURE_TIMEOUT} s:\n{logs(env, 'crawler', 'dagster-daemon', 'dagster-code')}")


def verify_inside(env: dict, min_crawls: int, wait: int = 360) -> str:
    """`animehot verify` in the api container: API, Redis, MySQL, every IP crawled and measured,
    the figures served, the metrics, and no failed Dagster run (the instance of the container)."""
    result = sh(["docker", "compose", "exec", "-T", "-e", f"API_URL={API}", "-e", f"METRICS_URL={METRICS}",
                 "api", "animehot", "verify", "--min-crawls", str(min_crawls), "--wait", str(wait)],
                env, timeout=wait + 120, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    assert "OK: data flowed end to end" in result.stdout
    return result.stdout


def memory(env: dict) -> dict[str, str]:
    out = sh(["docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}"], env).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if line.strip())


def down(env: dict, timeout: float = 400) -> subprocess.CompletedProcess:
    return sh(["docker", "compose", "down", "-v", "--remove-orphans"], env, timeout=timeout, check=False)


def ports_free(env: dict, ports: list[int]) -> None:
    listening = sh(["ss", "-Hltn"], env).stdout
    taken = [port for port in ports if re.search(rf"[:\]]{port}\s", listening)]
    if taken:
        pytest.fail(f"ports {taken} are taken on this host: the test stack needs them (deploy/test/compose.*.yml)")


STACK_PORTS = [13306, 16379, 14266, 13000, 18080, 12112, 12113, 18090]


def manual(env: dict, command: str, timeout: float = 120) -> str:
    """A command of docs/operations.md, run as written but for the test's ports and, where the
    manual has ``mysql -u root -p`` prompt for the password, the password given; its output."""
    assert command in (REPO / "docs/operations.md").read_text(encoding="utf-8"), command
    command = on_test_ports(command).replace("-u root -p ", '-u root -p"$MYSQL_ROOT_PASSWORD" ')
    result = sh(command, env, timeout=timeout, check=False)
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def manual_as_example(env: dict, command: str, values: dict[str, str], timeout: float = 120) -> str:
    """A command of docs/operations.md whose dates and ids are examples, run with ``values`` in
    their place; its output (stdout and stderr: Dagster's CLI logs its events to stderr)."""
    assert command in (REPO / "docs/operations.md").read_text(encoding="utf-8"), command
    for example, value in values.items():
        command = command.replace(example, value)
    result = sh(on_test_ports(command), env, timeout=timeout, check=False)
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout + result.stderr


# -- the dev stack ------------------------------------------------------------------------------


def test_the_dev_stack_comes_up_healthy_crawls_and_serves_figures(docker_env, images):
    env = dev_env(docker_env)
    down(env)
    ports_free(env, STACK_PORTS)
    try:
        started = time.monotonic()
        sh(["make", "docker-up"], env, timeout=300)  # docker compose up -d: waits for the dependencies' health
        measured["dev_up_seconds"] = round(time.monotonic() - started, 1)
        wait_healthy(env)
        measured["dev_up_to_all_healthy_seconds"] = round(time.monotonic() - started, 1)
        answer = httpx.post(f"{API}/api/v1/admin/import", json={"ips": IPS, "upsert": True}, timeout=30,
                            headers={"X-API-Key": "dev-admin-key"})  # docker-compose.yml's default
        assert answer.status_code == 200, answer.text
        measured["dev_up_to_first_figure_seconds"] = wait_first_figure(env, started)
        verify_inside(env, min_crawls=1)
        metrics = httpx.get(METRICS, timeout=10).text
        assert "crawler_queue_depth" in metrics
        assert "animetop_crawler_requests_total" in httpx.get("http://127.0.0.1:12113/metrics", timeout=10).text
        ps = sh(["make", "docker-ps"], env).stdout
        assert "(healthy)" in ps
        measured["dev_memory"] = memory(env)
    finally:
        stopped = time.monotonic()
        result = sh(["make", "docker-down"], env, timeout=400, check=False)
        measured["dev_down_seconds"] = round(time.monotonic() - stopped, 1)
        down(env)
        save_measurements()
    assert result.returncode == 0, result.stderr


# -- the prod stack -----------------------------------------------------------------------------


def run_containers(env: dict) -> list[dict]:
    out = sh(["docker", "ps", "-a", "--filter", "label=dagster/job_name", "--format", "{{json .}}"], env).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    for row in rows:
        inspected = json.loads(sh(["docker", "inspect", row["ID"]], env).stdout)[0]
        row["ExitCode"], row["Network"] = inspected["State"]["ExitCode"], inspected["HostConfig"]["NetworkMode"]
        row["Labels"] = inspected["Config"]["Labels"]
    return rows


def remove_run_containers(env: dict) -> None:
    ids = sh(["docker", "ps", "-aq", "--filter", "label=dagster/job_name"], env).stdout.split()
    if ids:
        sh(["docker", "rm", "-f", *ids], env, check=False)


def wait_for(what: str, probe, timeout: float = 240, every: float = 3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


def counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def redis_cli(env: dict, *args: str) -> str:
    return sh(["docker", "compose", "exec", "-T", "redis", "redis-cli", *args], env).stdout.strip()


def test_the_prod_stack_launches_run_containers_serves_through_nginx_and_obeys_the_manual(
        docker_env, images, tmp_path):
    env = images  # the prod stack's variables
    crawler_node = crawler_node_env(env)
    remove_run_containers(env)
    down(env)
    down(crawler_node)
    ports_free(env, [*STACK_PORTS, 18081, 18443, 12114])
    https = httpx.Client(base_url=NGINX, verify=False, timeout=30)
    try:
        started = time.monotonic()
        sh(["docker", "compose", "up", "-d"], env, timeout=300)
        measured["prod_up_seconds"] = round(time.monotonic() - started, 1)
        wait_healthy(env)
        measured["prod_up_to_all_healthy_seconds"] = round(time.monotonic() - started, 1)
        answer = https.post("/api/v1/admin/import", json={"ips": IPS, "upsert": True},
                            headers={"X-API-Key": SECRETS["ADMIN_API_KEY"]})
        assert answer.status_code == 200, answer.text
        names = {ip["name"] for ip in IPS}
        ip_ids = sorted(ip["id"] for ip in https.get("/api/v1/ips").json()["data"] if ip["name"] in names)
        assert len(ip_ids) == len(IPS)
        measured["prod_up_to_first_figure_seconds"] = wait_first_figure(env, started)

        # Dagster launched the runs in containers of their own, on the host network, and they succeeded.
        runs = wait_for("a finished run container", lambda: [r for r in run_containers(env) if r["State"] == "exited"])
        assert all(r["Network"] == "host" for r in runs), runs
        assert {r["Labels"].get("dagster/job_name") for r in runs} >= {"crawl_chain_job"}
        assert [r for r in runs if r["ExitCode"] != 0] == []
        assert manual(env, "docker ps -a --filter label=dagster/job_name=crawl_chain_job").count("\n") >= 2
        run_log = sh(["docker", "logs", runs[0]["ID"]], env)  # the manual's `docker logs <container id>`
        assert (run_log.stdout + run_log.stderr).strip()

        # nginx: the API and the figures at /api/, the UI behind basic auth, /metrics not served.
        assert https.get("/health").status_code == 200
        listed = https.get("/api/v1/ips").json()["data"]
        assert {ip["name"] for ip in listed} >= {ip["name"] for ip in IPS}
        for ip_id in ip_ids:
            assert https.get(f"/api/v1/ips/{ip_id}").json()["data"]["id"] == ip_id
            hourly = https.get(f"/api/v1/ips/{ip_id}/stats/hourly", params={"limit": 168})
            assert hourly.status_code == 200
            # complete hours only (the current one is still counted): equal to what MySQL holds
            complete = mysql_query(env, f"SELECT COUNT(*) FROM ip_stats_hourly WHERE ip_id = {ip_id} "
                                        f"AND hour_bucket < '{datetime.now(UTC):%Y-%m-%d %H}:00:00'")
            assert len(hourly.json()["data"]["stats"]) == int(complete[0][0])
            assert https.get(f"/api/v1/ips/{ip_id}/items").status_code == 200
        assert https.get("/metrics").status_code == 404
        assert 'href="dashboard.css"' in https.get("/").text  # the dashboard, served by the API
        assert https.get("/dagster/server_info").status_code == 401
        assert https.get("/dagster/server_info", auth=(HTPASSWD_USER, HTPASSWD_PASSWORD)).status_code == 200
        redirect = httpx.get("http://127.0.0.1:18081/api/v1/ips", follow_redirects=False, timeout=10)
        assert redirect.status_code == 301 and redirect.headers["location"].startswith("https://")
        metrics = httpx.get(METRICS, timeout=10).text
        assert "crawler_queue_depth" in metrics
        assert httpx.get(f"{API}/api/v1/system/status", timeout=10).status_code == 200

        # The manual's commands that name a container (§2, §4, §5, §7), as written.
        assert "crawler" in manual(env, "docker compose ps crawler")
        for command in (
            "docker compose logs --tail=100 api",
            "docker compose logs --tail=50 crawler",
            "docker compose logs --tail=100 dagster-daemon dagster-code",
            'docker compose logs --since="2026-01-21T14:00:00" api',
            "docker compose exec dagster-daemon dagster sensor list -w /opt/dagster/workspace.yaml",
            "docker compose exec dagster-daemon dagster schedule list -w /opt/dagster/workspace.yaml",
            "docker compose exec dagster-daemon dagster run list --limit 20",
            "docker compose exec dagster-daemon dagster-daemon liveness-check",
            "docker compose exec dagster-code dagster api grpc-health-check --port 4266",
            "docker compose exec mysql mysqladmin ping -h localhost",
            "docker compose exec api animehot queue stats",
            "docker compose exec redis redis-cli INFO memory",
            "docker compose exec redis redis-cli ZRANGE animetop:schedule:pending 0 5 WITHSCORES",
            "docker compose exec redis redis-cli HLEN animetop:queue:tasks:started",
        ):
            manual(env, command)
        assert len(manual(env, "docker compose logs --tail=100 api").splitlines()) > 5
        assert manual(env, "docker compose exec redis redis-cli ping").strip() == "PONG"
        for key in ("animetop:queue:tasks", "animetop:queue:results", "animetop:queue:tasks:deadletter",
                    "animetop:queue:results:deadletter"):
            assert re.fullmatch(r"\(integer\) \d+|\d+", manual(env, f"docker compose exec redis redis-cli LLEN {key}").strip())
        assert manual(env, "docker compose exec redis redis-cli LLEN animetop:queue:tasks:deadletter").strip() in {"0", "(integer) 0"}
        assert "Threads_connected" in manual(
            env, """docker compose exec mysql mysql -u root -p -e "SHOW STATUS LIKE 'Threads_connected';\"""")
        assert "animetop" in manual(env, 'docker compose exec mysql mysql -u root -p -e "SHOW PROCESSLIST;"')
        crawl = json.loads(manual(env, "docker compose exec crawler animehot crawl 初音ミク --mode api", timeout=180)
                           .strip().splitlines()[-1])
        assert crawl.get("items") and not crawl.get("error_message"), crawl
        follow = subprocess.run("timeout 5 docker compose logs -f api", shell=True, capture_output=True, text=True,
                                env=env, cwd=REPO)
        assert follow.returncode == 124 and follow.stdout, follow.stderr  # followed until stopped
        trigger = https.post(f"/api/v1/ips/{ip_ids[0]}/trigger", headers={"X-API-Key": SECRETS["ADMIN_API_KEY"]})
        assert trigger.status_code == 200, trigger.text

        # Every IP crawled twice and measured, served by the API, no failed run (inside the api container).
        measured["prod_verify"] = verify_inside(env, min_crawls=2).splitlines()

        # §2.2: restart each service, recreate one; the stack comes back healthy and keeps serving.
        for command in ("docker compose restart api", "docker compose restart dagster-daemon",
                        "docker compose restart dagster-code", "docker compose up -d --force-recreate api"):
            manual(env, command, timeout=300)
            wait_healthy(env)
        assert https.get("/api/v1/ips").status_code == 200

        # §7: an (IP, hour) recomputed from stored facts, and a day's rollup backfilled, from the CLI,
        # for a partition this stack has (the manual's own dates are examples).
        (crawled_at,) = mysql_query(env, f"SELECT MAX(crawled_at) FROM crawl_log WHERE ip_id = {ip_ids[0]}")[0]
        hour = datetime.fromisoformat(crawled_at).replace(tzinfo=UTC).astimezone(JST)
        materialize = manual_as_example(
            env, "docker compose exec dagster-code dagster asset materialize --select hourly_liquidity,liquidity_alerts \\\n"
                 "  --partition '2026-01-21-14:00|11' -m animehot_dagster.definitions -a defs",
            {"2026-01-21-14:00|11": f"{hour:%Y-%m-%d-%H:00}|{ip_ids[0]}"}, timeout=300)
        assert "RUN_SUCCESS" in materialize, materialize[-2000:]
        yesterday = f"{(datetime.now(JST) - timedelta(days=1)):%Y-%m-%d}"
        backfill = manual_as_example(
            env, "docker compose exec dagster-daemon dagster job backfill -j daily_rollup_job \\\n"
                 "  --from 2026-01-15 --to 2026-01-20 --noprompt -w /opt/dagster/workspace.yaml",
            {"2026-01-15": yesterday, "2026-01-20": yesterday}, timeout=300)
        assert "backfill" in backfill.lower(), backfill[-2000:]
        wait_for("the backfill's run of daily_rollup_job succeeded", lambda: mysql_query(
            env, "SELECT COUNT(*) FROM dagster.runs WHERE pipeline_name = 'daily_rollup_job' AND status = 'SUCCESS'"
        )[0][0] != "0", timeout=300)

        # `docker compose restart crawler` with a crawl in flight: it finishes or returns its task.
        https.post(f"/api/v1/ips/{ip_ids[1]}/trigger", headers={"X-API-Key": SECRETS["ADMIN_API_KEY"]})
        restarted = time.monotonic()
        manual(env, "docker compose restart crawler", timeout=200)
        measured["prod_restart_crawler_seconds"] = round(time.monotonic() - restarted, 1)
        wait_healthy(env)
        wait_for("the tasks in flight finished or returned", lambda: redis_cli(
            env, "LLEN", "animetop:queue:tasks:processing") == "0" and redis_cli(env, "LLEN", "animetop:queue:tasks") == "0",
            timeout=180)
        assert redis_cli(env, "LLEN", "animetop:queue:tasks:deadletter") == "0"

        # A remote crawler node (docker-compose.crawler.yml) joins through Redis and takes the work.
        sh(["docker", "compose", "stop", "crawler"], env, timeout=200)
        sh(["docker", "compose", "up", "-d", "crawler"], crawler_node, timeout=200)
        wait_healthy(crawler_node)
        before = int(mysql_query(env, "SELECT COUNT(*) FROM crawl_log")[0][0])
        for ip_id in ip_ids:
            assert https.post(f"/api/v1/ips/{ip_id}/trigger",
                              headers={"X-API-Key": SECRETS["ADMIN_API_KEY"]}).status_code == 200
        wait_for("the remote node's crawls", lambda: counter(httpx.get("http://127.0.0.1:12114/metrics", timeout=10).text,
                                                              "animetop_crawler_requests_total", status="success") > 0)
        wait_for("the remote node's results ingested",
                 lambda: int(mysql_query(env, "SELECT COUNT(*) FROM crawl_log")[0][0]) >= before + len(ip_ids), timeout=300)
        sh(["docker", "compose", "up", "-d", "crawler"], env, timeout=200)

        # Backup (scripts/backup.sh) and restore (scripts/restore.sh) in Docker mode (§9).
        mysql_query(env, "CREATE TABLE restore_probe (v VARCHAR(10)); INSERT INTO restore_probe VALUES ('before')")
        redis_cli(env, "SET", "animehot:restore_probe", "before")
        backups = tmp_path / "backups"
        backup = sh([str(REPO / "scripts/backup.sh"), "--docker", "--dir", str(backups)], env, timeout=300)
        assert "Backup completed" in backup.stdout, backup.stdout + backup.stderr
        (dump,) = backups.glob("mysql_*.sql.gz")
        (rdb,) = backups.glob("redis_*.rdb")
        measured["backup_bytes"] = {"mysql": dump.stat().st_size, "redis": rdb.stat().st_size}
        # the manual's own lines (§9.1, §9.2)
        manual(env, "docker compose exec redis redis-cli BGSAVE")
        mysql_query(env, "UPDATE restore_probe SET v = 'after'")
        redis_cli(env, "SET", "animehot:restore_probe", "after")
        manual(env, "docker compose exec dagster-daemon dagster sensor stop crawl_cadence_sensor -w /opt/dagster/workspace.yaml")
        manual(env, "docker compose stop -t 30 api")
        manual(env, "docker compose stop crawler dagster-daemon dagster-webserver dagster-code", timeout=300)
        restore = sh([str(REPO / "scripts/restore.sh"), "--docker", "--yes", str(dump), str(rdb)], env, timeout=300)
        assert "Restore completed" in restore.stdout, restore.stdout + restore.stderr
        assert mysql_query(env, "SELECT v FROM restore_probe") == [["before"]]
        assert redis_cli(env, "GET", "animehot:restore_probe") == "before"
        manual(env, "docker compose up -d", timeout=300)
        wait_healthy(env)
        manual(env, "docker compose exec dagster-daemon dagster sensor start crawl_cadence_sensor -w /opt/dagster/workspace.yaml")

        if SOAK:
            # memory after 15 min of crawling too (when the soak is longer), then at its end
            soaked = 0.0
            for mark in sorted({min(900.0, SOAK), SOAK}):
                time.sleep(mark - soaked)
                soaked = mark
                measured[f"prod_soak_{mark:.0f}s"] = {
                    "memory": memory(env), "run_containers": len(run_containers(env)),
                    "crawls": mysql_query(env, "SELECT COUNT(*) FROM crawl_log")[0][0]}
                save_measurements()
            measured["prod_soak_seconds"] = SOAK
            measured["prod_crawls_after_soak"] = mysql_query(env, "SELECT COUNT(*) FROM crawl_log")[0][0]
        measured["prod_memory"] = {**memory(env)}
        measured["run_containers"] = len(run_containers(env))

        # `docker compose down` gives each service its stop_grace_period: the crawler 2 min, the
        # API 30 s; both stop by themselves well within it (exit 0, not SIGKILL's 137).
        ids = {row["Service"]: row["ID"] for row in services(env)}
        grace = {name: json.loads(sh(["docker", "inspect", ids[name]], env).stdout)[0]["Config"].get("StopTimeout")
                 for name in ("crawler", "api")}
        assert grace == {"crawler": 120, "api": 30}
        since = str(int(time.time()) - 1)
        stopping = time.monotonic()
        result = down(env)
        measured["prod_down_seconds"] = round(time.monotonic() - stopping, 1)
        assert result.returncode == 0, result.stderr
        events = sh(["docker", "events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "event=die", "--format", "{{json .Actor.Attributes}}"], env).stdout
        exits = {attrs.get("com.docker.compose.service"): attrs.get("exitCode")
                 for attrs in map(json.loads, events.splitlines()) if attrs.get("com.docker.compose.service")}
        assert exits.get("crawler") == "0" and exits.get("api") == "0", exits
        measured["prod_down_exit_codes"] = exits
    finally:
        # the run containers first: they hold the named volume that `down -v` removes
        remove_run_containers(env)
        down(crawler_node)
        down(env)
        save_measurements()
