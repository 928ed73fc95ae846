"""What both crawl modes fetch: one result page of one search."""

from __future__ import annotations

import dataclasses

from animehot_dagster.domain.messages import Item


@dataclasses.dataclass(frozen=True)
class SearchQuery:
    keyword: str
    sold: bool  # False: items on sale; True: sold out or trading


@dataclasses.dataclass(frozen=True)
class SearchPage:
    items: list[Item]
    next_page_token: str  # "" when this was the last page (empty, or the site says so)
    num_found: int | None = None  # the search's result count, when the page tells it


def page_token_for(index: int) -> str:
    """The token of 0-based page ``index``: what the web URL's ``page_token`` and the API's
    ``pageToken`` both carry (``v1:<N>``; none for the first page)."""
    return f"v1:{index}" if index > 0 else ""
