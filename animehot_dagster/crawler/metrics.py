"""A crawler node's metrics (SPEC §10, the manual's §3.2 crawler table) and the small HTTP
server that exposes them with ``/health`` and ``/ready`` on METRICS_PORT.

The registry holds exactly the manual's crawler metrics, under exactly its names and labels.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from animehot_dagster.crawler.errors import ErrorKind

REQUEST_STATUSES = ("success", "failed")
# A page takes milliseconds through the API and seconds in a browser.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class CrawlerMetrics:
    def __init__(self) -> None:
        # No ``*_created`` series beside each counter and histogram: the exposition carries the
        # manual's names and nothing else. (A process-wide switch; a node has only this registry.)
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "animetop_crawler_requests_total", "Requests to Mercari (search pages or API calls) by outcome.",
            ["status"], registry=self.registry,
        )
        self.request_duration = Histogram(
            "animetop_crawler_request_duration_seconds", "Time one request to Mercari took.",
            buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self.errors = Counter(
            "animetop_crawler_errors_total", "Failed requests by kind: timeout, blocked, network, unknown.",
            ["type"], registry=self.registry,
        )
        self.browser_active = Gauge(
            "animetop_crawler_browser_active", "Browser pages open now.", registry=self.registry
        )
        self.proxy_mode = Gauge(
            "animetop_crawler_proxy_mode", "0: direct, 1: through HTTP_PROXY.", registry=self.registry
        )
        # Every label value from the start, so a dashboard sees zeros rather than no series.
        for status in REQUEST_STATUSES:
            self.requests.labels(status=status)
        for kind in ErrorKind:
            self.errors.labels(type=kind.value)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``/metrics`` (Prometheus text), ``/health`` (the process answers) and ``/ready`` (it
    takes tasks: 503 before it starts and once it is shutting down), in a background thread."""

    def __init__(self, metrics: CrawlerMetrics, ready: Callable[[], bool], port: int, host: str = "0.0.0.0") -> None:
        handler = _handler_class(metrics, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_class(metrics: CrawlerMetrics, ready: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path == "/health":
                self._answer_json(200, {"status": "ok"})
            elif path == "/ready":
                is_ready = ready()
                self._answer_json(200 if is_ready else 503, {"ready": is_ready})
            else:
                self._answer_json(404, {"error": "not found"})

        def _answer_json(self, status: int, body: dict) -> None:
            self._answer(status, json.dumps(body).encode(), "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes every few seconds are not worth a log line."""

    return Handler
