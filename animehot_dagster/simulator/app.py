"""The simulated Mercari over HTTP: the web search page, the search API, faults, and the
simulator's own endpoints (``/__truth``, ``/__items``, ``/__faults``, ``/__clock``,
``/__requests``) that tests and the accuracy harness use and a crawler never should.

Market surfaces, as on the real site (SPEC §3):

- ``GET /search?keyword=&order=desc&sort=created_time&status=on_sale|sold_out%7Ctrading&page_token=v1:N``
- ``POST /v2/entities:search`` with ``X-Platform: web`` and a DPoP proof
- ``POST /web-api/v2/entities:search``: the same request and answer without the proof, which the
  search page's own script calls as it loads, as Mercari's web app calls the search API (the
  page stands in for the app, which makes its proofs with a key of its own); not logged, and
  no fault of its own: the page's answer decides what a browser sees

Any market request may name the moment to look at: ``as_of`` (unix seconds or RFC 3339) in the
query of a GET, or the ``X-Sim-As-Of`` header on any request; otherwise the market clock decides.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import time
import uuid
from collections.abc import Callable

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from animehot_dagster.domain.timebuckets import from_unix, rfc3339_jst
from animehot_dagster.simulator import pages
from animehot_dagster.simulator.clock import MarketClock
from animehot_dagster.simulator.dpop import DEFAULT_MAX_AGE_SECONDS, DpopError, JtiMemory, verify_dpop_proof
from animehot_dagster.simulator.faults import Fault, FaultKind, FaultPlan, FaultRule, Surface
from animehot_dagster.simulator.market import ALL_STATUSES, PAGE_SIZE, ItemStatus, Market, SearchPage
from animehot_dagster.simulator.scenario import parse_time
from animehot_dagster.simulator.wire import (
    API_STATUS_NAMES,
    WireError,
    api_search_response,
    page_token,
    parse_api_statuses,
    parse_page_token,
    parse_web_status,
    thumbnail_url,
)

# A client configured for the real API signs this htu; accepting it lets a crawler run here
# unchanged with only its base URL pointed at the simulator, or with the real URL kept in htu.
REAL_API_SEARCH_URL = "https://api.mercari.jp/v2/entities:search"
PAGE_API_SEARCH_PATH = "/web-api/v2/entities:search"
_API_STATUS_NAMES = {ItemStatus.ON_SALE: "STATUS_ON_SALE", ItemStatus.TRADING: "STATUS_TRADING",
                     ItemStatus.SOLD_OUT: "STATUS_SOLD_OUT"}
AS_OF_HEADER = "X-Sim-As-Of"
MAX_TRUTH_HOURS = 90 * 24
_TRANSPORT_KEY = "animehot.simulator.transport"


class _ExposeTransport:
    """Puts the connection's transport into the scope so a DROP fault can close the socket
    without answering. uvicorn's ``receive`` is a bound method of the request cycle holding it;
    this middleware sits outside Starlette's, which pass ``receive`` on untouched."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            scope[_TRANSPORT_KEY] = getattr(getattr(receive, "__self__", None), "transport", None)
        await self.app(scope, receive, send)


class RequestLog:
    """What the market surfaces were asked and answered: lets crawler tests check request
    counts and pacing without instrumenting the crawler."""

    def __init__(self, capacity: int = 2000) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.recent: collections.deque[dict] = collections.deque(maxlen=capacity)

    def record(self, surface: Surface, keyword: str | None, outcome: str, at: float) -> None:
        self.counts[f"{surface.value} {outcome}"] += 1
        self.recent.append({"time": at, "surface": surface.value, "keyword": keyword, "outcome": outcome})

    def clear(self) -> None:
        self.counts.clear()
        self.recent.clear()


@dataclasses.dataclass
class SimulatorState:
    market: Market
    clock: MarketClock
    faults: FaultPlan
    wall: Callable[[], float] = time.time
    dpop_max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    jtis: JtiMemory = dataclasses.field(default_factory=JtiMemory)
    requests: RequestLog = dataclasses.field(default_factory=RequestLog)


class _BadRequest(ValueError):
    pass


def _as_of(request: Request, query_value: str | None, clock: MarketClock) -> int:
    value = query_value if query_value is not None else request.headers.get(AS_OF_HEADER)
    if value is None:
        return clock.now()
    try:
        return parse_time(value)
    except ValueError as exc:
        raise _BadRequest(f"as_of: {exc}") from None


