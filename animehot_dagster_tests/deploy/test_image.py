"""deploy/Dockerfile without a Docker engine: what its build context holds and what its
``pip install`` of that context installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile

from animehot_dagster_tests.deploy.tools import REPO

DOCKERFILE = REPO / "deploy/Dockerfile"


def copied_sources() -> list[str]:
    """The build-context paths of every COPY (none copies from another stage)."""
    return [source for line in DOCKERFILE.read_text().splitlines()
            if (match := re.match(r"COPY\s+(\S+)\s+\S+$", line)) for source in [match.group(1)]]


def test_the_build_context_keeps_what_the_dockerfile_copies():
    kept = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    sources = copied_sources()
    # the app and the crawler stages each copy the package (the crawler's Chromium goes first)
    assert sources == ["setup.py", "animehot_dagster", "dg.toml", "deploy/workspace.grpc.yaml", "animehot_dagster"]
    assert set(sources) <= kept
    assert all((REPO / source).exists() for source in sources)


def test_pip_install_of_the_context_ships_every_file_of_the_package(tmp_path):
    """The images install the package, not the checkout: a file that setup.py leaves out of the
    wheel (a migration, a scenario) is missing in every container."""
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(REPO / "setup.py", context)
    shutil.copytree(REPO / "animehot_dagster", context / "animehot_dagster",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheel").glob("animehot_dagster-*.whl")
    installed = set(zipfile.ZipFile(wheel).namelist())
    package = {path.relative_to(context).as_posix() for path in (context / "animehot_dagster").rglob("*")
               if path.is_file()}
    assert sorted(package - installed) == []
