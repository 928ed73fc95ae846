"""Screenshots of the dashboard (docs/dashboard/*.png) over real ingested data, and its timings.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/dashboard] [--database-url URL]

Builds the browser tests' market (``animehot_dagster_tests/api/dashboard_market.py``: six IPs of
the simulated market crawled every three hours for eight and a half days, applied by the real result processor,
rolled up), in an embedded SQLite database and a private redis-server on a free port unless
--database-url names a migrated database; serves the API (and so the dashboard) with uvicorn on a
free port, its clock at the data's end; and photographs each page in headless Chromium, desktop
(1280 px) and phone (375 px). The simulated listings' thumbnails point at Mercari's image CDN,
which is not reachable here: they are drawn as placeholder tiles.

It also prints, per page, the first contentful paint and the API requests the page made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

import redis
from playwright.sync_api import Route, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from animehot_dagster.api.app import create_app  # noqa: E402
from animehot_dagster.settings import load_settings  # noqa: E402
from animehot_dagster.storage.db import create_engine  # noqa: E402
from animehot_dagster.storage.migrate import migrate  # noqa: E402
from animehot_dagster_tests.api.conftest import LiveServer  # noqa: E402
from animehot_dagster_tests.api.dashboard_market import NOW, build, private_redis  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--font-render-hinting=none"]
IMAGE_HOSTS = re.compile(r"^https://(static\.mercdn\.net|assets\.mercari-shops-static\.com)/")
LINKS = "Dagster UI=http://127.0.0.1:3000,Grafana=http://127.0.0.1:3001,Metrics=http://127.0.0.1:2112/metrics"
WAIT_MS = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def placeholder(route: Route) -> None:
    """A tile coloured by the listing's id, standing in for its photo."""
    digest = hashlib.sha256(route.request.url.encode()).digest()
    hue = digest[0] * 360 // 256
    body = (f'<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240">'
            f'<rect width="240" height="240" fill="hsl({hue},45%,78%)"/>'
            f'<circle cx="120" cy="104" r="46" fill="hsl({hue},40%,62%)"/>'
            f'<rect x="52" y="168" width="136" height="22" rx="11" fill="hsl({hue},40%,62%)"/></svg>')
    route.fulfill(status=200, content_type="image/svg+xml", body=body)


PAGES = [
    ("leaderboard", "#/leaderboard?type=hot&hours=24"),
    ("leaderboard-7d-outflow", "#/leaderboard?type=outflow&hours=168"),
    ("ip", "#/ip/{ip}?hours=24"),
    ("ip-7d", "#/ip/{ip}?hours=168"),
    ("alerts", "#/alerts"),
    ("system", "#/system"),
]
PHONE = [("leaderboard-375", "#/leaderboard?type=hot&hours=2"), ("ip-375", "#/ip/{ip}?hours=24")]


def shoot(base_url: str, ip_id: int, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=30_000)
        for shots, viewport in ((PAGES, {"width": 1280, "height": 900}), (PHONE, {"width": 375, "height": 812})):
            context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="UTC",
                                          device_scale_factor=1 if viewport["width"] > 400 else 2)
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.on("request", lambda r, requests=requests: requests.append(r.url)
                    if "/api/" in r.url or r.url.endswith("/health") else None)
            page.route(IMAGE_HOSTS, placeholder)
            for name, route in shots:
                route = route.format(ip=ip_id)
                requests.clear()
                page.goto("about:blank")
                started = time.perf_counter()
                page.goto(f"{base_url}/{route}")
                page.wait_for_selector(f'main[data-state="ready"][data-route="{route}"]', timeout=WAIT_MS)
                page.wait_for_function("() => !document.querySelector('.spark-cell .pending')", timeout=WAIT_MS)
                ready_ms = (time.perf_counter() - started) * 1000
                paint = page.evaluate("() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime")
                # let the lazy thumbnails load before the picture is taken
                page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
                page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=WAIT_MS)
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                timings[name] = {"first_contentful_paint_ms": round(paint or -1), "data_ready_ms": round(ready_ms),
                                 "api_requests": len(requests)}
                print(f"{name:24s} FCP {paint:6.0f} ms · data on the page {ready_ms:6.0f} ms · "
                      f"{len(requests):2d} API requests", file=sys.stderr)
            if errors:
                sys.exit(f"console errors: {errors}")
            context.close()
        browser.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard"))
    parser.add_argument("--database-url", default="", help="a migrated database (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, private_redis() as redis_url:
        url = args.database_url or f"sqlite:///{tmp}/dashboard.sqlite3"
        engine = create_engine(url)
        if not args.database_url:
            migrate(engine)
        client = redis.Redis.from_url(redis_url)
        started = time.perf_counter()
        built = build(engine, client)
        print(f"market built: {built.crawls} crawls applied in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        settings = load_settings({"AUTO_MIGRATE": "false", "ADMIN_API_KEY": "screenshots", "DASHBOARD_LINKS": LINKS})
        with LiveServer(create_app(settings, engine, client, clock=lambda: NOW)) as live:
            timings = shoot(live.url, built.ids["ちいかわ"], Path(args.out))
        client.close()
        engine.dispose()
    print(json.dumps(timings, indent=2))


if __name__ == "__main__":
    main()
