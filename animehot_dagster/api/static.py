"""Like the original server: a built single-page frontend served from ``/`` when STATIC_DIR is
set (a file when the path names one, else its ``index.html`` so client-side routes load), and
CORS for a browser app on another origin when ENABLE_CORS=true. The API and ``/health`` are
unchanged: an unknown ``/api/…`` path is still the 404 envelope."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import FileResponse

API_PREFIXES = ("api/", "health")
INDEX = "index.html"


def add_cors(app: FastAPI) -> None:
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"],
                       expose_headers=["Content-Length"], max_age=600)


def add_frontend(app: FastAPI, static_dir: str) -> None:
    """After every API route: ``GET /{path}`` answers from ``static_dir``."""
    root = Path(static_dir).resolve()

    @app.get("/{path:path}", include_in_schema=False)
    async def frontend(request: Request, path: str):
        if path == "api" or path.startswith(API_PREFIXES):
            raise StarletteHTTPException(404)
        if path:
            wanted = (root / path).resolve()
            if wanted.is_relative_to(root) and wanted.is_file():
                return FileResponse(wanted)
        return FileResponse(root / INDEX, headers={"Cache-Control": "no-cache"})