def _api_error(status: int, grpc_code: int, message: str, headers: dict | None = None) -> JSONResponse:
    """Errors in the gRPC-gateway shape Mercari's API answers with."""
    return JSONResponse({"code": grpc_code, "message": message, "details": []}, status_code=status, headers=headers)


def _blocked_response(kind: FaultKind, surface: Surface) -> Response:
    if kind is FaultKind.FORBIDDEN:
        if surface is Surface.API:
            return _api_error(403, 7, "PERMISSION_DENIED")
        return HTMLResponse(pages.forbidden_page(), status_code=403)
    if kind is FaultKind.RATE_LIMITED:
        headers = {"Retry-After": "60"}
        if surface is Surface.API:
            return _api_error(429, 8, "RESOURCE_EXHAUSTED: too many requests", headers)
        return HTMLResponse(pages.too_many_requests_page(), status_code=429, headers=headers)
    if kind is FaultKind.CLOUDFLARE:
        ray_id = uuid.uuid4().hex[:16]
        headers = {"cf-mitigated": "challenge", "cf-ray": f"{ray_id}-NRT", "server": "cloudflare"}
        return HTMLResponse(pages.cloudflare_challenge_page(ray_id), status_code=403, headers=headers)
    if kind is FaultKind.CAPTCHA:
        return HTMLResponse(pages.recaptcha_page())
    if kind is FaultKind.HCAPTCHA:
        return HTMLResponse(pages.hcaptcha_page())
    if kind is FaultKind.BLANK:
        return Response(b"", media_type="text/html")
    raise ValueError(f"{kind} is not a blocking fault")


async def _apply_fault(fault: Fault, surface: Surface, request: Request) -> Response | None:
    """The response a fault replaces the normal one with; None when the normal answer follows
    (after a SLOW fault's delay)."""
    if fault.kind is FaultKind.SLOW:
        await asyncio.sleep(fault.delay_seconds)
        return None
    if fault.kind is FaultKind.DROP:
        transport = request.scope.get(_TRANSPORT_KEY)
        if transport is None:
            raise RuntimeError("dropping a connection needs the server's transport (run the simulator on uvicorn)")
        transport.close()
        # Let the event loop deliver connection_lost first, so the server drops the response
        # the framework still sends instead of writing it before the socket closes.
        await asyncio.sleep(0.01)
        return Response(status_code=499)
    return _blocked_response(fault.kind, surface)


def _search_condition(body: object) -> dict:
    if not isinstance(body, dict):
        raise WireError("the body must be a JSON object")
    condition = body.get("searchCondition")
    if not isinstance(condition, dict):
        raise WireError("searchCondition is required")
    return condition


def _items_payload(result: SearchPage, keyword: str, as_of: int) -> dict:
    return {
        "keyword": keyword,
        "as_of": as_of,
        "page": result.page,
        "num_found": result.num_found,
        "next_page_token": page_token(result.page + 1) if result.has_next else "",
        "items": [
            {
                "source_id": listing.source_id,
                "id": listing.api_id,
                "title": listing.title,
                "price": listing.price,
                "price_text": pages.price_text(listing),
                "status": listing.status.value,
                "api_status": API_STATUS_NAMES[listing.status],
                "sold": listing.is_sold,
                "created": listing.created,
                "updated": listing.updated,
                "url": listing.url_path,
                "image_url": thumbnail_url(listing),
            }
            for listing in result.listings
        ],
    }


