"""Block detection and error classification on the pages a block really shows (the simulator
renders them as Cloudflare, reCAPTCHA and hCaptcha do)."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from animehot_dagster.crawler.api import page_from_api_response
from animehot_dagster.crawler.errors import (
    BlockSign,
    CrawlError,
    ErrorKind,
    PageSnapshot,
    classify_exception,
    detect_block,
    is_blank,
    kind_for_status,
)
from animehot_dagster.simulator import pages


@pytest.mark.parametrize(
    ("status", "title", "html", "sign"),
    [
        (403, "Just a moment...", pages.cloudflare_challenge_page("8a1b2c3d4e5f6a7b"), BlockSign.CLOUDFLARE),
        (200, "", "<html><body><p>Please wait while we check your browser</p></body></html>", BlockSign.CLOUDFLARE),
        (200, "", '<iframe src="https://challenges.cloudflare.com/x"></iframe>', BlockSign.CLOUDFLARE),
        (200, "アクセスを確認しています | メルカリ", pages.recaptcha_page(), BlockSign.CAPTCHA),
        (200, "アクセスを確認しています | メルカリ", pages.hcaptcha_page(), BlockSign.CAPTCHA),
        (403, "403 Forbidden", pages.forbidden_page(), BlockSign.FORBIDDEN),
        (429, "429 Too Many Requests", pages.too_many_requests_page(), BlockSign.TOO_MANY_REQUESTS),
        (200, "403 Forbidden", "<html><body><h1>403 Forbidden</h1></body></html>", BlockSign.BLOCKED_TITLE),
        (200, "429 Too Many Requests", "<html><body>slow down</body></html>", BlockSign.BLOCKED_TITLE),
        (200, "You have been blocked", "<html><body>sorry</body></html>", BlockSign.BLOCKED_TITLE),
        (200, "", "", BlockSign.BLANK),
        (200, "", "<html><head></head><body>\n </body></html>", BlockSign.BLANK),
    ],
)
def test_every_kind_of_block_is_recognised(status, title, html, sign):
    assert detect_block(PageSnapshot(status=status, title=title, html=html)) is sign


def test_a_results_page_is_never_a_block_whatever_its_items_are_called():
    html = "<html><body><span>please wait ray id blocked recaptcha</span></body></html>"
    snapshot = PageSnapshot(status=200, title="blocked の通販・購入はメルカリ", html=html, shows_results=True)
    assert detect_block(snapshot) is None
    assert detect_block(PageSnapshot(status=200, title="x", html="<html><body><p>ok</p></body></html>")) is None


def test_blank_means_nothing_in_the_body():
    assert is_blank("")
    assert is_blank("<html><head><title>t</title></head><body></body></html>")
    assert not is_blank("<html><body><div id='__next'></div></body></html>")


@pytest.mark.parametrize(
    ("status", "body", "kind", "sign"),
    [
        (403, b'{"code":7,"message":"PERMISSION_DENIED","details":[]}', ErrorKind.BLOCKED, BlockSign.FORBIDDEN),
        (429, b'{"code":8,"message":"RESOURCE_EXHAUSTED"}', ErrorKind.BLOCKED, BlockSign.TOO_MANY_REQUESTS),
        (200, pages.recaptcha_page().encode(), ErrorKind.BLOCKED, BlockSign.CAPTCHA),
        (200, b"", ErrorKind.BLOCKED, BlockSign.BLANK),
        (401, b'{"code":16,"message":"invalid DPoP proof"}', ErrorKind.UNKNOWN, None),
        (503, b'{"code":14,"message":"unavailable"}', ErrorKind.NETWORK, None),
        (200, b'{"unexpected": true}', ErrorKind.UNKNOWN, None),
    ],
)
def test_api_answers_that_are_not_a_page_are_classified(status, body, kind, sign):
    with pytest.raises(CrawlError) as failure:
        page_from_api_response(status, body, "https://jp.mercari.com")
    assert (failure.value.kind, failure.value.block, failure.value.status) == (kind, sign, status)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("slow"), ErrorKind.TIMEOUT),
        (TimeoutError(), ErrorKind.TIMEOUT),
        (PlaywrightTimeoutError("Timeout 60000ms exceeded."), ErrorKind.TIMEOUT),
        (PlaywrightError("net::ERR_TIMED_OUT at http://x/search"), ErrorKind.TIMEOUT),
        (httpx.ConnectError("refused"), ErrorKind.NETWORK),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), ErrorKind.NETWORK),
        (httpx.ProxyError("502"), ErrorKind.NETWORK),
        (PlaywrightError("net::ERR_EMPTY_RESPONSE at http://x/search"), ErrorKind.NETWORK),
        (ConnectionResetError(), ErrorKind.NETWORK),
        (PlaywrightError("Target page, context or browser has been closed"), ErrorKind.UNKNOWN),
        (ValueError("bug"), ErrorKind.UNKNOWN),
    ],
)
def test_exceptions_are_classified(exc, kind):
    assert classify_exception(exc) is kind


def test_unexpected_statuses():
    assert kind_for_status(502) is ErrorKind.NETWORK
    assert kind_for_status(404) is ErrorKind.UNKNOWN
