"""The simulator over a real socket: the search API's shapes and DPoP checks, the web page's
URLs, every fault kind, the clock, and ground truth that agrees with what the API serves."""

from __future__ import annotations

import copy
import functools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from animehot_dagster.simulator.app import SimulatorState, create_app
from animehot_dagster.simulator.faults import FaultKind, FaultPlan, FaultRule, Surface
from animehot_dagster.simulator.market import HOUR, KeywordProfile, Realism
from animehot_dagster.simulator.scenario import Scenario
from animehot_dagster.simulator.server import SimulatorServer, build_state
from animehot_dagster_tests.simulator.test_dpop import signed_proof

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "mercari-api" / "search_sort_created_desc.yml"
KEYWORD = "鬼滅の刃 グッズ"  # a space, to check it travels as %20
KEEP = "keep"  # nothing withdrawn, quick sales: truth can be checked item by item
AS_OF = 1_767_538_800 + 9 * 24 * HOUR + 1500  # 2026-01-14T00:25:00+09:00
SLOW_SECONDS = 0.6
SCENARIO = Scenario(
    profiles=(
        KeywordProfile(keyword=KEYWORD, listings_per_hour=80, shop_fraction=0.1, no_price_fraction=0.05),
        KeywordProfile(keyword=KEEP, listings_per_hour=4, sell_probability=1, mean_hours_to_sell=3),
    ),
    fault_rules=tuple(
        FaultRule(kinds=(kind,), keyword=f"faulty-{kind.value}", delay_seconds=SLOW_SECONDS) for kind in FaultKind
    ),
    # A plain-filter search: full pages of 120 in strict created order, and truth item by item
    # equal to what the API serves. The realistic search has its own tests (test_realism).
    realism=Realism.off(),
)


@pytest.fixture(scope="module")
def state() -> SimulatorState:
    return build_state(SCENARIO, seed=5)


@pytest.fixture(scope="module")
def server(state: SimulatorState) -> Iterator[SimulatorServer]:
    with SimulatorServer(create_app(state)) as running:
        yield running


@pytest.fixture
def client(server: SimulatorServer, state: SimulatorState) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    state.faults.replace(SCENARIO.fault_rules)
    state.clock.set(time.time(), 1.0)


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def recorded_exchange() -> tuple[dict, dict, dict]:
    interaction = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))["interactions"][0]
    request, response = interaction["request"], interaction["response"]
    return json.loads(request["body"]), request["headers"], json.loads(response["content"])


def search_body(keyword: str, statuses: list[str] | None = None, token: str = "") -> dict:
    body, _, _ = recorded_exchange()
    body = copy.deepcopy(body)
    body["pageToken"] = token
    body["searchSessionId"] = uuid.uuid4().hex
    body["searchCondition"]["keyword"] = keyword
    body["searchCondition"]["status"] = statuses or []
    return body


def api_search(client: httpx.Client, key, body: dict, as_of: int | None = AS_OF, **proof_options) -> httpx.Response:
    url = f"{client.base_url}/v2/entities:search"
    headers = {"X-Platform": "web", "DPoP": signed_proof(key, url, **proof_options)}
    if as_of is not None:
        headers["X-Sim-As-Of"] = str(as_of)
    return client.post("/v2/entities:search", json=body, headers=headers)


def api_pages(client, key, keyword: str, statuses: list[str], as_of: int) -> list[dict]:
    items, token = [], ""
    while True:
        response = api_search(client, key, search_body(keyword, statuses, token), as_of)
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        token = response.json()["meta"]["nextPageToken"]
        if not token:
            return items


