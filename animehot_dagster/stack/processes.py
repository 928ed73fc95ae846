"""Processes of a local system: each in its own session and log, stopped in reverse order.

Every piece runs as its own process, as a deployment runs them, so that ``make demo``, the
grayscale stack, the end-to-end test and the Dagster benchmark exercise the real entry points.
Each child gets its own session: a Ctrl-C in the terminal reaches only the launcher, which then
stops the children in order (the crawler first returns its task, the API drains its requests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

STOP_TIMEOUT = 20


class ServiceExited(RuntimeError):
    """A process of the system exited while the system was meant to run."""


class CommandFailed(RuntimeError):
    """A one-off command of the stack (a migration, an import) exited non-zero."""


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free on 127.0.0.1, else a port the kernel picks."""
    for port in ((preferred,) if preferred else ()) + (0,):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError("no free port")


@dataclasses.dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def exit_report(self) -> str:
        return f"{self.name} exited with {self.process.returncode}; last lines of {self.log}:\n{self.tail()}"

    def logged(self, text: str) -> bool:
        try:
            return text in self.log.read_text(errors="replace")
        except OSError:
            return False


class Stack:
    """Started processes, their logs in ``workdir``; ``stop`` ends them newest first."""

    def __init__(self, workdir: Path, env: dict[str, str], cwd: Path | None = None) -> None:
        self.workdir = workdir
        self.env = env
        self.cwd = cwd
        self.services: list[Service] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Service:
        """Start ``args`` with the stack's environment, ``env`` added for this process only."""
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(args), cwd=self.cwd, env={**self.env, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        service = Service(name, process, log)
        self.services.append(service)
        return service

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a command to completion; raise with its output when it fails."""
        result = subprocess.run(
            list(args), check=False, cwd=self.cwd, env=self.env, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise CommandFailed(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def exited(self) -> list[Service]:
        return [service for service in self.services if service.process.poll() is not None]

    def check_alive(self) -> None:
        for service in self.exited():
            raise ServiceExited(service.exit_report())

    def wait_for_log(self, service: Service, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not service.logged(text):
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service.name} did not log {text!r} within {timeout:.0f} s:\n{service.tail()}")
            time.sleep(0.5)

    def stop(self, timeout: float = STOP_TIMEOUT, on_stop=None) -> None:
        for service in reversed(self.services):
            if on_stop is not None:
                on_stop(service)
            terminate(service.process, timeout)
        # Dagster runs are started by the code server in processes of their own; any left behind
        # (a run still going when its server stopped) carries this stack's DAGSTER_HOME.
        home = self.env.get("DAGSTER_HOME")
        if home:
            for pid in pids_with_env("DAGSTER_HOME", home):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def terminate(process: subprocess.Popen, timeout: float = STOP_TIMEOUT, first_signal: int = signal.SIGTERM) -> None:
    """``first_signal`` to the process group, SIGKILL after ``timeout``."""
    if process.poll() is None:
        for sig, wait in ((first_signal, timeout), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    # The group may outlive its leader (a run process, Chromium): finish it off.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def pids_with_env(name: str, value: str) -> list[int]:
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class StopRequest:
    """The first SIGINT/SIGTERM asks for a clean end; a second one also skips the drain."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hurry = threading.Event()

    def __call__(self, signum, frame) -> None:
        if self.requested.is_set():
            self.hurry.set()
        self.requested.set()

    @contextlib.contextmanager
    def installed(self):
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
