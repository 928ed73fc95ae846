"""CrawlRequest / CrawlResponse / Item and their protobuf-JSON wire codec (SPEC §6).

The wire format is what the original system's crawler nodes speak: camelCase names, 64-bit
integers as strings (numbers accepted too), enum values by name, zero values omitted, unknown
fields ignored. Decoding never guesses: a bad field raises :class:`MessageError` naming it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from animehot_dagster.domain.pages import PAGE_SIZE


class MessageError(ValueError):
    """A message could not be decoded; the text says which field and why."""


class OutOfBounds(MessageError):
    """A message that decodes but that no crawl can have produced (SPEC §6 "Bounds"): it is
    dead-lettered at once with this reason, never retried and never applied."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")  # as every MessageError: the field, then why


# SPEC §6 "Bounds". A search page holds PAGE_SIZE items (web page and API alike) and a task
# crawls at most MAX_PAGES_PER_PHASE pages of each phase (on sale, sold).
MAX_PAGES_PER_PHASE = 20
PHASES = 2
# Times (crawl, listing created/updated): not before 2012, not more than an hour ahead of the
# clock of whoever decodes (a node's clock may be somewhat fast; a year-3000 one is a fault).
EARLIEST_TIME = 1_325_376_000  # 2012-01-01T00:00:00Z
MAX_SECONDS_AHEAD = 3600
# The columns the fields are stored in (storage/schema.py), in characters.
MAX_LENGTHS = {"task_id": 64, "source_id": 64, "title": 512, "url": 1024}
_MAX_BIGINT = 2**63 - 1


class ItemStatus(enum.Enum):
    ON_SALE = "ITEM_STATUS_ON_SALE"
    SOLD = "ITEM_STATUS_SOLD"


# proto3 numbering (ON_SALE is the zero value, which is why an omitted status means on sale),
# so numeric enum values from other encoders decode too.
_ITEM_STATUS_NUMBERS = {0: ItemStatus.ON_SALE, 1: ItemStatus.SOLD}

NO_ITEMS = "no_items"


@dataclasses.dataclass(frozen=True)
class Item:
    # proto3 omits an empty sourceId, so it must decode (to "") like every other field; the
    # state machine skips such items (SPEC §4) instead of the whole message failing.
    source_id: str = ""
    title: str = ""
    price: int = 0
    image_url: str = ""
    item_url: str = ""
    status: ItemStatus = ItemStatus.ON_SALE
    # Additions of this project (SPEC §4.1; older nodes omit them, 0 = not reported): when the
    # listing was created and last updated, unix seconds, as the search API reports them.
    created: int = 0
    updated: int = 0

    @property
    def is_sold(self) -> bool:
        return self.status is ItemStatus.SOLD


class PageBudget(Protocol):
    """How many pages of each phase a crawl reads (the cadence policy, the dispatch config)."""

    pages_on_sale: int
    pages_sold: int


@dataclasses.dataclass(frozen=True)
class CrawlRequest:
    ip_id: int
    keyword: str
    task_id: str
    created_at: int = 0
    retry_count: int = 0
    pages_on_sale: int = 0
    pages_sold: int = 0

    @classmethod
    def new_task(cls, ip_id: int, keyword: str, pages: PageBudget, created_at: float,
                 task_id: str | None = None) -> CrawlRequest:
        """A new task for the IP: a fresh UUID unless ``task_id`` is given, created at
        ``created_at`` (unix seconds), reading the budget's pages."""
        return cls(
            ip_id=ip_id,
            keyword=keyword,
            task_id=task_id or str(uuid.uuid4()),
            created_at=int(created_at),
            pages_on_sale=pages.pages_on_sale,
            pages_sold=pages.pages_sold,
        )


@dataclasses.dataclass(frozen=True)
class CrawlResponse:
    ip_id: int
    task_id: str
    crawled_at: int
    items: tuple[Item, ...] = ()
    total_found: int = 0
    error_message: str = ""
    pages_crawled: int = 0
    retry_count: int = 0
    # An addition of this project (older nodes omit it): which crawler node produced the result.
    crawler_node: str = ""
    # Additions of this project (SPEC §4.1): the search's result count of each phase, None when
    # not reported (0 is a real count, so presence is kept), and whether the on-sale search
    # had more pages than the crawl read.
    found_on_sale: int | None = None
    found_sold: int | None = None
    on_sale_more: bool = False

    @property
    def has_counts(self) -> bool:
        """True when the result carries what the event-time method needs (SPEC §4.1)."""
        return self.found_on_sale is not None and self.found_sold is not None

    @property
    def failed(self) -> bool:
        """True when the crawl produced no usable observation (``no_items`` is a success)."""
        return bool(self.error_message) and self.error_message != NO_ITEMS


