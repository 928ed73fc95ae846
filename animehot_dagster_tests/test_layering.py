"""The layering of ARCHITECTURE.md, read from the source: no import points against it.

The inner layers (domain, storage, queue, crawler) never import the adapters built on them (the
HTTP API, the Dagster code), the crawler never imports storage (nodes never touch MySQL), and
domain imports nothing of the package but domain and no I/O library. Imports inside functions
count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

import animehot_dagster

PACKAGE = pathlib.Path(animehot_dagster.__file__).parent
ADAPTERS = ("animehot_dagster.api", "animehot_dagster.defs", "animehot_dagster.definitions")
FORBIDDEN = {
    "storage": ADAPTERS,
    "queue": ADAPTERS,
    "crawler": (*ADAPTERS, "animehot_dagster.storage"),
}
IO_LIBRARIES = {
    "aiohttp", "aiomysql", "asyncio", "dagster", "fastapi", "http", "httpx", "MySQLdb", "os", "pathlib",
    "playwright", "prometheus_client", "pymysql", "redis", "requests", "shutil", "socket", "sqlalchemy",
    "sqlite3", "ssl", "starlette", "subprocess", "urllib", "urllib3", "uvicorn",
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) for every module ``path`` imports; ``from a import b`` names both ``a`` and
    ``a.b``, since ``b`` may be a submodule."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(layer: str, rule) -> list[str]:
    """``path:line imports module`` for every import in ``layer`` that ``rule`` refuses."""
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no modules found in {layer}/"
    return [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
            for path in files for line, module in imported_modules(path) if rule(module)]


def refused_in(layer: str):
    return lambda module: any(within(module, prefix) for prefix in FORBIDDEN[layer])


def outside_the_pure_core(module: str) -> bool:
    if within(module, "animehot_dagster"):
        return not within(module, "animehot_dagster.domain")
    return module.partition(".")[0] in IO_LIBRARIES


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_inner_layers_do_not_import_the_layers_built_on_them(layer):
    assert violations(layer, refused_in(layer)) == []


def test_domain_imports_only_domain_and_no_io_library():
    assert violations("domain", outside_the_pure_core) == []


def test_the_scan_catches_every_form_of_import(tmp_path, monkeypatch):
    # A scan that saw nothing would pass whatever the code imports: each form must be caught.
    layer = tmp_path / "animehot_dagster" / "queue"
    layer.mkdir(parents=True)
    (layer / "probe.py").write_text(
        "import animehot_dagster.api.cache\n"
        "from animehot_dagster import defs\n"
        "from ..api.cache import invalidate_after_crawl\n"
        "def later():\n"
        "    from animehot_dagster.definitions import defs\n"
    )
    domain = tmp_path / "animehot_dagster" / "domain"
    domain.mkdir()
    (domain / "probe.py").write_text(
        "import json\n"
        "from animehot_dagster.domain.timebuckets import JST\n"
        "import redis.asyncio\n"
        "from animehot_dagster.storage import ingest\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "animehot_dagster")
    assert violations("domain", outside_the_pure_core) == [
        "animehot_dagster/domain/probe.py:3 imports redis.asyncio",
        "animehot_dagster/domain/probe.py:4 imports animehot_dagster.storage",
        "animehot_dagster/domain/probe.py:4 imports animehot_dagster.storage.ingest",
    ]
    assert violations("queue", refused_in("queue")) == [
        "animehot_dagster/queue/probe.py:1 imports animehot_dagster.api.cache",
        "animehot_dagster/queue/probe.py:2 imports animehot_dagster.defs",
        "animehot_dagster/queue/probe.py:3 imports animehot_dagster.api.cache",
        "animehot_dagster/queue/probe.py:3 imports animehot_dagster.api.cache.invalidate_after_crawl",
        "animehot_dagster/queue/probe.py:5 imports animehot_dagster.definitions",
        "animehot_dagster/queue/probe.py:5 imports animehot_dagster.definitions.defs",
    ]
