"""What went wrong with a request, decided from what came back (SPEC §3 "Politeness and
resilience"): pure classifiers, no I/O.

Every failure is one of four kinds, the ``type`` label of ``animetop_crawler_errors_total``:
timeout, blocked, network, unknown. The switching rules act on the kind: network errors are
retried, blocked/timeout/network failures count towards the proxy switch.
"""

from __future__ import annotations

import dataclasses
import enum

import httpx
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from selectolax.lexbor import LexborHTMLParser


class ErrorKind(enum.Enum):
    TIMEOUT = "timeout"
    BLOCKED = "blocked"
    NETWORK = "network"
    UNKNOWN = "unknown"


class BlockSign(enum.Enum):
    """How a block showed itself."""

    CLOUDFLARE = "cloudflare interstitial"
    CAPTCHA = "captcha"
    FORBIDDEN = "http 403"
    TOO_MANY_REQUESTS = "http 429"
    BLOCKED_TITLE = "blocked page title"
    BLANK = "blank page"


class CrawlError(Exception):
    """A request that did not produce a search result page."""

    def __init__(self, kind: ErrorKind, detail: str, *, status: int | None = None, block: BlockSign | None = None):
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
        self.status = status
        self.block = block


# Matched against the lower-cased document (or API body) only when it shows no search result:
# item titles are free text and may contain any of these words.
CLOUDFLARE_MARKERS = (
    "just a moment",
    "ray id",
    "please wait",
    "challenges.cloudflare.com",
    "challenge-platform",
    "cf-challenge",
    "cf_chl_",
)
CAPTCHA_MARKERS = ("recaptcha", "hcaptcha", "h-captcha", "g-recaptcha")
BLOCKED_TITLE_MARKERS = ("403 forbidden", "429 too many", "blocked", "access denied", "attention required")
# Elements a challenge page shows, for the browser to wait on alongside the results.
BLOCK_MARKER_SELECTOR = (
    "iframe[src*='challenges.cloudflare.com'], iframe[src*='recaptcha'], iframe[src*='hcaptcha'], "
    ".g-recaptcha, .h-captcha, #challenge-stage, #challenge-form"
)


@dataclasses.dataclass(frozen=True)
class PageSnapshot:
    """What a response looked like: its HTTP status (None when the browser did not say), its
    title, its document or body, and whether it showed a search result (cells or the empty
    result element; for the API, a JSON body with ``items``)."""

    status: int | None
    title: str
    html: str
    shows_results: bool = False


def is_blank(html: str) -> bool:
    """No body, or a body with nothing but whitespace in it."""
    if not html.strip():
        return True
    body = LexborHTMLParser(html).body
    if body is None:
        return True
    return all(node.tag == "-text" and not (node.text() or "").strip() for node in body.iter(include_text=True))


def detect_block(page: PageSnapshot) -> BlockSign | None:
    """The sign of a block on ``page``, most specific first; None when it is not blocked."""
    if page.shows_results:
        return None
    text = page.html.lower()
    title = page.title.lower()
    if any(marker in text for marker in CLOUDFLARE_MARKERS) or "just a moment" in title:
        return BlockSign.CLOUDFLARE
    if any(marker in text for marker in CAPTCHA_MARKERS):
        return BlockSign.CAPTCHA
    if sign := _status_sign(page.status):
        return sign
    if any(marker in title for marker in BLOCKED_TITLE_MARKERS):
        return BlockSign.BLOCKED_TITLE
    if is_blank(page.html):
        return BlockSign.BLANK
    return None


def _status_sign(status: int | None) -> BlockSign | None:
    return {403: BlockSign.FORBIDDEN, 429: BlockSign.TOO_MANY_REQUESTS}.get(status or 0)


def blocked_error(page: PageSnapshot, sign: BlockSign) -> CrawlError:
    return CrawlError(ErrorKind.BLOCKED, sign.value, status=page.status, block=sign)


def kind_for_status(status: int) -> ErrorKind:
    """The kind of an unexpected HTTP status that is not a block: server and gateway errors
    pass (retried as network errors); anything else is a request the site will not take."""
    return ErrorKind.NETWORK if status >= 500 else ErrorKind.UNKNOWN


def classify_exception(exc: BaseException) -> ErrorKind:
    if isinstance(exc, TimeoutError | httpx.TimeoutException | PlaywrightTimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return ErrorKind.NETWORK
    if isinstance(exc, PlaywrightError):
        message = exc.message or ""
        if "net::ERR_TIMED_OUT" in message or "net::ERR_CONNECTION_TIMED_OUT" in message:
            return ErrorKind.TIMEOUT
        if "net::ERR_" in message:
            return ErrorKind.NETWORK
    return ErrorKind.UNKNOWN


def error_from_exception(exc: BaseException) -> CrawlError:
    if isinstance(exc, CrawlError):
        return exc
    return CrawlError(classify_exception(exc), f"{type(exc).__name__}: {exc}".strip())
