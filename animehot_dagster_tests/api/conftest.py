"""Fixtures of the API tests: data put in MySQL by the real ingest path, a bytes Redis client,
the app on a TestClient that checks every answer against the wire contract, and a real uvicorn
server on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import uvicorn

from animehot_dagster.api.app import create_app
from animehot_dagster.settings import load_settings
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster_tests.api.contract_check import ContractClient
from animehot_dagster_tests.factories import T0, make_ips, on_sale, response, sold

# Three crawls an hour apart: a baseline at 09:00 JST, then movement at 10:00 and 11:00.
NOW = T0 + timedelta(hours=3, minutes=10)


def seed_market(engine) -> dict[str, int]:
    """IPs with hourly figures, items and alerts, all written by storage.ingest.apply."""
    calm, busy, idle = make_ips(engine, "鬼滅の刃", "ちいかわ", "初音ミク")
    config = IngestConfig()
    base_calm = [on_sale(f"m1{i:04d}", 1000 + i) for i in range(40)]
    base_busy = [on_sale(f"m2{i:04d}", 500 + i) for i in range(80)]
    for ip, items in ((calm, base_calm), (busy, base_busy), (idle, [on_sale("m30000")])):
        apply(engine, response(ip, T0, items), config, now=T0)
    # calm: 100 new listings, 5 sales → low liquidity (info)
    second = T0 + timedelta(hours=1)
    calm_items = base_calm[5:] + [sold(i.source_id, i.price) for i in base_calm[:5]] + \
        [on_sale(f"m1{i:04d}", 2000) for i in range(100, 200)]
    apply(engine, response(calm, second, calm_items), config, now=second)
    # busy: 60 sold, 10 new → high outflow (warning) and surge (critical)
    busy_items = [sold(i.source_id, i.price) for i in base_busy[:60]] + base_busy[60:] + \
        [on_sale(f"m2{i:04d}", 700) for i in range(100, 110)]
    apply(engine, response(busy, second, busy_items), config, now=second)
    third = T0 + timedelta(hours=2)
    apply(engine, response(calm, third, calm_items + [sold("m10100", 2000)]), config, now=third)
    return {"calm": calm, "busy": busy, "idle": idle}


@pytest.fixture
def settings():
    return load_settings({"ADMIN_API_KEY": "s3cret", "AUTO_MIGRATE": "false"})


@pytest.fixture
def market(mysql_engine) -> dict[str, int]:
    return seed_market(mysql_engine)


@pytest.fixture
def app(settings, mysql_engine, queue_redis, market):
    return create_app(settings, mysql_engine, queue_redis, clock=lambda: NOW)


@pytest.fixture
def client(app) -> Iterator[ContractClient]:
    """Every answer it receives is checked against the wire contract."""
    with ContractClient(app) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on a free port in a thread (a real socket)."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
