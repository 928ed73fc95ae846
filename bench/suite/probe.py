"""The machine a run measures on: CPU, cores, RAM, kernel, OS, Python, and the MariaDB, Redis
and Dagster versions."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine(args: argparse.Namespace) -> dict:
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal")),
                  None)
    os_name = next((line.split("=", 1)[1].strip().strip('"') for line in _read("/etc/os-release").splitlines()
                    if line.startswith("PRETTY_NAME=")), platform.system())
    info = {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1) if mem_kb else None,
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "mariadb": None,
        "redis": None,
    }
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(args.server_url)
        with engine.connect() as connection:
            info["mariadb"] = str(connection.execute(sa.text("SELECT VERSION()")).scalar_one())
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        info["mariadb"] = f"unreachable: {exc}"
    try:
        import redis

        client = redis.Redis.from_url(args.redis_url, socket_connect_timeout=5)
        info["redis"] = client.info("server")["redis_version"]
        client.close()
    except Exception as exc:  # noqa: BLE001
        info["redis"] = f"unreachable: {exc}"
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["dagster"] = version("dagster")
    return info
