"""``animehot crawl KEYWORD``: one crawl without Redis, the CrawlResponse JSON on stdout."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from animehot_dagster.crawler.commands import crawl_command
from animehot_dagster.domain.messages import NO_ITEMS, decode_response
from animehot_dagster.settings import load_settings
from animehot_dagster.simulator.faults import FaultKind, Surface
from animehot_dagster_tests.crawler import (
    EMPTY,
    SMALL,
    expected_item,
    reported,
)


@pytest.fixture
def run_crawl(market):
    settings = load_settings({"MERCARI_WEB_URL": market.url, "MERCARI_API_URL": market.url, "APP_RATE_LIMIT": "50"})

    def run(*args: str):
        return CliRunner().invoke(crawl_command, list(args), obj={"settings": settings}, catch_exceptions=False)

    return run


@pytest.mark.parametrize("mode", ["api", "browser"])
def test_crawl_prints_the_response_of_one_crawl(run_crawl, market, mode):
    result = run_crawl(SMALL, "--mode", mode, "--pages-on-sale", "1", "--pages-sold", "1")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["pagesCrawled"] == 2 and "errorMessage" not in body
    served = market.served(SMALL, sold=False, pages=1) | market.served(SMALL, sold=True, pages=1)
    response = decode_response(body | {"ipId": "1"})  # a one-off crawl belongs to no IP
    assert reported(response.items) == {expected_item(item) for item in served.values()}
    surface = Surface.API if mode == "api" else Surface.WEB
    assert len(market.requests(surface)) == 2 and len(market.requests()) == 2


def test_crawl_reports_no_items_and_exits_non_zero_when_every_page_failed(run_crawl, market):
    empty = run_crawl(EMPTY, "--mode", "api")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["errorMessage"] == NO_ITEMS
    market.fail(FaultKind.CAPTCHA, surface=Surface.API)
    blocked = run_crawl(SMALL, "--mode", "api", "--pages-on-sale", "1", "--pages-sold", "0")
    assert blocked.exit_code == 1
    assert json.loads(blocked.stdout)["errorMessage"] == "no page crawled (blocked ×1); last: blocked: captcha"


def test_crawl_refuses_nothing_to_crawl(run_crawl):
    result = run_crawl(SMALL, "--pages-on-sale", "0", "--pages-sold", "0")
    assert result.exit_code == 2 and "nothing to crawl" in result.output
