"""deploy/dagster/*.yaml: real Dagster instances on a real MySQL database, configured from the
environment variables the compose files set."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_docker import DockerRunLauncher

from animehot_dagster_tests.conftest import MYSQL_SERVER_URL
from animehot_dagster_tests.deploy.tools import REPO


@pytest.fixture
def dagster_env(monkeypatch) -> Iterator[None]:
    """An empty database for Dagster's storage, named by the variables the compose files set."""
    name = f"animehot_dagster_cfg_{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(MYSQL_SERVER_URL)
    server = sa.create_engine(url)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    for variable, value in {
        "MYSQL_HOST": url.host or "127.0.0.1", "MYSQL_PORT": str(url.port or 3306), "MYSQL_USER": url.username,
        "MYSQL_PASSWORD": url.password or "", "DAGSTER_MYSQL_DATABASE": name,
    }.items():
        monkeypatch.setenv(variable, value)
    try:
        yield
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def instance_from(variant: str, tmp_path) -> DagsterInstance:
    shutil.copy(REPO / f"deploy/dagster/dagster.{variant}.yaml", tmp_path / "dagster.yaml")
    return DagsterInstance.from_config(str(tmp_path))


def test_deploy_instances_keep_the_projects_run_queue():
    root = yaml.safe_load((REPO / "dagster.yaml").read_text())
    for variant in ("dev", "prod"):
        deployed = yaml.safe_load((REPO / f"deploy/dagster/dagster.{variant}.yaml").read_text())
        assert {k: v for k, v in deployed.items() if k not in {"storage", "run_launcher"}} == {
            k: v for k, v in root.items() if k != "storage"
        }, variant


@pytest.mark.parametrize(("variant", "launcher"), [("dev", "DefaultRunLauncher"), ("prod", "DockerRunLauncher")])
def test_instance_stores_runs_in_mysql_with_the_queued_coordinator(dagster_env, tmp_path, variant, launcher):
    with instance_from(variant, tmp_path) as instance:
        assert instance.get_runs() == []
        assert type(instance.run_storage).__name__ == "MySQLRunStorage"
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        limits = {limit["key"]: limit for limit in coordinator.get_run_queue_config().tag_concurrency_limits}
        assert limits["ip_id"] == {"key": "ip_id", "limit": 1, "value": {"applyLimitPerUniqueValue": True}}
        assert limits["animehot/ingest"] == {"key": "animehot/ingest", "value": "batch", "limit": 1}
        assert type(instance.run_launcher).__name__ == launcher


def test_prod_run_containers_join_the_network_with_the_run_environment(dagster_env, tmp_path):
    with instance_from("prod", tmp_path) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["animehot"]
        storage_variables = {"MYSQL_HOST", "MYSQL_PORT", "MYSQL_USER", "MYSQL_PASSWORD", "DAGSTER_MYSQL_DATABASE"}
        assert storage_variables | {"REDIS_HOST", "REDIS_PASSWORD"} <= set(launcher.env_vars)
        assert launcher.container_kwargs["healthcheck"] == {"test": ["NONE"]}
        assert launcher.container_kwargs["log_config"] == {
            "type": "json-file", "config": {"max-size": "10m", "max-file": "3"},
        }
