"""The rule of the rollup checks: a day's or week's rows against the hourly rows of its hours, IP
by IP (SPEC §8), so that figures moved from one IP to another do not pass as totals that add up."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

# (inflow, outflow) of one IP over a bucket.
Totals = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class IpMismatch:
    """One IP whose rollup row disagrees with its hourly rows."""

    ip_id: int
    rolled: Totals | None  # None: the IP has no rollup row
    hourly: Totals | None  # None: the IP has no hourly rows in the bucket


def pooled(totals: Mapping[int, Totals]) -> Totals:
    """The (inflow, outflow) summed over every IP."""
    return sum(t[0] for t in totals.values()), sum(t[1] for t in totals.values())


def mismatched_ips(rolled: Mapping[int, Totals], hourly: Mapping[int, Totals]) -> list[IpMismatch]:
    """The IPs, by id, whose rollup totals (``rolled``: one entry per rollup row) differ from the
    sums of their hourly rows (``hourly``: one entry per IP with hourly rows in the bucket).

    An IP with hourly rows and no rollup row is a mismatch, whatever its sums: the rollup writes a
    row for every such IP. A rollup row with no hourly rows is one only when its totals are not
    zero (an IP whose hours were all empty, or removed, leaves no figures to miss)."""
    mismatches = []
    for ip_id in sorted(rolled.keys() | hourly.keys()):
        mine, hours = rolled.get(ip_id), hourly.get(ip_id)
        if hours is None:
            wrong = mine != (0, 0)
        else:
            wrong = mine != hours  # a missing row (None) included
        if wrong:
            mismatches.append(IpMismatch(ip_id, mine, hours))
    return mismatches