# (python attribute, wire name, kind, is 64-bit). Kinds: int, uint, count (an optional count whose
# presence is kept, so 0 is sent), bool, str, status, items.
_REQUEST_FIELDS = (
    ("ip_id", "ipId", "uint", True),
    ("keyword", "keyword", "str", False),
    ("task_id", "taskId", "str", False),
    ("created_at", "createdAt", "int", True),
    ("retry_count", "retryCount", "int", False),
    ("pages_on_sale", "pagesOnSale", "int", False),
    ("pages_sold", "pagesSold", "int", False),
)
_RESPONSE_FIELDS = (
    ("ip_id", "ipId", "uint", True),
    ("items", "items", "items", False),
    ("total_found", "totalFound", "int", False),
    ("error_message", "errorMessage", "str", False),
    ("task_id", "taskId", "str", False),
    ("crawled_at", "crawledAt", "int", True),
    ("pages_crawled", "pagesCrawled", "int", False),
    ("retry_count", "retryCount", "int", False),
    ("crawler_node", "crawlerNode", "str", False),
    ("found_on_sale", "foundOnSale", "count", True),
    ("found_sold", "foundSold", "count", True),
    ("on_sale_more", "onSaleMore", "bool", False),
)
_ITEM_FIELDS = (
    ("source_id", "sourceId", "str", False),
    ("title", "title", "str", False),
    ("price", "price", "int", False),
    ("image_url", "imageUrl", "str", False),
    ("item_url", "itemUrl", "str", False),
    ("status", "status", "status", False),
    ("created", "created", "int", True),
    ("updated", "updated", "int", True),
)

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)


