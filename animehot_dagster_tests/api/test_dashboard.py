"""The dashboard at ``/`` in real headless Chromium (Playwright) over a real uvicorn API, on eight
days of a simulated market written by the real ingest path (:mod:`.dashboard_market`): each page
shows its data with no console error, the leaderboard switches window and type, the IP chart has
exactly the hours of the data, acknowledging an alert works with the admin key and sends nothing
without it, and the pages fit a 375 px screen and paint within a second.

Only the thumbnails are served by the test: the simulated listings point at Mercari's image CDN,
which cannot be reached here, so those requests get a placeholder image."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import redis
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, Route, sync_playwright

from animehot_dagster.api.app import create_app
from animehot_dagster.domain.timebuckets import rfc3339_jst
from animehot_dagster.settings import load_settings
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.schema import ip_alerts, ip_stats_hourly
from animehot_dagster_tests.api.conftest import LiveServer
from animehot_dagster_tests.api.dashboard_market import NOW, build, private_redis
from animehot_dagster_tests.conftest import fresh_mysql_database

# Slow (eight and a half simulated days through the real ingest first, 100-130 s on a quiet
# 2-core machine, over 300 s on a loaded one): left out of `make test-fast`.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ADMIN_KEY = "dashboard-s3cret"
LINKS = "Dagster UI=http://127.0.0.1:3000,Grafana=http://127.0.0.1:3001,Metrics=http://127.0.0.1:2112/metrics"
WAIT_MS = 15_000
IMAGE_HOSTS = re.compile(r"^https://(static\.mercdn\.net|assets\.mercari-shops-static\.com)/")
PLACEHOLDER = (b'<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96">'
               b'<rect width="96" height="96" fill="#d0d7de"/></svg>')
LAST_HOUR = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture(scope="module")
def data():
    """The market, built once for the module (~420 crawls through the processor), in a fresh MySQL
    database and a private redis-server."""
    with fresh_mysql_database("animehot_dash") as url, private_redis() as redis_url:
        engine = create_engine(url)
        client = redis.Redis.from_url(redis_url)
        built = build(engine, client)
        yield engine, client, built
        client.close()
        engine.dispose()


@pytest.fixture(scope="module")
def server(data) -> Iterator[LiveServer]:
    engine, client, _ = data
    # APP_ENV=prod: acknowledging an alert needs the admin key (issue 17), as in a deployment.
    settings = load_settings({"APP_ENV": "prod", "ADMIN_API_KEY": ADMIN_KEY, "AUTO_MIGRATE": "false",
                              "DASHBOARD_LINKS": LINKS})
    with LiveServer(create_app(settings, engine, client, clock=lambda: NOW)) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                             timeout=30_000)
        yield browser
        browser.close()


def _placeholder(route: Route) -> None:
    route.fulfill(status=200, content_type="image/svg+xml", body=PLACEHOLDER)


def open_page(browser: Browser, width: int = 1280, height: int = 900) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.route(IMAGE_HOSTS, _placeholder)
    return page, errors


@pytest.fixture
def page(browser) -> Iterator[tuple[Page, list[str]]]:
    page, errors = open_page(browser)
    yield page, errors
    page.context.close()


def ready(page: Page, route: str) -> None:
    """Wait until the view of ``route`` (a hash) has its data on the page."""
    page.wait_for_selector(f'main[data-state="ready"][data-route="{route}"]', timeout=WAIT_MS)


def api(server: LiveServer, path: str, **params) -> dict:
    answer = httpx.get(server.url + path, params=params, timeout=10)
    answer.raise_for_status()
    return answer.json()


def board_rows(page: Page) -> list[dict]:
    return page.eval_on_selector_all("table.board tbody tr", """rows => rows.map(r => ({
        ip: Number(r.dataset.ip), rank: r.querySelector('.rank').textContent,
        name: r.querySelector('.name-ja').textContent, en: r.querySelector('.name-en')?.textContent ?? '',
        cells: [...r.querySelectorAll('td.num')].map(c => c.textContent),
        spark: r.querySelector('svg.spark')?.dataset.hours ?? null,
        quality: r.querySelector('.quality')?.textContent ?? null }))""")


QUALITY_ORDER = ["exact", "counted", "estimated", "lower_bound"]
QUALITY = {"exact": "exact", "counted": "counted", "estimated": "estimated", "lower_bound": "lower bound"}
QUALITY = [QUALITY[q] for q in QUALITY_ORDER]


def _last_day(server: LiveServer, ip_id: int) -> list[dict]:
    first = rfc3339_jst(LAST_HOUR - timedelta(hours=23))
    rows = api(server, f"/api/v1/ips/{ip_id}/stats/hourly", limit=24)["data"]["stats"]
    return [r for r in rows if r["hour_bucket"] >= first]


def expected_board(server: LiveServer, kind: str, hours: int) -> list[tuple]:
    items = api(server, "/api/v1/leaderboard", type=kind, hours=hours)["data"]["items"]
    return [(i["ip_id"], str(i["rank"]), i["ip_name"], i["ip_name_en"], f"{i['inflow']:,}", f"{i['outflow']:,}")
            for i in items]


def test_leaderboard_shows_the_ranking_and_switches_type_and_window(server, page):
    page, errors = page
    page.goto(server.url + "/")
    ready(page, "#/leaderboard")
    assert page.title().startswith("Leaderboard · hot · 24 h")
    seen = []
    for label, kind, hours in (("Inflow", "inflow", 24), ("2 h", "inflow", 2), ("7 d", "inflow", 168),
                               ("Outflow", "outflow", 168), ("Hot", "hot", 168), ("24 h", "hot", 24)):
        page.get_by_role("link", name=label, exact=True).click()
        route = f"#/leaderboard?type={kind}&hours={hours}"
        ready(page, route)
        page.wait_for_function("() => !document.querySelector('.spark-cell .pending')", timeout=WAIT_MS)
        rows = board_rows(page)
        expected = expected_board(server, kind, hours)
        assert len(rows) >= 5, (route, rows)
        assert [(r["ip"], r["rank"], r["name"], r["en"], r["cells"][1], r["cells"][2]) for r in rows] == expected, route
        assert page.get_by_role("link", name=label, exact=True).get_attribute("aria-current") == "true"
        # each IP's spark line has the hours of its last 24, its flag the least exact of their `quality`
        for r in rows:
            hours_of = _last_day(server, r["ip"])
            assert r["spark"] == str(len(hours_of)) and len(hours_of) >= 20, (r, len(hours_of))
            assert r["quality"] == QUALITY[max(QUALITY_ORDER.index(h["quality"]) for h in hours_of)], r
        seen.append([r["ip"] for r in rows])
    assert len({tuple(order) for order in seen}) > 1, "every ranking came out the same: the switches did nothing"
    caption = page.locator("table.board caption").text_content()
    assert "yesterday" in caption and "2026-11-09 00:00" in caption
    # a shared link opens the same view
    page.goto(server.url + "/#/leaderboard?type=outflow&hours=2")
    ready(page, "#/leaderboard?type=outflow&hours=2")
    assert [r["ip"] for r in board_rows(page)] == [e[0] for e in expected_board(server, "outflow", 2)]
    assert errors == []


def _chart_hours(page: Page, chart: str) -> dict[str, str]:
    return dict(page.eval_on_selector_all(f"#{chart} g.hour", "gs => gs.map(g => [g.dataset.hour, g.querySelector('title').textContent])"))


def _stored_hours(engine: sa.Engine, ip_id: int, hours: int) -> dict[str, tuple[int, int]]:
    first = LAST_HOUR - timedelta(hours=hours - 1)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(ip_stats_hourly.c.hour_bucket, ip_stats_hourly.c.inflow, ip_stats_hourly.c.outflow)
            .where(ip_stats_hourly.c.ip_id == ip_id, ip_stats_hourly.c.hour_bucket >= first,
                   ip_stats_hourly.c.hour_bucket <= LAST_HOUR)).all()
    return {rfc3339_jst(r.hour_bucket): (r.inflow, r.outflow) for r in rows}


def test_ip_page_charts_the_hours_of_the_data(server, data, page):
    engine, _, built = data
    page, errors = page
    ip_id = built.ids["ちいかわ"]
    page.goto(server.url + f"/#/ip/{ip_id}?hours=24")
    ready(page, f"#/ip/{ip_id}?hours=24")
    assert page.locator("h1").text_content() == "ちいかわ"
    for hours, link in ((24, None), (168, "7 d")):
        if link:
            page.get_by_role("link", name=link, exact=True).click()
            ready(page, f"#/ip/{ip_id}?hours={hours}")
        stored = _stored_hours(engine, ip_id, hours)
        assert len(stored) >= hours - 2, len(stored)  # crawled every three hours: (nearly) every hour has a row
        drawn = _chart_hours(page, "flow-chart")
        assert set(drawn) == set(stored), (hours, set(drawn) ^ set(stored))
        for hour, (inflow, outflow) in stored.items():
            assert f"inflow {inflow:,}, outflow {outflow:,}" in drawn[hour], hour
        assert set(_chart_hours(page, "liquidity-chart")) <= set(stored)
        assert set(_chart_hours(page, "price-chart")) <= set(stored) and _chart_hours(page, "price-chart")
    # sold prices with the cheapest and dearest item, latest listings and sales with thumbnails
    cheapest = page.locator(".price-item").first
    assert cheapest.locator("a").get_attribute("href").startswith("https://jp.mercari.com/")
    assert cheapest.locator("img").count() == 1
    listings = page.locator("section[aria-labelledby='s-latest-listings'] li.item")
    sales = page.locator("section[aria-labelledby='s-latest-sales'] li.item")
    assert listings.count() == 12 and sales.count() == 12
    assert listings.first.locator("img").get_attribute("src").startswith("https://static.mercdn.net/")
    # its alerts and its next crawl (from the schedule the processor wrote)
    alerts = api(server, "/api/v1/alerts", ip_id=ip_id)
    assert alerts["total"] > 0
    assert page.locator("section[aria-labelledby='s-alerts'] tbody tr").count() == min(10, alerts["total"])
    entry = next(e for e in api(server, "/api/v1/system/scheduler")["data"]["schedules"] if e["ip_id"] == ip_id)
    assert entry["next_schedule"][:16].replace("T", " ") in page.locator("#next-crawl").text_content()
    assert errors == []


def _unacked_id(page: Page) -> int:
    return int(page.locator("table.alerts tbody tr[data-acknowledged='false']").first.get_attribute("data-alert"))


def _acknowledged(engine: sa.Engine, alert_id: int) -> bool:
    with engine.connect() as connection:
        return bool(connection.execute(sa.select(ip_alerts.c.acknowledged).where(ip_alerts.c.id == alert_id)).scalar_one())


def test_alerts_filter_and_ack_needs_the_admin_key(server, data, page):
    engine = data[0]
    page, errors = page
    acks: list[dict] = []
    page.on("request", lambda r: acks.append(r.headers) if r.method == "POST" and "/ack" in r.url else None)
    page.goto(server.url + "/#/alerts")
    ready(page, "#/alerts")
    unacked = api(server, "/api/v1/alerts", acknowledged="false")
    assert unacked["total"] > 0
    assert page.locator("table.alerts tbody tr").count() == min(20, unacked["total"])
    assert f"{unacked['total']:,} alert" in page.locator("p.count").text_content()
    page.get_by_label("Severity").select_option("critical")
    ready(page, "#/alerts?severity=critical&acknowledged=false&page=1")
    critical = api(server, "/api/v1/alerts", acknowledged="false", severity="critical")
    assert page.locator("table.alerts tbody tr").count() == min(20, critical["total"]) > 0
    assert set(page.locator("table.alerts .severity").all_text_contents()) == {"critical"}

    alert_id = _unacked_id(page)
    row = page.locator(f"tr[data-alert='{alert_id}']")
    # without a key: the dialog refuses, nothing is sent, the alert stays as it was
    row.get_by_role("button", name=f"Acknowledge alert {alert_id}", exact=True).click()
    dialog = page.get_by_role("dialog", name="Admin key")
    dialog.get_by_role("button", name="Acknowledge", exact=True).click()
    assert "required" in dialog.get_by_role("alert").text_content()
    dialog.get_by_role("button", name="Cancel", exact=True).click()
    assert "no admin key" in row.locator(".ack-status").text_content()
    assert acks == [] and not _acknowledged(engine, alert_id)
    # with the key: sent as X-API-Key, stored, kept for the tab's session only
    row.get_by_role("button", name=f"Acknowledge alert {alert_id}", exact=True).click()
    dialog.get_by_label("X-API-Key").fill(ADMIN_KEY)
    dialog.get_by_label("X-API-Key").press("Enter")
    row.locator(".acked").wait_for(timeout=WAIT_MS)
    assert [headers.get("x-api-key") for headers in acks] == [ADMIN_KEY]
    assert _acknowledged(engine, alert_id)
    assert page.evaluate("() => sessionStorage.getItem('animehot.adminKey')") == ADMIN_KEY
    assert page.evaluate("() => localStorage.length") == 0
    # the next ack uses the kept key without asking
    page.reload()
    ready(page, "#/alerts?severity=critical&acknowledged=false&page=1")
    second = _unacked_id(page)
    page.get_by_role("button", name=f"Acknowledge alert {second}", exact=True).click()
    page.locator(f"tr[data-alert='{second}'] .acked").wait_for(timeout=WAIT_MS)
    assert len(acks) == 2 and _acknowledged(engine, second)
    assert errors == []


def test_a_key_the_api_refuses_is_forgotten_and_asked_again(server, data, page):
    engine = data[0]
    if httpx.post(f"{server.url}/api/v1/alerts/999999/ack", headers={"X-API-Key": "wrong"}, timeout=10).status_code != 401:
        pytest.skip("this API does not check the key of an alert ack (APP_ENV=prod write auth, issue 17, not in)")
    page, errors = page
    page.goto(server.url + "/#/alerts?severity=warning")
    ready(page, "#/alerts?severity=warning")
    alert_id = _unacked_id(page)
    row = page.locator(f"tr[data-alert='{alert_id}']")
    row.get_by_role("button", name=f"Acknowledge alert {alert_id}", exact=True).click()
    dialog = page.get_by_role("dialog", name="Admin key")
    dialog.get_by_label("X-API-Key").fill("not-the-key")
    dialog.get_by_role("button", name="Acknowledge", exact=True).click()
    page.wait_for_function("() => document.querySelector('#admin-key-error')?.textContent.includes('refused')")
    assert "X-API-Key missing or wrong" in dialog.get_by_role("alert").text_content()
    assert page.evaluate("() => sessionStorage.getItem('animehot.adminKey')") is None
    assert not _acknowledged(engine, alert_id)
    dialog.get_by_label("X-API-Key").fill(ADMIN_KEY)
    dialog.get_by_role("button", name="Acknowledge", exact=True).click()
    row.locator(".acked").wait_for(timeout=WAIT_MS)
    assert _acknowledged(engine, alert_id)
    # the browser reports the refused request itself; nothing else went wrong
    assert [e for e in errors if "401" not in e] == [] and len(errors) == 1


def test_system_page_shows_the_pipeline_queues_scheduler_and_database(server, data, page):
    _, _, built = data
    page, errors = page
    page.goto(server.url + "/#/system")
    ready(page, "#/system")
    status = api(server, "/api/v1/system/status")["data"]
    facts = dict(zip(page.locator(".facts dt").all_text_contents(), page.locator(".facts dd").all_text_contents(),
                     strict=True))
    assert facts["Crawls applied"] == f"{built.crawls:,}" == f"{status['pipeline']['processed']:,}"
    assert facts["IPs"] == "6" and facts["IPs scheduled"] == "6"
    assert facts["Crawl tasks waiting"] == "0" and facts["Dead letters"] == "0"
    assert facts["Alerts not acknowledged"] == f"{status['stats']['unacked_alerts']:,}"
    links = dict(page.eval_on_selector_all(".links a", "as => as.map(a => [a.textContent, a.getAttribute('href')])"))
    assert links["Dagster UI"] == "http://127.0.0.1:3000" and links["Metrics"] == "http://127.0.0.1:2112/metrics"
    assert links["Grafana"] == "http://127.0.0.1:3001"
    assert page.locator("table.schedule tbody tr").count() == 6
    assert errors == []


@pytest.mark.parametrize("route", ["#/leaderboard", "#/alerts", "#/system", "IP"])
def test_pages_fit_375_px_and_keyboard(server, data, browser, route):
    page, errors = open_page(browser, width=375, height=812)
    try:
        route = f"#/ip/{data[2].ids['鬼滅の刃']}" if route == "IP" else route
        page.goto(server.url + "/" + route)
        ready(page, route)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        # keyboard: the first Tab reaches the skip link, then the brand and the navigation
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
        assert errors == []
    finally:
        page.context.close()


def test_first_paint_within_a_second_and_a_handful_of_requests(server, data, browser):
    """The numbers docs/dashboard.md reports: first contentful paint, and the API requests per page."""
    page, errors = open_page(browser)
    try:
        api_requests: list[str] = []
        page.on("request", lambda r: api_requests.append(r.url) if "/api/" in r.url or r.url.endswith("/health") else None)
        figures = {}
        for route, most in (("#/leaderboard", 2 + 10), (f"#/ip/{data[2].ids['初音ミク']}", 7), ("#/alerts", 2),
                            ("#/system", 2)):
            api_requests.clear()
            page.goto("about:blank")
            page.goto(server.url + "/" + route)
            ready(page, route)
            paint = page.evaluate("() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null")
            figures[route] = (paint, len(api_requests))
            assert paint is not None and paint < 1000, figures
            assert len(api_requests) <= most, (route, api_requests)
        print("first contentful paint (ms), API requests:", figures)
        assert errors == []
    finally:
        page.context.close()
