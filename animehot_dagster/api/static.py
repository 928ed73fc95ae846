"""The pages of the API process: by default the packaged dashboard (``api/dashboard/``, plain ES
modules, no build step) from ``/``; like the original server, a built single-page frontend from
``/`` instead when STATIC_DIR is set (a file when the path names one, else its ``index.html`` so
client-side routes load); and CORS for a browser app on another origin when ENABLE_CORS=true.
The API and ``/health`` are unchanged: an unknown ``/api/…`` path is still the 404 envelope.

The dashboard's links to the Dagster UI, Grafana and the metrics come from DASHBOARD_LINKS
(``Label=URL`` pairs, comma-separated); they are written into its ``index.html`` when it is
served, so the page needs no request for them."""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse

from animehot_dagster.settings import SettingsError

API_PREFIXES = ("api/", "health")
INDEX = "index.html"
DASHBOARD_DIR = Path(__file__).with_name("dashboard")
CONFIG_MARK = '<script type="application/json" id="dashboard-config">{}</script>'


def add_cors(app: FastAPI) -> None:
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"],
                       expose_headers=["Content-Length"], max_age=600)


def dashboard_links(text: str) -> list[dict[str, str]]:
    """``Dagster UI=http://host:3000,Grafana=http://host:3001`` as ``[{"label", "url"}]``;
    a malformed entry stops the process naming DASHBOARD_LINKS."""
    links = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        label, _, url = entry.partition("=")
        label, url = label.strip(), url.strip()
        if not label or urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).netloc:
            raise SettingsError(f"DASHBOARD_LINKS: {entry!r} is not Label=http(s)://host/…")
        links.append({"label": label, "url": url})
    return links


def _dashboard_index(root: Path, links: list[dict[str, str]]) -> str:
    text = (root / INDEX).read_text(encoding="utf-8")
    config = json.dumps({"links": links}, ensure_ascii=False).replace("<", "\\u003c").replace("&", "\\u0026")
    return text.replace(CONFIG_MARK, CONFIG_MARK.replace("{}", config))


def add_frontend(app: FastAPI, static_dir: str | Path = "", links: list[dict[str, str]] | None = None) -> None:
    """After every API route: ``GET /{path}`` answers from ``static_dir``, or from the packaged
    dashboard when it is empty."""
    packaged = not static_dir
    root = (DASHBOARD_DIR if packaged else Path(static_dir)).resolve()
    index = _dashboard_index(root, links or []) if packaged else None
    no_cache = {"Cache-Control": "no-cache"}

    @app.get("/{path:path}", include_in_schema=False)
    async def frontend(request: Request, path: str):
        if path == "api" or path.startswith(API_PREFIXES):
            raise StarletteHTTPException(404)
        if path:
            wanted = (root / path).resolve()
            if wanted.is_relative_to(root) and wanted.is_file():
                return FileResponse(wanted, headers=no_cache if packaged else None)
        if index is not None:
            # The dashboard's URLs are relative to its root, also when a client-side path loaded it.
            base = html.escape(request.scope.get("root_path", "").rstrip("/") + "/")
            return HTMLResponse(index.replace("<head>", f'<head>\n<base href="{base}">', 1), headers=no_cache)
        return FileResponse(root / INDEX, headers=no_cache)
