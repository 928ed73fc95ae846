"""The compose files, validated and resolved by the real Compose v2 (no Docker engine needed)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from animehot_dagster_tests.deploy.tools import REPO, compose, compose_model

ALLOY_ENV = {"ALLOY_ENV_FILE": "deploy/env/alloy.env.example"}
PROD = {"env_file": "deploy/env/prod.env.example", "env": ALLOY_ENV}
CRAWLER_NODE = {"env_file": "deploy/env/crawler.env.example", "env": ALLOY_ENV}
LOGGING = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}


@pytest.mark.parametrize(
    ("file", "kwargs"),
    [
        ("docker-compose.yml", {}),
        ("docker-compose.yml", {"env_file": "deploy/env/simulator.env"}),
        ("docker-compose.prod.yml", PROD),
        ("docker-compose.prod.yml", {**PROD, "profiles": ("monitoring", "vpn")}),
        ("docker-compose.crawler.yml", CRAWLER_NODE),
    ],
)
def test_compose_file_is_valid(file, kwargs):
    result = compose(file, "config", "-q", **kwargs)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("file", "example", "missing"),
    [
        *[("docker-compose.prod.yml", "deploy/env/prod.env.example", name) for name in (
            "MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "REDIS_PASSWORD", "ADMIN_API_KEY", "DOCKER_GID", "TLS_DIR",
            "DAGSTER_HTPASSWD_FILE")],
        *[("docker-compose.crawler.yml", "deploy/env/crawler.env.example", name) for name in (
            "REDIS_HOST", "REDIS_PASSWORD", "ALLOY_NODE")],
    ],
)
def test_a_missing_secret_stops_compose_naming_it(tmp_path, file, example, missing):
    lines = (REPO / example).read_text().splitlines()
    without = [line for line in lines if not line.startswith(f"{missing}=")]
    assert len(without) == len(lines) - 1, f"{example} does not set {missing}"
    env_file = tmp_path / "without.env"
    env_file.write_text("\n".join(without) + "\n")
    result = compose(file, "config", "-q", env_file=str(env_file), env=ALLOY_ENV)
    assert result.returncode != 0
    assert f"required variable {missing} is missing" in result.stderr


def test_prod_keeps_mysql_and_redis_off_the_host():
    services = compose_model("docker-compose.prod.yml", **PROD, profiles=("monitoring",))["services"]
    assert "ports" not in services["mysql"]
    assert "ports" not in services["redis"]
    published = {name: [p["published"] for p in s.get("ports", [])] for name, s in services.items()}
    assert {name for name, ports in published.items() if ports} == {"nginx"}
    assert sorted(published["nginx"]) == ["443", "80"]


def test_prod_redis_for_remote_crawlers_binds_only_the_vpn_address():
    services = compose_model("docker-compose.prod.yml", **PROD, profiles=("vpn",))["services"]
    (port,) = services["redis-vpn"]["ports"]
    assert (port["host_ip"], port["published"]) == ("100.64.0.1", "6379")
    assert services["redis-vpn"]["profiles"] == ["vpn"]


def test_prod_redis_has_a_password_and_an_append_only_file():
    redis = compose_model("docker-compose.prod.yml", **PROD)["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--requirepass" in command
    assert redis["environment"]["REDIS_PASSWORD"] == "change-me-redis"


def test_prod_every_service_logs_to_rotated_json_files():
    services = compose_model("docker-compose.prod.yml", **PROD, profiles=("monitoring", "vpn"))["services"]
    assert {name: s.get("logging") for name, s in services.items()} == {name: LOGGING for name in services}


@pytest.mark.parametrize(("file", "kwargs"), [("docker-compose.yml", {}), ("docker-compose.crawler.yml", CRAWLER_NODE)])
def test_every_service_logs_to_rotated_json_files(file, kwargs):
    services = compose_model(file, **kwargs)["services"]
    assert {name: s.get("logging") for name, s in services.items()} == {name: LOGGING for name in services}


@pytest.mark.parametrize(
    ("file", "kwargs"),
    [("docker-compose.yml", {}), ("docker-compose.prod.yml", PROD), ("docker-compose.crawler.yml", CRAWLER_NODE)],
)
def test_crawlers_get_two_minutes_to_stop(file, kwargs):
    crawler = compose_model(file, **kwargs)["services"]["crawler"]
    assert crawler["stop_grace_period"] == "2m0s"
    assert crawler["init"] is True


def test_prod_alloy_runs_only_in_the_monitoring_profile():
    assert "alloy" not in compose_model("docker-compose.prod.yml", **PROD)["services"]
    services = compose_model("docker-compose.prod.yml", **PROD, profiles=("monitoring",))["services"]
    assert services["alloy"]["profiles"] == ["monitoring"]
    assert [name for name, s in services.items() if s.get("profiles")] == ["alloy"]
    assert services["alloy"]["environment"]["PROMETHEUS_REMOTE_WRITE_URL"].startswith("https://")


def test_prod_dagster_launches_runs_in_containers_on_the_named_network_and_volume():
    model = compose_model("docker-compose.prod.yml", **PROD)
    launcher = yaml.safe_load((REPO / "deploy/dagster/dagster.prod.yaml").read_text())["run_launcher"]["config"]
    assert model["networks"]["default"]["name"] == launcher["network"]
    volume, path = launcher["container_kwargs"]["volumes"][0].split(":")
    assert model["volumes"]["dagster-storage"]["name"] == volume
    services = model["services"]
    mounts = {m["source"]: m["target"] for m in services["dagster-webserver"]["volumes"]}
    assert mounts["dagster-storage"] == path
    assert mounts["/var/run/docker.sock"] == "/var/run/docker.sock"
    assert services["dagster-daemon"]["group_add"] == ["999"]
    assert services["dagster-code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == services["api"]["image"]
    daemon_env = services["dagster-daemon"]["environment"]
    assert set(launcher["env_vars"]) <= set(daemon_env), "the launcher forwards variables the daemon lacks"


def test_dev_runs_dagster_on_the_grpc_workspace_and_mysql():
    services = compose_model("docker-compose.yml")["services"]
    assert services["dagster-code"]["command"][:3] == ["dagster", "api", "grpc"]
    for name in ("dagster-daemon", "dagster-webserver"):
        assert "/opt/dagster/workspace.yaml" in services[name]["command"]
        env = services[name]["environment"]
        assert (env["DAGSTER_GRPC_HOST"], env["DAGSTER_GRPC_PORT"]) == ("dagster-code", "4266")
    mounts = {m["target"]: m["source"] for m in services["dagster-daemon"]["volumes"]}
    assert mounts["/opt/dagster/home/dagster.yaml"] == str(REPO / "deploy/dagster/dagster.dev.yaml")
    assert {s["published"] for s in services["dagster-webserver"]["ports"]} == {"3000"}
    assert {s["published"] for s in services["api"]["ports"]} == {"8080", "2112"}


def test_simulator_profile_points_the_crawler_at_the_simulator():
    plain = compose_model("docker-compose.yml")["services"]
    assert "simulator" not in plain
    assert plain["crawler"]["environment"]["MERCARI_API_URL"] == "https://api.mercari.jp"
    simulated = compose_model("docker-compose.yml", env_file="deploy/env/simulator.env")["services"]
    assert simulated["simulator"]["command"][:2] == ["animehot", "simulator"]
    assert simulated["crawler"]["environment"]["MERCARI_WEB_URL"] == "http://simulator:8090"
    assert simulated["crawler"]["environment"]["MERCARI_API_URL"] == "http://simulator:8090"
    assert simulated["crawler"]["depends_on"]["simulator"]["condition"] == "service_healthy"


def test_prod_runs_see_the_analyzer_settings_the_services_see():
    """A run computes cadence and alerts: its container must get the same tunables."""
    import dataclasses

    from animehot_dagster.settings import Settings

    names = {f.metadata["env"] for f in dataclasses.fields(Settings)}
    tunables = {n for n in names if n.startswith(("ANALYZER_", "SCHEDULER_PAGES_")) or n.endswith("_INTERVAL")
                and n.startswith("SCHEDULER_")} | {"PARTITION_RETENTION_DAYS"}
    launcher = yaml.safe_load((REPO / "deploy/dagster/dagster.prod.yaml").read_text())["run_launcher"]["config"]
    assert tunables <= set(launcher["env_vars"]), tunables - set(launcher["env_vars"])
    services = compose_model("docker-compose.prod.yml", **PROD)["services"]
    for service in ("dagster-daemon", "dagster-code", "api"):
        assert tunables <= set(services[service]["environment"]), service


@pytest.mark.parametrize(("file", "kwargs"), [("docker-compose.yml", {}), ("docker-compose.prod.yml", PROD)])
def test_the_api_gets_its_30_seconds_to_drain(file, kwargs):
    assert compose_model(file, **kwargs)["services"]["api"]["stop_grace_period"] == "30s"


# The overrides the container tests bring the stacks up with (deploy/test/compose.*.yml).
TEST_STACKS = [
    ("docker-compose.yml", "deploy/test/compose.dev.yml", {"env_file": "deploy/env/simulator.env"}),
    ("docker-compose.prod.yml", "deploy/test/compose.prod.yml",
     {**PROD, "env": {**ALLOY_ENV, "ANIMEHOT_TEST_DAGSTER_YAML": "/dev/null"}}),
    ("docker-compose.crawler.yml", "deploy/test/compose.crawler.yml", CRAWLER_NODE),
]


@pytest.mark.parametrize(("file", "override", "kwargs"), TEST_STACKS)
def test_the_test_stacks_run_every_service_on_the_host_network_and_publish_nothing(file, override, kwargs):
    result = compose(file, "config", "--format", "json", overrides=(override,), **kwargs)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {name: s.get("network_mode") for name, s in services.items()} == {name: "host" for name in services}
    assert {name: s["ports"] for name, s in services.items() if s.get("ports")} == {}
    assert {name: s["build"].get("network") for name, s in services.items() if "build" in s} == {
        name: "host" for name, s in services.items() if "build" in s}


@pytest.mark.parametrize(("file", "override", "kwargs"), TEST_STACKS[:2])
def test_the_test_stacks_stay_off_the_hosts_own_ports(file, override, kwargs):
    """On the host network a container's port is the host's: none of the host's MySQL, Redis,
    Dagster UI, API or metrics ports (3306, 6379, 3000, 8080, 2112), which the host's own services
    and the other tests use."""
    result = compose(file, "config", "--format", "json", overrides=(override,), **kwargs)
    text = json.dumps(json.loads(result.stdout)["services"])
    for port in ("3306", "6379", "3000", "8080", "2112", "2113", "4266", "8090"):
        assert not re.search(rf"127\.0\.0\.1:{port}\b|--port\", \"{port}\"|_PORT\": \"{port}\"", text), port
