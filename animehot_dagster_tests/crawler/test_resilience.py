"""The switching rules of SPEC §3 as state machines on a clock the test moves."""

from __future__ import annotations

import random

from animehot_dagster.crawler.errors import CrawlError, ErrorKind
from animehot_dagster.crawler.resilience import (
    CircuitBreaker,
    Mode,
    ModeSelector,
    ProxySwitch,
    ResiliencePolicy,
    backoff_delay,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


BLOCKED = CrawlError(ErrorKind.BLOCKED, "captcha")
FORBIDDEN = CrawlError(ErrorKind.BLOCKED, "http 403", status=403)
TIMEOUT = CrawlError(ErrorKind.TIMEOUT, "slow")
NETWORK = CrawlError(ErrorKind.NETWORK, "reset")
UNKNOWN = CrawlError(ErrorKind.UNKNOWN, "401")


def test_three_consecutive_api_failures_fall_back_to_the_browser():
    modes = ModeSelector(ResiliencePolicy(), Clock())
    modes.record_api_failure(BLOCKED)
    modes.record_api_failure(TIMEOUT)
    modes.record_api_success()  # not consecutive: starts over
    modes.record_api_failure(BLOCKED)
    modes.record_api_failure(NETWORK)
    assert modes.current() is Mode.API
    modes.record_api_failure(UNKNOWN)
    assert modes.current() is Mode.BROWSER


def test_after_five_minutes_in_the_browser_the_api_is_probed_and_one_failure_goes_back():
    clock = Clock()
    modes = ModeSelector(ResiliencePolicy(), clock)
    for _ in range(3):
        modes.record_api_failure(BLOCKED)
    clock.now += 299
    assert modes.current() is Mode.BROWSER
    clock.now += 1
    assert modes.current() is Mode.API
    modes.record_api_failure(BLOCKED)
    assert modes.current() is Mode.BROWSER
    clock.now += 300
    assert modes.current() is Mode.API
    modes.record_api_success()
    modes.record_api_failure(BLOCKED)
    modes.record_api_failure(BLOCKED)
    assert modes.current() is Mode.API  # a successful probe earns the full three again


def test_a_403_holds_the_api_back_for_a_minute():
    clock = Clock()
    modes = ModeSelector(ResiliencePolicy(), clock)
    modes.record_api_failure(BLOCKED)
    assert modes.api_pause() == 0
    modes.record_api_failure(FORBIDDEN)
    assert modes.api_pause() == 60
    clock.now += 45
    assert modes.api_pause() == 15
    clock.now += 15
    assert modes.api_pause() == 0


def test_a_pinned_mode_never_switches():
    clock = Clock()
    api_only = ModeSelector(ResiliencePolicy(), clock, pinned=Mode.API)
    browser_only = ModeSelector(ResiliencePolicy(), clock, pinned=Mode.BROWSER)
    for _ in range(5):
        api_only.record_api_failure(BLOCKED)
    clock.now += 3600
    assert (api_only.current(), browser_only.current()) == (Mode.API, Mode.BROWSER)


def test_five_consecutive_failures_open_the_circuit_for_a_minute():
    clock = Clock()
    circuit = CircuitBreaker(failures=5, open_seconds=60, clock=clock)
    for _ in range(4):
        circuit.record_failure()
    circuit.record_success()
    for _ in range(4):
        circuit.record_failure()
    assert circuit.allows()
    circuit.record_failure()
    assert not circuit.allows()
    assert circuit.seconds_until_closed() == 60
    clock.now += 60
    assert circuit.allows()
    circuit.record_failure()  # half open: one more failure reopens it
    assert not circuit.allows()
    clock.now += 60
    circuit.record_success()
    circuit.record_failure()
    assert circuit.allows()


def test_the_proxy_is_wanted_after_the_threshold_of_curable_failures_and_kept_for_the_cooldown():
    clock = Clock()
    proxies = ProxySwitch("http://proxy:3128", auto_switch=True, threshold=3, cooldown_seconds=600, clock=clock)
    proxies.record(BLOCKED)
    proxies.record(TIMEOUT)
    proxies.record(UNKNOWN)  # a bad request is not the network path's fault: neither counts nor resets
    assert not proxies.wants_proxy()
    proxies.record(NETWORK)
    assert proxies.wants_proxy()
    proxies.use_proxy()
    assert proxies.current_proxy() == "http://proxy:3128"
    clock.now += 599
    assert not proxies.cooldown_over()
    clock.now += 1
    assert proxies.cooldown_over()
    proxies.use_direct()
    assert proxies.current_proxy() is None and not proxies.wants_proxy()


def test_a_success_resets_the_proxy_count_and_a_failed_health_check_starts_it_over():
    proxies = ProxySwitch("http://proxy:3128", auto_switch=True, threshold=2, cooldown_seconds=600, clock=Clock())
    proxies.record(BLOCKED)
    proxies.record(None)
    proxies.record(BLOCKED)
    assert not proxies.wants_proxy()
    proxies.record(BLOCKED)
    assert proxies.wants_proxy()
    proxies.proxy_unhealthy()
    assert not proxies.wants_proxy() and not proxies.on_proxy


def test_no_proxy_switch_when_off_or_without_a_proxy():
    for proxy_url, auto in (("http://proxy:3128", False), ("", True)):
        proxies = ProxySwitch(proxy_url, auto_switch=auto, threshold=1, cooldown_seconds=0, clock=Clock())
        proxies.record(BLOCKED)
        assert not proxies.wants_proxy()


def test_backoff_doubles_with_jitter_up_to_the_cap():
    rng = random.Random(3)
    delays = [[backoff_delay(attempt, base=1, cap=30, rng=rng) for attempt in range(7)] for _ in range(200)]
    for attempt in range(7):
        ceiling = min(30, 2**attempt)
        seen = [row[attempt] for row in delays]
        assert all(ceiling / 2 <= delay <= ceiling for delay in seen)
        assert len({round(delay, 6) for delay in seen}) > 100  # jittered, not one fixed value
