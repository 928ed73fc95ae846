"""PROXY_AUTO_SWITCH with a real forward proxy on a local socket: after the threshold of
blocked requests the node health-checks HTTP_PROXY, moves its traffic there (API and browser),
and comes back to the direct path after the cooldown; an unhealthy proxy is not used."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import Self
from urllib.parse import urlsplit

from animehot_dagster.crawler.metrics import CrawlerMetrics
from animehot_dagster.crawler.resilience import Mode
from animehot_dagster.simulator.faults import FaultKind, Surface
from animehot_dagster_tests.crawler import (
    config_for,
    metric_value,
    request,
    running_crawler,
)


class ForwardProxy:
    """A minimal HTTP/1.1 forward proxy in a background thread: absolute-form requests are sent
    on to their origin (one request per connection), CONNECT opens a tunnel. It records what
    went through it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""

    def __enter__(self) -> Self:
        self._thread.start()
        self._started.wait(5)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._started.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target, _ = (await reader.readline()).decode("latin-1").split()
            headers = []
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                headers.append(line)
            self.seen.append((method, target))
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
                return
            url = urlsplit(target)
            length = next((int(h.split(b":", 1)[1]) for h in headers if h.lower().startswith(b"content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            upstream_reader, upstream_writer = await asyncio.open_connection(url.hostname, url.port or 80)
            kept = [h for h in headers if not h.lower().startswith((b"proxy-", b"connection:"))]
            path = url.path + (f"?{url.query}" if url.query else "")
            upstream_writer.write(f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(kept) + b"Connection: close\r\n\r\n" + body)
            await _pipe(upstream_reader, writer)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.write_eof()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def switching_config(market, proxy_url: str, mode: Mode, cooldown: float = 3600.0):
    return config_for(
        market, pinned_mode=mode, proxy_url=proxy_url, proxy_auto_switch=True,
        proxy_failure_threshold=3, proxy_cooldown_seconds=cooldown,
    )


def proxied_searches(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What went through the proxy apart from health checks: (method, path)."""
    return [(method, urlsplit(target).path) for method, target in seen if method != "HEAD"]


def test_api_traffic_moves_to_a_healthy_proxy_after_the_threshold_and_back_after_the_cooldown(market, caplog):
    metrics = CrawlerMetrics()
    market.fail(FaultKind.FORBIDDEN, surface=Surface.API, count=3)

    async def run():
        with ForwardProxy() as proxy:
            async with running_crawler(switching_config(market, proxy.url, Mode.API, cooldown=4.0), metrics) as crawler:
                switched = await crawler.crawl(request(on_sale=5, sold=0))
                on_proxy = metric_value(metrics, "animetop_crawler_proxy_mode")
                through_proxy = proxied_searches(proxy.seen)
                await asyncio.sleep(4.0)  # the cooldown: long enough that a loaded machine's crawl fits in it
                back = await crawler.crawl(request(on_sale=1, sold=0))
                return switched, on_proxy, through_proxy, back, list(proxy.seen)

    with caplog.at_level(logging.INFO):
        switched, on_proxy, through_proxy, back, seen_at_end = asyncio.run(run())
    assert switched.pages_crawled == 2
    assert market.outcomes(Surface.API) == ["fault:forbidden"] * 3 + ["200"] * 3
    assert seen_at_end[0][0] == "HEAD"  # the health check, before any search went through it
    assert through_proxy == [("POST", "/v2/entities:search")] * 2
    assert on_proxy == 1
    assert back.pages_crawled == 1 and proxied_searches(seen_at_end) == through_proxy  # direct again
    assert metric_value(metrics, "animetop_crawler_proxy_mode") == 0
    switches = [r for r in caplog.records if r.getMessage() == "proxy switched"]
    assert [(r.levelno, r.to) for r in switches] == [(logging.INFO, "proxy"), (logging.INFO, "direct")]


def test_browser_pages_go_through_the_proxy_after_the_switch(market):
    market.fail(FaultKind.CLOUDFLARE, surface=Surface.WEB, count=3)

    async def run():
        with ForwardProxy() as proxy:
            async with running_crawler(switching_config(market, proxy.url, Mode.BROWSER)) as crawler:
                response = await crawler.crawl(request(on_sale=5, sold=0))
                return response, proxied_searches(proxy.seen)

    response, through_proxy = asyncio.run(run())
    assert response.pages_crawled == 2
    assert market.outcomes(Surface.WEB) == ["fault:cloudflare"] * 3 + ["200"] * 2
    # Each page and the search API call its script makes as it loads.
    assert through_proxy == [("GET", "/search"), ("POST", "/web-api/v2/entities:search")] * 2


def test_an_unhealthy_proxy_is_not_switched_to(market, caplog):
    metrics = CrawlerMetrics()
    market.fail(FaultKind.RATE_LIMITED, surface=Surface.API, count=3)
    config = switching_config(market, closed_port_url(), Mode.API)

    async def run():
        async with running_crawler(config, metrics) as crawler:
            return await crawler.crawl(request(on_sale=5, sold=0))

    with caplog.at_level(logging.INFO):
        response = asyncio.run(run())
    assert response.pages_crawled == 2
    assert metric_value(metrics, "animetop_crawler_proxy_mode") == 0
    messages = [r.getMessage() for r in caplog.records]
    assert "proxy switched" not in messages
    assert "proxy health check failed, staying direct" in messages
