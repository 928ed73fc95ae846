"""The outermost layer of the API: bodies over the limit are refused with 413 (declared or
counted as they arrive), and every request is counted in the HTTP metrics by route template."""

from __future__ import annotations

import time

from animehot_dagster.api.envelope import dumps

BODY_LIMIT = 1 << 20  # 1 MiB
ROUTE_OTHER = "other"


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Outermost layer: rejects bodies over the limit with 413 and counts every request in the
    HTTP metrics by route template."""

    def __init__(self, app, body_limit: int, metrics=None) -> None:
        self.app = app
        self.body_limit = body_limit
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        state = {"status": 500, "too_large": False, "sent": False}
        too_large_body = dumps({"code": 413, "message": f"request body larger than {self.body_limit} bytes"})

        async def send_413():
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(too_large_body)).encode()),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": too_large_body})
            state["status"], state["sent"] = 413, True

        try:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.body_limit:
                await send_413()
                return
            received = 0

            async def limited_receive():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.body_limit:
                        state["too_large"] = True
                        raise _BodyTooLarge()
                return message

            async def tracking_send(message):
                if state["too_large"]:
                    if not state["sent"]:
                        await send_413()
                    return
                if message["type"] == "http.response.start":
                    state["status"] = message["status"]
                    state["sent"] = True
                await send(message)

            try:
                await self.app(scope, limited_receive, tracking_send)
            except _BodyTooLarge:
                if not state["sent"]:
                    await send_413()
        finally:
            if self.metrics is not None:
                route = scope.get("route")
                path = getattr(route, "path", None) or ROUTE_OTHER
                self.metrics.observe(scope["method"], path, state["status"], time.perf_counter() - started)