def _decode_int(value: Any, where: str, kind: str, wide: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise MessageError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise MessageError(f"{where}: expected an integer, got {value!r}")
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            raise MessageError(f"{where}: expected an integer, got {value!r}") from None
    else:
        number = value
    low, high = _UINT64 if kind == "uint" else (_INT64 if wide else _INT32)
    if not low <= number <= high:
        raise MessageError(f"{where}: {number} is out of range")
    return number


def _decode_status(value: Any, where: str) -> ItemStatus:
    if isinstance(value, int) and not isinstance(value, bool) and value in _ITEM_STATUS_NUMBERS:
        return _ITEM_STATUS_NUMBERS[value]
    try:
        return ItemStatus(value)
    except ValueError:
        raise MessageError(
            f"{where}: unknown item status {value!r} "
            f"(expected {ItemStatus.ON_SALE.value} or {ItemStatus.SOLD.value})"
        ) from None


def _decode_fields(body: Any, fields: tuple, where: str) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise MessageError(f"{where}: expected a JSON object, got {type(body).__name__}")
    values: dict[str, Any] = {}
    for attribute, wire, kind, wide in fields:
        # protobuf-JSON parsers accept the original field names as well.
        raw = body.get(wire, body.get(_snake(wire)))
        if raw is None:
            continue
        path = f"{where}.{wire}"
        if kind in ("int", "uint"):
            values[attribute] = _decode_int(raw, path, kind, wide)
        elif kind == "count":
            values[attribute] = _decode_int(raw, path, "uint", wide)
        elif kind == "bool":
            if not isinstance(raw, bool):
                raise MessageError(f"{path}: expected true or false, got {raw!r}")
            values[attribute] = raw
        elif kind == "str":
            if not isinstance(raw, str):
                raise MessageError(f"{path}: expected a string, got {type(raw).__name__}")
            values[attribute] = raw
        elif kind == "status":
            values[attribute] = _decode_status(raw, path)
        elif kind == "items":
            if not isinstance(raw, list):
                raise MessageError(f"{path}: expected a list, got {type(raw).__name__}")
            values[attribute] = tuple(
                Item(**_decode_fields(entry, _ITEM_FIELDS, f"{path}[{index}]"))
                for index, entry in enumerate(raw)
            )
    return values


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _require(values: dict[str, Any], where: str, *names: tuple[str, str]) -> None:
    for attribute, wire in names:
        if not values.get(attribute):
            raise MessageError(f"{where}.{wire}: required and missing")


def _load(payload: str | bytes | Mapping[str, Any], where: str) -> Any:
    if isinstance(payload, Mapping):
        return payload
    try:
        return json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MessageError(f"{where}: not JSON ({exc})") from None


def decode_request(payload: str | bytes | Mapping[str, Any]) -> CrawlRequest:
    """A CrawlRequest; :class:`OutOfBounds` for page counts outside 0–20 (0: not said) or a task
    id longer than its column."""
    values = _decode_fields(_load(payload, "CrawlRequest"), _REQUEST_FIELDS, "CrawlRequest")
    _require(values, "CrawlRequest", ("ip_id", "ipId"), ("task_id", "taskId"), ("keyword", "keyword"))
    request = CrawlRequest(**values)
    _check_length(request.task_id, "task_id", "CrawlRequest.taskId")
    for pages, wire in ((request.pages_on_sale, "pagesOnSale"), (request.pages_sold, "pagesSold")):
        if not 0 <= pages <= MAX_PAGES_PER_PHASE:
            raise OutOfBounds(f"CrawlRequest.{wire}", f"{pages} pages: a phase has 1 to {MAX_PAGES_PER_PHASE} (0: not said)")
    if request.retry_count < 0:
        raise OutOfBounds("CrawlRequest.retryCount", f"{request.retry_count} is negative")
    return request


# Unix seconds a datetime can hold (up to 9999-12-31): a crawl time outside them is malformed,
# not something for ingest to trip over later.
MAX_UNIX_SECONDS = 253_402_300_799


def decode_response(payload: str | bytes | Mapping[str, Any], now: float | None = None) -> CrawlResponse:
    """A CrawlResponse; :class:`OutOfBounds` when it is outside SPEC §6's bounds as of ``now``
    (unix seconds, default the clock of this process: the processor's)."""
    values = _decode_fields(_load(payload, "CrawlResponse"), _RESPONSE_FIELDS, "CrawlResponse")
    _require(values, "CrawlResponse", ("ip_id", "ipId"), ("task_id", "taskId"), ("crawled_at", "crawledAt"))
    response = CrawlResponse(**values)
    check_response_bounds(response, time.time() if now is None else now)
    return response


def check_response_bounds(response: CrawlResponse, now: float) -> None:
    """Raise :class:`OutOfBounds` for the first field of ``response`` out of bounds."""
    where = "CrawlResponse"
    _check_time(response.crawled_at, now, f"{where}.crawledAt")
    _check_length(response.task_id, "task_id", f"{where}.taskId")
    for value, wire in ((response.total_found, "totalFound"), (response.retry_count, "retryCount")):
        if value < 0:
            raise OutOfBounds(f"{where}.{wire}", f"{value} is negative")
    for value, wire in ((response.found_on_sale, "foundOnSale"), (response.found_sold, "foundSold")):
        if value is not None and value > _MAX_BIGINT:
            raise OutOfBounds(f"{where}.{wire}", f"{value} is more than any search finds")
    most_pages = PHASES * MAX_PAGES_PER_PHASE
    if not 0 <= response.pages_crawled <= most_pages:
        raise OutOfBounds(f"{where}.pagesCrawled",
                          f"{response.pages_crawled} pages: a crawl reads 0 to {most_pages} ({MAX_PAGES_PER_PHASE} a phase)")
    # pagesCrawled 0 is "not said" (proto3 omits zeros): then the most any crawl can read.
    pages = response.pages_crawled or most_pages
    room = pages * PAGE_SIZE
    if len(response.items) > room:
        raise OutOfBounds(f"{where}.items", f"{len(response.items)} items, more than {pages} pages "
                          f"of {PAGE_SIZE} hold ({room})")
    for index, item in enumerate(response.items):
        path = f"{where}.items[{index}]"
        _check_length(item.source_id, "source_id", f"{path}.sourceId")
        _check_length(item.title, "title", f"{path}.title")
        _check_length(item.image_url, "url", f"{path}.imageUrl")
        _check_length(item.item_url, "url", f"{path}.itemUrl")
        if item.price < 0:
            raise OutOfBounds(f"{path}.price", f"{item.price} is negative")
        for value, wire in ((item.created, "created"), (item.updated, "updated")):
            if value:  # 0: not reported
                _check_time(value, now, f"{path}.{wire}")


def _check_time(value: int, now: float, where: str) -> None:
    if value < EARLIEST_TIME:
        raise OutOfBounds(where, f"{value} ({_iso(value)}) is before 2012")
    if value > now + MAX_SECONDS_AHEAD:
        raise OutOfBounds(where, f"{value} ({_iso(value)}) is more than an hour ahead of the processor's clock "
                                 f"({_iso(now)})")


def _check_length(value: str, column: str, where: str) -> None:
    limit = MAX_LENGTHS[column]
    if len(value) > limit:
        raise OutOfBounds(where, f"{len(value)} characters, longer than its column ({limit})")


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "beyond any calendar"


def _encode_fields(message: Any, fields: tuple) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for attribute, wire, kind, wide in fields:
        value = getattr(message, attribute)
        if kind in ("int", "uint"):
            if value:
                body[wire] = str(value) if wide else value
        elif kind == "count":
            if value is not None:
                body[wire] = str(value)
        elif kind == "bool":
            if value:
                body[wire] = True
        elif kind == "str":
            if value:
                body[wire] = value
        elif kind == "status":
            if value is not ItemStatus.ON_SALE:
                body[wire] = value.value
        elif kind == "items":
            if value:
                body[wire] = [_encode_fields(item, _ITEM_FIELDS) for item in value]
    return body


def encode_request(request: CrawlRequest) -> str:
    return json.dumps(_encode_fields(request, _REQUEST_FIELDS), ensure_ascii=False, separators=(",", ":"))


def encode_response(response: CrawlResponse) -> str:
    return json.dumps(_encode_fields(response, _RESPONSE_FIELDS), ensure_ascii=False, separators=(",", ":"))
