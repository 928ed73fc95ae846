"""Servers of one run alone (a test, the chaos harness bench/chaos.py), that it may stop, restart
or hang (SIGSTOP) without touching the shared MariaDB on 3306 and Redis on 6379 that everyone
else uses."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import redis

from animehot_dagster.stack.processes import free_port, terminate


class PrivateRedis:
    """A redis-server on a free port, restartable on the same port."""

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=1).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, timeout=5)
            self.process = None


class PrivateMariaDB:
    """A second mariadbd with its own datadir on a free port (no grant tables: root, any host).

    Its directory is a fresh one under /tmp, not pytest's tmp_path: mariadbd runs as ``mysql``,
    which may not enter root's private pytest directories. ``remove`` deletes it.
    """

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="animehot-mariadb-"))
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "mysql", "mysql")
        self.datadir = self.workdir / "data"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def server_url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def start(self) -> None:
        if not self.datadir.exists():
            subprocess.run(
                ["mariadb-install-db", f"--datadir={self.datadir}", "--user=mysql", "--skip-test-db",
                 "--auth-root-authentication-method=normal"],
                check=True, capture_output=True, timeout=120,
            )
        log = (self.workdir / "mariadbd.log").open("ab")
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={self.datadir}",
             f"--socket={self.workdir / 'mariadbd.sock'}", f"--pid-file={self.workdir / 'mariadbd.pid'}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-log-bin",
             "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=16M"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1, read_timeout=2).close()
                return
            except pymysql.err.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"private mariadbd did not start: {(self.workdir / 'mariadbd.log').read_text()}") from None
                time.sleep(0.2)

    def create_database(self, name: str) -> str:
        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4")
        finally:
            connection.close()
        return f"{self.server_url}/{name}?charset=utf8mb4"

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """The server stopped dead (SIGSTOP): connections open, nothing answers; SIGCONT after."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)
            terminate(self.process, timeout=30)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
