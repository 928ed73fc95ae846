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


@dataclasses.dataclass(eq=False)
class Service:
    name: str
    process: subprocess.Popen
    log: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None  # added to the stack's environment for this process only
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    restarts: int = 0
    stopped: bool = False  # stopped on purpose: not to be restarted

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
        service = Service(name, self._spawn(args, env, log), log, args=tuple(args), env=env)
        self.services.append(service)
        return service

    def restart(self, service: Service) -> None:
        """Start ``service`` again, as it was started, its output appended to the same log; the
        new process replaces the dead one in ``service`` (so ``stop`` ends the new one)."""
        if service.process.poll() is None:
            raise RuntimeError(f"{service.name} is still running (pid {service.process.pid})")
        service.restarts += 1
        with service.log.open("ab") as out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            out.write(f"--- {stamp} restart #{service.restarts} of {service.name} by the supervisor "
                      f"(the previous process exited with {service.process.returncode}) ---\n".encode())
        service.process = self._spawn(service.args, service.env, service.log)
        service.started_at = time.monotonic()

    def _spawn(self, args, env: dict[str, str] | None, log: Path) -> subprocess.Popen:
        with log.open("ab") as out:
            return subprocess.Popen(
                list(args), cwd=self.cwd, env={**self.env, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

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
        for service in self.services:  # first, so that no supervisor brings one back meanwhile
            service.stopped = True
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


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
    """Compose's ``restart: unless-stopped`` with Docker's backoff: a piece that exits is started
    again after ``first_delay``, the delay doubling with each restart up to ``max_delay``; a
    piece that then stays up for ``reset_after`` starts over from ``first_delay``."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    reset_after: float = 60.0

    def delay(self, consecutive: int) -> float:
        """The wait before restart number ``consecutive`` (0: the first since the piece was up)."""
        return min(self.max_delay, self.first_delay * 2 ** min(consecutive, 30))


class Supervisor:
    """Restarts the pieces of a :class:`Stack` that die, with :class:`RestartPolicy` backoff,
    and reports each death and each restart through ``log``. Call :meth:`poll` often (every
    second or so); it returns the services it restarted. A piece stopped by ``Stack.stop`` is
    never restarted."""

    def __init__(self, stack: Stack, log=print, policy: RestartPolicy | None = None) -> None:
        self.stack = stack
        self.log = log
        self.policy = policy or RestartPolicy()
        self._due: dict[int, float] = {}  # id(service) -> when its restart is due
        self._consecutive: dict[int, int] = {}  # id(service) -> restarts since it was last up long

    def poll(self) -> list[Service]:
        now = time.monotonic()
        restarted = []
        for service in list(self.stack.services):
            key = id(service)
            if service.stopped:
                self._due.pop(key, None)
                continue
            if service.process.poll() is None:
                if now - service.started_at >= self.policy.reset_after:
                    self._consecutive.pop(key, None)
                continue
            if key not in self._due:
                delay = self.policy.delay(self._consecutive.get(key, 0))
                self._due[key] = now + delay
                self.log(f"ERROR: {service.exit_report()}\nrestarting {service.name} in {delay:g} s "
                         f"(restart #{service.restarts + 1})")
                continue
            if now < self._due[key]:
                continue
            del self._due[key]
            self._consecutive[key] = self._consecutive.get(key, 0) + 1
            try:
                self.stack.restart(service)
            except OSError as exc:  # the binary went away, the directory is gone: try again later
                self.log(f"ERROR: could not restart {service.name}: {exc}")
                continue
            self.log(f"restarted {service.name} (pid {service.process.pid}, restart #{service.restarts})")
            restarted.append(service)
        return restarted


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