def create_app(state: SimulatorState) -> FastAPI:
    app = FastAPI(title="Anime Hot market simulator", docs_url="/__docs", redoc_url=None, openapi_url="/__openapi.json")
    app.add_middleware(_ExposeTransport)
    market, clock = state.market, state.clock

    async def fault_response(surface: Surface, keyword: str | None, request: Request) -> Response | None:
        fault = state.faults.fault_for(surface, keyword)
        if fault is None:
            return None
        # Recorded before it is served: a dropped client may ask again before the drop ends.
        state.requests.record(surface, keyword, f"fault:{fault.kind.value}", state.wall())
        return await _apply_fault(fault, surface, request)

    @app.get("/health")
    async def health() -> dict:
        now = clock.now()
        return {
            "status": "ok",
            "time": rfc3339_jst(from_unix(now)),
            "market_time": now,
            "scale": clock.scale,
            "keywords": [profile.keyword for profile in market.profiles],
        }

    @app.get("/search", response_class=HTMLResponse)
    async def search_page(
        request: Request,
        keyword: str = "",
        order: str | None = None,
        sort: str | None = None,
        status: str | None = None,
        page_token: str | None = None,
        as_of: str | None = None,
    ) -> Response:
        blocked = await fault_response(Surface.WEB, keyword, request)
        if blocked is not None:
            return blocked
        try:
            if sort != "created_time" or order != "desc":
                raise WireError("the simulator serves only sort=created_time&order=desc")
            statuses = parse_web_status(status)
            page = parse_page_token(page_token)
            moment = _as_of(request, as_of, clock)
        except (WireError, _BadRequest) as exc:
            state.requests.record(Surface.WEB, keyword, "400", state.wall())
            return HTMLResponse(pages.bad_request_page(str(exc)), status_code=400)
        result = market.search(keyword, moment, statuses, page)
        next_url = None
        if result.has_next:  # a page asked for at a fixed moment links to the next at the same moment
            next_url = pages.search_url(keyword, status, page + 1, moment if as_of is not None else None)
        state.requests.record(Surface.WEB, keyword, "200", state.wall())
        search_request = {
            "url": PAGE_API_SEARCH_PATH,
            "asOf": moment,  # the page's moment: its script sees what its cells show
            "body": {
                "pageSize": PAGE_SIZE,
                "pageToken": page_token or "",
                "searchCondition": {
                    "keyword": keyword,
                    "sort": "SORT_CREATED_TIME",
                    "order": "ORDER_DESC",
                    "status": [] if statuses == ALL_STATUSES else sorted(_API_STATUS_NAMES[s] for s in statuses),
                },
            },
        }
        return HTMLResponse(pages.render_search_page(keyword, result, next_url, search_request))

    @app.post(PAGE_API_SEARCH_PATH)
    async def page_api_search(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            condition = _search_condition(body)
            keyword = condition.get("keyword", "")
            if not isinstance(keyword, str):
                raise WireError("searchCondition.keyword must be a string")
            statuses = parse_api_statuses(condition.get("status", []))
            page = parse_page_token(body.get("pageToken"))
            moment = _as_of(request, None, clock)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, WireError, _BadRequest) as exc:
            return _api_error(400, 3, str(exc))
        return JSONResponse(api_search_response(market.search(keyword, moment, statuses, page), clock.reported))

    @app.post("/v2/entities:search")
    async def api_search(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        condition = body.get("searchCondition") if isinstance(body, dict) else None
        keyword = condition.get("keyword") if isinstance(condition, dict) else None
        keyword = keyword if isinstance(keyword, str) else None
        blocked = await fault_response(Surface.API, keyword, request)
        if blocked is not None:
            return blocked

        def answer(response: Response) -> Response:
            state.requests.record(Surface.API, keyword, str(response.status_code), state.wall())
            return response

        if request.headers.get("x-platform") != "web":
            return answer(_api_error(400, 3, "X-Platform: web is required"))
        now = state.wall()
        try:
            proof = verify_dpop_proof(
                request.headers.get("dpop"),
                method=request.method,
                accepted_urls=(str(request.url), REAL_API_SEARCH_URL),
                now=now,
                max_age_seconds=state.dpop_max_age_seconds,
            )
            if not state.jtis.first_use(proof.jti, now):
                raise DpopError("jti was already used")
        except DpopError as exc:
            # A header value is ASCII; the reason may quote a client's non-ASCII claim.
            reason = str(exc).encode("ascii", "replace").decode().replace('"', "'")
            challenge = f'DPoP algs="ES256", error="invalid_dpop_proof", error_description="{reason}"'
            return answer(_api_error(401, 16, f"invalid DPoP proof: {exc}", {"WWW-Authenticate": challenge}))
        try:
            condition = _search_condition(body)
            if condition.get("sort") != "SORT_CREATED_TIME" or condition.get("order") != "ORDER_DESC":
                raise WireError("the simulator serves only sort SORT_CREATED_TIME, order ORDER_DESC")
            if not isinstance(condition.get("keyword", ""), str):
                raise WireError("searchCondition.keyword must be a string")
            statuses = parse_api_statuses(condition.get("status", []))
            page = parse_page_token(body.get("pageToken"))
            page_size = body.get("pageSize") or PAGE_SIZE
            if not isinstance(page_size, int) or not 1 <= page_size <= PAGE_SIZE:
                raise WireError(f"pageSize must be within 1..{PAGE_SIZE}")
            moment = _as_of(request, None, clock)
        except (WireError, _BadRequest) as exc:
            return answer(_api_error(400, 3, str(exc)))
        result = market.search(condition.get("keyword", ""), moment, statuses, page, page_size)
        return answer(JSONResponse(api_search_response(result, clock.reported)))

    @app.get("/__items")
    async def served_items(
        request: Request,
        keyword: str,
        status: str | None = None,
        page_token: str | None = None,
        as_of: str | None = None,
    ) -> Response:
        """What /search and the API serve for this query, with the web page's price text."""
        try:
            statuses = parse_web_status(status)
            page = parse_page_token(page_token)
            moment = _as_of(request, as_of, clock)
        except (WireError, _BadRequest) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(_items_payload(market.search(keyword, moment, statuses, page), keyword, moment))

    @app.get("/__truth")
    async def truth(keyword: str, start: str = Query(alias="from"), end: str = Query(alias="to")) -> Response:
        """Listings created, sold and withdrawn per hour of [from, to), and in [from, to) exactly:
        the accuracy yardstick."""
        try:
            first, last = parse_time(start), parse_time(end)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if not 0 < last - first <= MAX_TRUTH_HOURS * 3600:
            message = f"to must be after from, by at most {MAX_TRUTH_HOURS} hours"
            return JSONResponse({"error": message}, status_code=400)
        hours = market.truth(keyword, first, last)
        created, sold, withdrawn = market.span_truth(keyword, first, last)
        return JSONResponse(
            {
                "keyword": keyword,
                "known": market.profile(keyword) is not None,
                "from": rfc3339_jst(from_unix(first)),
                "to": rfc3339_jst(from_unix(last)),
                "hours": [
                    {
                        "hour": rfc3339_jst(from_unix(h.hour_start)),
                        "hour_unix": h.hour_start,
                        "created": h.created,
                        "sold": h.sold,
                        "withdrawn": h.withdrawn,
                    }
                    for h in hours
                ],
                "totals": {
                    "created": sum(h.created for h in hours),
                    "sold": sum(h.sold for h in hours),
                    "withdrawn": sum(h.withdrawn for h in hours),
                },
                # The hours cover whole hours; the span is [from, to) to the second.
                "span": {"created": created, "sold": sold, "withdrawn": withdrawn},
            }
        )

    @app.get("/__faults")
    async def faults() -> dict:
        return {"rules": state.faults.describe()}

    @app.post("/__faults")
    async def replace_faults(request: Request) -> Response:
        """Replace the fault rules: ``{"rules": [{"kinds": ["captcha"], "keyword": …,
        "surface": "web"|"api", "rate": 0.5, "count": 3, "delay_seconds": 2}]}``."""
        try:
            body = await request.json()
            rules = [FaultRule.from_dict(rule) for rule in body["rules"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return JSONResponse({"error": f"expected {{\"rules\": [...]}}: {exc}"}, status_code=400)
        state.faults.replace(rules)
        return JSONResponse({"rules": state.faults.describe()})

    @app.delete("/__faults")
    async def clear_faults() -> dict:
        state.faults.replace([])
        return {"rules": []}

    @app.get("/__clock")
    async def market_clock() -> dict:
        now = clock.now()
        return {"now": now, "time": rfc3339_jst(from_unix(now)), "scale": clock.scale}

    @app.post("/__clock")
    async def set_market_clock(request: Request) -> Response:
        """``{"now": <unix or RFC 3339>, "scale": 0}`` freezes the market at a moment;
        either field may be left out to keep it."""
        try:
            body = await request.json()
            start = parse_time(body["now"]) if body.get("now") is not None else None
            scale = float(body["scale"]) if body.get("scale") is not None else None
            clock.set(start, scale)
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(await market_clock())

    @app.get("/__requests")
    async def requests_seen() -> dict:
        return {"counts": dict(state.requests.counts), "recent": list(state.requests.recent)}

    @app.delete("/__requests")
    async def clear_requests() -> dict:
        state.requests.clear()
        return {"counts": {}, "recent": []}

    return app
