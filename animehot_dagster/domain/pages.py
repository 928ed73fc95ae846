"""Search pages: how many listings one holds, and what a crawl that read too few of them looks like."""

from __future__ import annotations

PAGE_SIZE = 120  # items per search page, in both the web page and the API


def stopped_short(failed: bool, pages_crawled: int, pages_asked: int, total_found: int) -> bool:
    """Whether a crawl read fewer pages than asked although the search had more results than
    those pages hold. Fewer pages is normal when the results run out first; a failed crawl is
    left out, its error already says why it stopped."""
    return not failed and pages_crawled < pages_asked and total_found > pages_crawled * PAGE_SIZE