def test_health_reports_the_market_clock(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and abs(body["market_time"] - time.time()) < 5
    assert body["keywords"] == [KEYWORD, KEEP]


def test_the_api_answers_the_recorded_request_in_the_recorded_shape(client, key):
    _, recorded_headers, recorded = recorded_exchange()
    body = search_body(KEYWORD)
    url = f"{client.base_url}/v2/entities:search"
    headers = {name: values[0] for name, values in recorded_headers.items() if name in {"user-agent", "x-platform"}}
    response = client.post(
        "/v2/entities:search",
        json=body,
        headers=headers | {"DPoP": signed_proof(key, url), "X-Sim-As-Of": str(AS_OF)},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    assert list(served) == list(recorded)
    assert list(served["meta"]) == list(recorded["meta"])
    assert served["meta"]["nextPageToken"] == "v1:1" and int(served["meta"]["numFound"]) > 120
    assert len(served["items"]) == 120
    for item in served["items"]:
        assert list(item) == list(recorded["items"][0])
        assert {type(item[k]) for k in ("price", "created", "updated", "sellerId", "buyerId")} == {str}
        assert item["status"] in {"ITEM_STATUS_ON_SALE", "ITEM_STATUS_TRADING", "ITEM_STATUS_SOLD_OUT"}
        assert (item["buyerId"] == "") == (item["status"] == "ITEM_STATUS_ON_SALE")
        assert item["itemType"] in {"ITEM_TYPE_MERCARI", "ITEM_TYPE_BEYOND"}
        assert item["thumbnails"] and KEYWORD in item["name"]
    assert {"ITEM_TYPE_MERCARI", "ITEM_TYPE_BEYOND"} == {item["itemType"] for item in served["items"]}
    assert any(item["price"] == "9999999" for item in served["items"])


def test_api_pages_follow_their_tokens_newest_created_first(client, key):
    seen, token, created = [], "", []
    for expected_page in range(4):
        response = api_search(client, key, search_body(KEYWORD, ["STATUS_SOLD_OUT", "STATUS_TRADING"], token))
        meta = response.json()["meta"]
        assert meta["previousPageToken"] == (f"v1:{expected_page - 1}" if expected_page > 1 else "")
        items = response.json()["items"]
        assert {item["status"] for item in items} <= {"ITEM_STATUS_TRADING", "ITEM_STATUS_SOLD_OUT"}
        seen.extend(item["id"] for item in items)
        created.extend(int(item["created"]) for item in items)
        token = meta["nextPageToken"]
        assert token == f"v1:{expected_page + 1}"
    assert len(set(seen)) == len(seen) == 480
    assert created == sorted(created, reverse=True)
    on_sale = api_search(client, key, search_body(KEYWORD, ["STATUS_ON_SALE"])).json()["items"]
    assert {item["status"] for item in on_sale} == {"ITEM_STATUS_ON_SALE"}


def test_the_items_endpoint_shows_what_the_api_serves(client, key):
    api_items = api_search(client, key, search_body(KEYWORD, ["STATUS_ON_SALE"], "v1:2")).json()["items"]
    served = client.get(
        "/__items", params={"keyword": KEYWORD, "status": "on_sale", "page_token": "v1:2", "as_of": AS_OF}
    ).json()["items"]
    assert [(i["id"], i["name"], int(i["price"])) for i in api_items] == [
        (i["id"], i["title"], i["price"]) for i in served
    ]


def test_a_proof_made_with_joserfc_for_the_real_url_is_accepted(client):
    key = ECKey.generate_key("P-256")
    public = {name: key.as_dict(private=False)[name] for name in ("crv", "kty", "x", "y")}
    claims = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "htu": "https://api.mercari.jp/v2/entities:search",
        "htm": "POST",
        "uuid": str(uuid.uuid4()),
    }
    proof = jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": public}, claims, key)
    response = client.post(
        "/v2/entities:search",
        json=search_body(KEYWORD),
        headers={"X-Platform": "web", "DPoP": proof, "X-Sim-As-Of": str(AS_OF)},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "proof_options",
    [
        {"header_key": ec.generate_private_key(ec.SECP256R1())},
        {"htm": "GET"},
        {"iat": time.time() - 3600},
    ],
    ids=["wrong-signature", "wrong-htm", "stale-iat"],
)
def test_bad_proofs_get_401_with_a_json_error(client, key, proof_options):
    response = api_search(client, key, search_body(KEYWORD), **proof_options)
    assert response.status_code == 401
    assert response.json()["code"] == 16 and "invalid DPoP proof" in response.json()["message"]
    assert response.headers["www-authenticate"].startswith("DPoP ")


def test_a_proof_for_another_url_a_missing_proof_and_a_replay_get_401(client, key):
    body = search_body(KEYWORD)
    other_url = signed_proof(key, "http://127.0.0.1:1/v2/entities:search")
    wrong_url = client.post("/v2/entities:search", json=body, headers={"X-Platform": "web", "DPoP": other_url})
    assert wrong_url.status_code == 401 and "htu" in wrong_url.json()["message"]
    missing = client.post("/v2/entities:search", json=body, headers={"X-Platform": "web"})
    assert missing.status_code == 401 and "missing" in missing.json()["message"]
    proof = signed_proof(key, f"{client.base_url}/v2/entities:search")
    headers = {"X-Platform": "web", "DPoP": proof, "X-Sim-As-Of": str(AS_OF)}
    assert client.post("/v2/entities:search", json=body, headers=headers).status_code == 200
    replay = client.post("/v2/entities:search", json=body, headers=headers)
    assert replay.status_code == 401 and "jti" in replay.json()["message"]


def test_the_api_wants_x_platform_web_and_a_valid_search_condition(client, key):
    url = f"{client.base_url}/v2/entities:search"
    proof = signed_proof(key, url)
    no_platform = client.post("/v2/entities:search", json=search_body(KEYWORD), headers={"DPoP": proof})
    assert no_platform.status_code == 400 and "X-Platform" in no_platform.json()["message"]
    body = search_body(KEYWORD)
    body["searchCondition"]["sort"] = "SORT_SCORE"
    assert api_search(client, key, body).status_code == 400
    assert api_search(client, key, search_body(KEYWORD, ["STATUS_GONE"])).status_code == 400
    assert api_search(client, key, search_body(KEYWORD, token="page-2")).status_code == 400
    numeric_token = search_body(KEYWORD) | {"pageToken": 2}
    assert api_search(client, key, numeric_token).status_code == 400
    foreign_htu = {"X-Platform": "web", "DPoP": signed_proof(key, f"{url}/検索")}
    refused = client.post("/v2/entities:search", json=search_body(KEYWORD), headers=foreign_htu)
    assert refused.status_code == 401 and "検索" in refused.json()["message"]


def test_the_web_search_url_of_spec_3_is_served_with_cells_only_in_the_scripts_data(client):
    url = (
        f"/search?keyword={quote(KEYWORD)}&order=desc&sort=created_time&status=sold_out%7Ctrading"
        f"&page_token=v1:1&as_of={AS_OF}"
    )
    assert "%20" in url
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f"<title>{KEYWORD}の通販・購入はメルカリ</title>" in html
    assert '<li data-testid="item-cell"' not in html  # rendered by the page's script only
    assert html.count('\\u003cli data-testid=\\"item-cell\\"') == 120
    assert "page_token=v1%3A2" in html and "status=sold_out%7Ctrading" in html
    assert client.get(url.replace("sort=created_time", "sort=score")).status_code == 400
    assert client.get(url.replace("v1:1", "2")).status_code == 400


def test_an_unknown_keyword_shows_the_empty_result(client):
    html = client.get("/search", params={"keyword": "存在しない", "order": "desc", "sort": "created_time"}).text
    assert 'data-testid="search-result-empty"' in html and "item-grid-data" not in html


def web_get(client: httpx.Client, keyword: str) -> httpx.Response:
    params = {"keyword": keyword, "order": "desc", "sort": "created_time", "status": "on_sale"}
    return client.get("/search", params=params)


def test_each_blocking_fault_is_served_on_the_web_page(client):
    forbidden = web_get(client, "faulty-forbidden")
    assert forbidden.status_code == 403 and "<title>403 Forbidden</title>" in forbidden.text
    limited = web_get(client, "faulty-rate_limited")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    assert "<title>429 Too Many Requests</title>" in limited.text
    challenge = web_get(client, "faulty-cloudflare")
    assert challenge.status_code == 403 and challenge.headers["cf-mitigated"] == "challenge"
    assert "<title>Just a moment...</title>" in challenge.text and "Ray ID: <code>" in challenge.text
    assert '<iframe src="https://challenges.cloudflare.com/' in challenge.text
    recaptcha = web_get(client, "faulty-captcha")
    assert recaptcha.status_code == 200 and 'class="g-recaptcha"' in recaptcha.text
    assert "https://www.google.com/recaptcha/api.js" in recaptcha.text
    hcaptcha = web_get(client, "faulty-hcaptcha")
    assert hcaptcha.status_code == 200 and 'class="h-captcha"' in hcaptcha.text and "hcaptcha.com" in hcaptcha.text
    blank = web_get(client, "faulty-blank")
    assert blank.status_code == 200 and blank.content == b""


def test_blocks_come_before_the_apis_own_checks(client):
    # Cloudflare stands in front of the API: no proof is looked at when a block answers.
    def post(keyword: str) -> httpx.Response:
        return client.post("/v2/entities:search", json=search_body(keyword))

    forbidden = post("faulty-forbidden")
    assert forbidden.status_code == 403 and forbidden.json()["code"] == 7
    limited = post("faulty-rate_limited")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    assert post("faulty-cloudflare").text.count("Just a moment...") == 1
    assert 'class="g-recaptcha"' in post("faulty-captcha").text
    assert 'class="h-captcha"' in post("faulty-hcaptcha").text
    assert post("faulty-blank").content == b""


def test_a_dropped_connection_closes_the_socket_without_a_response(client):
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        web_get(client, "faulty-drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v2/entities:search", json=search_body("faulty-drop"))
    assert client.get("/health").status_code == 200


def test_a_slow_response_comes_after_the_delay(client):
    started = time.monotonic()
    response = web_get(client, "faulty-slow")
    assert response.status_code == 200 and time.monotonic() - started >= SLOW_SECONDS


def test_faults_can_be_set_at_runtime_for_the_next_requests_of_one_surface(client, key):
    rules = {"rules": [{"kinds": ["rate_limited"], "surface": "api", "count": 2}]}
    assert client.post("/__faults", json=rules).status_code == 200
    statuses = [api_search(client, key, search_body(KEYWORD)).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert web_get(client, KEYWORD).status_code == 200
    assert client.get("/__faults").json()["rules"][0]["remaining"] == 0
    assert client.post("/__faults", json={"rules": [{"kinds": ["meteor"]}]}).status_code == 400
    assert client.delete("/__faults").json() == {"rules": []}


def test_a_fault_rate_hits_about_that_fraction_of_requests(client):
    client.post("/__faults", json={"rules": [{"kinds": ["forbidden", "captcha"], "rate": 0.5}]})
    statuses = [web_get(client, KEYWORD) for _ in range(60)]
    blocked = [r for r in statuses if r.status_code == 403 or "g-recaptcha" in r.text]
    assert 15 <= len(blocked) <= 45
    assert {r.status_code for r in blocked} == {200, 403}


def test_a_fault_plan_repeats_itself_for_the_same_seed():
    rules = [FaultRule(kinds=(FaultKind.FORBIDDEN, FaultKind.BLANK), rate=0.3)]

    def run(seed: int) -> list:
        plan = FaultPlan(rules, seed=seed)
        return [plan.fault_for(Surface.WEB, "k") for _ in range(100)]

    assert run(1) == run(1) != run(2)


def test_the_request_log_counts_what_was_served(client):
    client.delete("/__requests")
    web_get(client, KEYWORD)
    web_get(client, "faulty-forbidden")
    assert client.get("/__requests").json()["counts"] == {"web 200": 1, "web fault:forbidden": 1}


def test_as_of_comes_from_the_query_the_header_or_a_frozen_clock(client, key):
    def first_ids(**request) -> list[str]:
        return [item["id"] for item in client.get("/__items", **request).json()["items"][:5]]

    by_query = first_ids(params={"keyword": KEYWORD, "as_of": AS_OF})
    assert first_ids(params={"keyword": KEYWORD}, headers={"X-Sim-As-Of": str(AS_OF)}) == by_query
    rfc3339 = first_ids(params={"keyword": KEYWORD, "as_of": "2026-01-14T00:25:00+09:00"})
    assert rfc3339 == by_query
    assert client.post("/__clock", json={"now": AS_OF, "scale": 0}).json()["now"] == AS_OF
    time.sleep(1.1)
    assert client.get("/health").json()["market_time"] == AS_OF
    assert first_ids(params={"keyword": KEYWORD}) == by_query
    api_items = api_search(client, key, search_body(KEYWORD), as_of=None).json()["items"]
    assert [item["id"] for item in api_items[:5]] == by_query
    assert client.get("/__items", params={"keyword": KEYWORD, "as_of": "yesterday"}).status_code == 400


def test_a_scaled_clock_runs_the_market_faster(client):
    client.post("/__clock", json={"now": AS_OF, "scale": 3600})
    time.sleep(0.5)
    now = client.get("/__clock").json()["now"]
    assert AS_OF + 1700 <= now <= AS_OF + 3600


def test_truth_is_served_per_japan_hour(client, state):
    response = client.get("/__truth", params={"keyword": KEYWORD, "from": "2026-01-13T18:00:00+09:00", "to": AS_OF})
    body = response.json()
    expected = state.market.truth(KEYWORD, AS_OF - 6 * HOUR - 1500, AS_OF)
    assert [h["created"] for h in body["hours"]] == [h.created for h in expected]
    assert [h["sold"] for h in body["hours"]] == [h.sold for h in expected]
    assert body["hours"][0]["hour"] == "2026-01-13T18:00:00+09:00" and len(body["hours"]) == 7
    assert body["totals"]["created"] == sum(h.created for h in expected) > 0 and body["known"]
    assert client.get("/__truth", params={"keyword": KEYWORD, "from": AS_OF, "to": AS_OF - 1}).status_code == 400
    assert client.get("/__truth", params={"keyword": KEYWORD, "from": "soon", "to": AS_OF}).status_code == 400


def test_truth_matches_what_the_api_shows_for_each_hour(client, key):
    hour_start = (AS_OF // HOUR - 5) * HOUR
    truth = client.get("/__truth", params={"keyword": KEEP, "from": hour_start, "to": hour_start + HOUR}).json()
    (hour,) = truth["hours"]
    # Nothing of this keyword is withdrawn: every listing created in the hour is still listed.
    everything = api_pages(client, key, KEEP, [], hour_start + HOUR - 1)
    created_in_hour = [i for i in everything if hour_start <= int(i["created"]) < hour_start + HOUR]
    assert len(created_in_hour) == hour["created"]
    sold = ["STATUS_SOLD_OUT", "STATUS_TRADING"]
    sold_before = {i["id"] for i in api_pages(client, key, KEEP, sold, hour_start - 1)}
    sold_by_end = {i["id"] for i in api_pages(client, key, KEEP, sold, hour_start + HOUR - 1)}
    assert len(sold_by_end - sold_before) == hour["sold"]


def test_the_truth_span_counts_to_the_second_what_the_api_shows(client, key):
    start = (AS_OF // HOUR - 5) * HOUR + 600  # 10 to 40 minutes past an hour
    end = start + 1800
    span = client.get("/__truth", params={"keyword": KEEP, "from": start, "to": end}).json()["span"]
    everything = api_pages(client, key, KEEP, [], end - 1)
    assert span["created"] == len([i for i in everything if start <= int(i["created"]) < end]) > 0
    sold = ["STATUS_SOLD_OUT", "STATUS_TRADING"]
    sold_before = {i["id"] for i in api_pages(client, key, KEEP, sold, start - 1)}
    sold_by_end = {i["id"] for i in api_pages(client, key, KEEP, sold, end - 1)}
    assert span["sold"] == len(sold_by_end - sold_before) > 0
    whole = client.get("/__truth", params={"keyword": KEEP, "from": start - 600, "to": start + 3000}).json()
    assert whole["span"] == whole["totals"]


def test_the_search_page_asks_the_search_api_for_what_its_cells_show(client):
    url = f"/search?keyword={quote(KEYWORD)}&order=desc&sort=created_time&status=sold_out%7Ctrading&page_token=v1:1"
    html = client.get(url + f"&as_of={AS_OF}").text
    embedded = html.split('<script id="search-request" type="application/json">', 1)[1].split("</script>", 1)[0]
    search = json.loads(embedded)
    assert search["asOf"] == AS_OF and search["url"] == "/web-api/v2/entities:search"
    assert search["body"]["pageToken"] == "v1:1"
    assert search["body"]["searchCondition"]["status"] == ["STATUS_SOLD_OUT", "STATUS_TRADING"]
    client.delete("/__requests")
    answer = client.post(search["url"], json=search["body"], headers={"X-Sim-As-Of": str(search["asOf"])})
    assert answer.status_code == 200
    served = client.get(
        "/__items",
        params={"keyword": KEYWORD, "status": "sold_out|trading", "page_token": "v1:1", "as_of": AS_OF},
    ).json()["items"]
    assert [(i["id"], int(i["created"]), int(i["updated"])) for i in answer.json()["items"]] == [
        (i["id"], i["created"], i["updated"]) for i in served
    ]
    assert answer.json()["meta"]["nextPageToken"] == "v1:2"
    assert client.get("/__requests").json()["counts"] == {}  # the page's call is not a request of its own
    assert client.post(search["url"], json={"searchCondition": 3}).status_code == 400
