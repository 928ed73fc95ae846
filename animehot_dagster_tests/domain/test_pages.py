"""The complete-crawl rule of the ``crawl_pages_complete`` check: a crawl may read fewer pages
than asked only when the search ran out of results."""

from __future__ import annotations

import pytest

from animehot_dagster.domain.pages import PAGE_SIZE, stopped_short

ASKED = 10


def test_a_crawl_that_stopped_with_results_left_is_short():
    assert stopped_short(False, pages_crawled=3, pages_asked=ASKED, total_found=3 * PAGE_SIZE + 1)


@pytest.mark.parametrize(
    "failed, pages_crawled, total_found",
    [
        (False, ASKED, 100_000),  # read every page asked for
        (False, 3, 3 * PAGE_SIZE),  # the results ran out on its last page
        (False, 0, 0),  # nothing found
        (True, 0, 100_000),  # failed: its error says why, not this rule
    ],
)
def test_a_crawl_that_read_what_there_was_is_complete(failed, pages_crawled, total_found):
    assert not stopped_short(failed, pages_crawled, ASKED, total_found)

