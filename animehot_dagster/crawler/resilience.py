"""The crawler's switching rules as pure state machines (SPEC §3): API or browser mode, the
circuit breaker, the proxy switch, and retry backoff. Time comes from an injected clock and
every duration is a parameter, so tests run the rules in milliseconds.

Each request attempt is reported once to each machine that cares: the mode selector hears
about API attempts, the circuit breaker and the proxy switch about every attempt.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import time
from collections.abc import Callable

from animehot_dagster.crawler.errors import CrawlError, ErrorKind

Clock = Callable[[], float]


class Mode(enum.Enum):
    API = "api"
    BROWSER = "browser"


@dataclasses.dataclass(frozen=True)
class ResiliencePolicy:
    """The durations and thresholds of SPEC §3, as defaults; tests shrink them."""

    api_failures_before_fallback: int = 3
    forbidden_pause_seconds: float = 60.0
    api_retry_after_seconds: float = 300.0
    circuit_failures: int = 5
    circuit_open_seconds: float = 60.0
    network_retries: int = 3
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 30.0


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter before retry ``attempt`` (0-based): half the doubled
    delay is fixed and half random, so retries spread out yet still back off."""
    ceiling = min(cap, base * 2**attempt)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class ModeSelector:
    """API mode first. After ``api_failures_before_fallback`` consecutive API failures the
    browser takes over; after ``api_retry_after_seconds`` in browser mode the API is tried
    again, as a probe: its first failure sends the crawler straight back to the browser. An API
    403 holds API requests back for ``forbidden_pause_seconds``. ``pinned`` fixes the mode."""

    def __init__(self, policy: ResiliencePolicy, clock: Clock = time.monotonic, pinned: Mode | None = None) -> None:
        self._policy = policy
        self._clock = clock
        self._pinned = pinned
        self._mode = pinned or Mode.API
        self._api_failures = 0
        self._browser_since = 0.0
        self._api_paused_until = 0.0

    def current(self) -> Mode:
        if (
            self._pinned is None
            and self._mode is Mode.BROWSER
            and self._clock() - self._browser_since >= self._policy.api_retry_after_seconds
        ):
            self._mode = Mode.API
            self._api_failures = self._policy.api_failures_before_fallback - 1
        return self._mode

    def api_pause(self) -> float:
        """Seconds to hold an API request back (after a 403); 0 when it may go now."""
        return max(0.0, self._api_paused_until - self._clock())

    def record_api_success(self) -> None:
        self._api_failures = 0

    def record_api_failure(self, error: CrawlError) -> None:
        now = self._clock()
        if error.status == 403:
            self._api_paused_until = now + self._policy.forbidden_pause_seconds
        self._api_failures += 1
        if self._pinned is None and self._mode is Mode.API and self._api_failures >= self._policy.api_failures_before_fallback:
            self._mode = Mode.BROWSER
            self._browser_since = now


class CircuitBreaker:
    """Opens after ``failures`` consecutive failed requests and refuses requests for
    ``open_seconds``; then lets requests through again, and one more failure reopens it."""

    def __init__(self, failures: int, open_seconds: float, clock: Clock = time.monotonic) -> None:
        self._threshold = failures
        self._open_seconds = open_seconds
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    def seconds_until_closed(self) -> float:
        return max(0.0, self._open_until - self._clock())

    def allows(self) -> bool:
        return self.seconds_until_closed() == 0

    def record_success(self) -> None:
        self._failures = 0

    def record_failure(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold:
            self._open_until = self._clock() + self._open_seconds
            # Half-open once the time is up: the next failure alone reopens it.
            self._failures = self._threshold - 1


# The failures a different network path can cure; an unknown error (a bad request) cannot.
PROXY_CURABLE = frozenset({ErrorKind.BLOCKED, ErrorKind.TIMEOUT, ErrorKind.NETWORK})


class ProxySwitch:
    """With auto switching on and a proxy configured: after ``threshold`` consecutive
    blocked/timeout/network failures the crawler should health-check the proxy and move to it
    (:meth:`wants_proxy`, then :meth:`use_proxy` or :meth:`proxy_unhealthy`). It stays on the
    proxy at least ``cooldown_seconds``, then goes back to the direct path."""

    def __init__(self, proxy_url: str, auto_switch: bool, threshold: int, cooldown_seconds: float,
                 clock: Clock = time.monotonic) -> None:
        self.proxy_url = proxy_url
        self._enabled = auto_switch and bool(proxy_url)
        self._threshold = threshold
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._proxied_since: float | None = None

    @property
    def on_proxy(self) -> bool:
        return self._proxied_since is not None

    def current_proxy(self) -> str | None:
        return self.proxy_url if self.on_proxy else None

    def cooldown_over(self) -> bool:
        return self.on_proxy and self._clock() - self._proxied_since >= self._cooldown

    def wants_proxy(self) -> bool:
        return self._enabled and not self.on_proxy and self._failures >= self._threshold

    def record(self, error: CrawlError | None) -> None:
        if error is None:
            self._failures = 0
        elif error.kind in PROXY_CURABLE:
            self._failures += 1

    def use_proxy(self) -> None:
        self._proxied_since = self._clock()
        self._failures = 0

    def proxy_unhealthy(self) -> None:
        """The health check failed: stay direct and count afresh before checking again."""
        self._failures = 0

    def use_direct(self) -> None:
        self._proxied_since = None
        self._failures = 0
