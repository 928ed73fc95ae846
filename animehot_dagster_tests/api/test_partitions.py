"""The API keeps Dagster's ``ip`` partitions in step with the catalog on a real instance."""

from __future__ import annotations

import dagster as dg
from fastapi.testclient import TestClient

from animehot_dagster.api.app import DagsterPartitions, create_app
from animehot_dagster_tests.api.conftest import NOW


def test_create_pause_resume_and_delete_move_the_ip_partition(settings, mysql_engine, queue_redis, tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    app = create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW, partitions=DagsterPartitions())
    instance = dg.DagsterInstance.get()
    with TestClient(app) as client:
        created = client.post("/api/v1/ips", json={"name": "葬送のフリーレン"})
        assert created.status_code == 201, created.text
        ip = str(created.json()["data"]["id"])
        assert instance.get_dynamic_partitions("ip") == [ip]

        assert client.put(f"/api/v1/ips/{ip}", json={"status": "paused"}).status_code == 200
        assert instance.get_dynamic_partitions("ip") == []
        assert client.put(f"/api/v1/ips/{ip}", json={"status": "active"}).status_code == 200
        assert instance.get_dynamic_partitions("ip") == [ip]

        assert client.delete(f"/api/v1/ips/{ip}").status_code == 200
        assert instance.get_dynamic_partitions("ip") == []
