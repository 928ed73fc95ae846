"""The market's clock: wall time by default, fast-forwarded or frozen on demand.

Market time = anchor + scale × (wall time elapsed since the anchor was set). Scale 1 from now is
the real clock; scale 60 runs an hour of market a minute (a demo sees hours of inflow in
minutes); scale 0 freezes the market at the anchor, which the accuracy harness uses to crawl a
chosen moment with a crawler that knows nothing of the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class MarketClock:
    def __init__(self, start: float | None = None, scale: float = 1.0, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._anchor_wall = 0.0
        self._anchor_market = 0.0
        self.scale = scale
        self.set(wall() if start is None else start, scale)

    def set(self, start: float | None = None, scale: float | None = None) -> None:
        """Re-anchor: market time becomes ``start`` (default: unchanged) and runs at ``scale``
        (default: unchanged) from now on."""
        if scale is not None and scale < 0:
            raise ValueError("the time scale cannot be negative")
        market_now = self.now_exact() if start is None else start
        self._anchor_wall = self._wall()
        self._anchor_market = market_now
        if scale is not None:
            self.scale = scale

    def now_exact(self) -> float:
        return self._anchor_market + self.scale * (self._wall() - self._anchor_wall)

    def now(self) -> int:
        return int(self.now_exact())

    def reported(self, market_seconds: int) -> int:
        """A market time (a listing's ``created``, ``updated``) as a crawler node reading the market
        sees it: a node stamps its crawls with the wall clock, so while the market runs fast its
        times are served on the wall clock too (an hour of market that passed in a minute is a
        minute). A frozen market serves its own times: whoever froze it knows the moment."""
        if self.scale == 0:
            return market_seconds
        return int(self._anchor_wall + (market_seconds - self._anchor_market) / self.scale)
