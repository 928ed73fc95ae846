"""Accuracy harness: the method's inflow and outflow against the simulated market's ground truth.

    .venv/bin/python -m bench.accuracy [--scenario bench/scenarios/standard.yaml] [--mode api|browser]
                                       [--workers 2] [--database-url URL] [--out bench/out/accuracy] [--json]

Each IP of the scenario is crawled on a simulated clock: the simulator (a real HTTP server in each
worker process) is frozen at the moment of each crawl, the real crawler fetches its 5+5 pages
from it, the real ingest applies the result to a real database, and the real cadence rules say
when that IP is crawled next. No Dagster, no queue and no rate limit in the loop: a week of
crawls takes minutes. The crawler stamps a result with the wall clock; the harness stamps it
with the simulated moment it was crawled at, as a node crawling live would have.

The hourly rows ingest wrote (``ip_stats_hourly``) are then compared with the market's truth
(listings created, sales per Japan hour), per IP and over all IPs:

- 24-hour totals: the relative error of each Japan-time day's inflow and outflow;
- the hourly series: mean absolute error (items per hour) and Pearson correlation;
- saturation: crawls whose on-sale (or sold) window of pages × 120 was full of items the
  previous crawl had not seen, so that the count can only be a lower bound; and crawls spent.

Day 1 holds the baseline crawl, so the headline figures are over the following days ("steady")
and day 1 is reported apart. For each crawl the harness also reads from the market what the
crawl could not see — listings gone before any crawl saw them, new listings beyond the on-sale
window, sales beyond the sold window — and what the hour attribution alone costs (the truth
re-attributed to crawl hours against the truth), which ``docs/accuracy.md`` uses to explain
the error. Plots of truth against measured for the three IPs with the largest error go to
``--out`` (PNG).

Without --database-url a fresh MariaDB database is created on --server-url and dropped at the
end. Progress goes to stderr; with --json stdout carries one JSON object (``overall`` holds the
headline figures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import enum
import heapq
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml

from animehot_dagster.crawler.crawl import Crawler, CrawlerConfig, PagePlan
from animehot_dagster.crawler.metrics import CrawlerMetrics
from animehot_dagster.crawler.parse import PAGE_SIZE
from animehot_dagster.crawler.resilience import Mode
from animehot_dagster.domain.cadence import rebuild_schedule
from animehot_dagster.domain.items import collapse_reports
from animehot_dagster.domain.messages import CrawlRequest, CrawlResponse
from animehot_dagster.domain.scores import hot_score
from animehot_dagster.domain.timebuckets import JST, from_unix, to_unix
from animehot_dagster.settings import load_settings
from animehot_dagster.simulator.app import create_app
from animehot_dagster.simulator.market import HOUR, Market
from animehot_dagster.simulator.scenario import (
    Scenario,
    ScenarioError,
    parse_time,
    scenario_from_dict,
)
from animehot_dagster.simulator.server import SimulatorServer, build_state
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster.storage.ip_catalog import import_ips
from animehot_dagster.storage.migrate import migrate
from animehot_dagster.storage.schema import ip_stats_hourly

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_SCENARIO = BENCH_DIR / "scenarios" / "standard.yaml"
DEFAULT_OUT = BENCH_DIR / "out" / "accuracy"
DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
DAY = 24 * HOUR
PLOTTED_IPS = 3


# --- the scenario ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BenchScenario:
    """A simulator scenario (``market``) plus how the harness runs it::

        start: 2026-03-02T00:00:00+09:00   # Japan midnight: days are Japan-time days
        days: 7
        mode: api                          # or browser
        settings: {SCHEDULER_PAGES_ON_SALE: 5}      # variables of settings.py, as in the environment
        ips: {初音ミク: {name_en: Hatsune Miku, weight: 1}}  # import-file fields per keyword
        market: {seed: 1, horizon_days: 21, keywords: {初音ミク: {listings_per_hour: 90}}}
    """

    name: str
    start: int
    days: int
    mode: Mode
    settings: Mapping[str, str]
    ips: Mapping[str, Mapping[str, Any]]
    market: Scenario
    seed: int

    @property
    def end(self) -> int:
        return self.start + self.days * DAY


_BENCH_FIELDS = {"start", "days", "mode", "settings", "ips", "market"}


def load_bench_scenario(path: str | Path) -> BenchScenario:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not isinstance(data, Mapping) or set(data) - _BENCH_FIELDS or "market" not in data:
        raise ScenarioError(f"{path}: expected a mapping of {sorted(_BENCH_FIELDS)} with a market")
    try:
        start = parse_time(data.get("start"))
        mode = Mode(data.get("mode", "api"))
    except ValueError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if (start + 9 * HOUR) % DAY:
        raise ScenarioError(f"{path}: start must be a Japan-time midnight (days are Japan-time days)")
    days = data.get("days", 7)
    if not isinstance(days, int) or days < 1:
        raise ScenarioError(f"{path}: days must be a whole number of days, at least 1")
    market = scenario_from_dict(data["market"], f"{path}: market")
    keywords = [p.keyword for p in market.profiles]  # in file order: IP ids and first crawls follow it
    ips = {str(k): dict(v or {}) for k, v in (data.get("ips") or {}).items()}
    if unknown := set(ips) - set(keywords):
        raise ScenarioError(f"{path}: ips {sorted(unknown)} have no market profile")
    return BenchScenario(
        name=Path(path).stem,
        start=start,
        days=days,
        mode=mode,
        settings={str(k): str(v) for k, v in (data.get("settings") or {}).items()},
        ips={k: ips.get(k, {}) for k in keywords},
        market=market,
        seed=market.seed if market.seed is not None else 1,
    )


# --- one crawl and what it could not see -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CrawlRecord:
    """One crawl: what ingest counted, what the crawler reported, and — from the market — what
    happened since the IP's previous crawl (None for the baseline, which has no previous)."""

    at: int
    baseline: bool
    inflow: int
    outflow: int
    pages: int
    saturated_on_sale: bool
    saturated_sold: bool
    created: int | None = None  # listings created since the previous crawl
    gone_before_seen: int | None = None  # of those, sold or withdrawn before this crawl
    beyond_on_sale_window: int | None = None  # new and on sale, but below pages_on_sale × 120
    sales: int | None = None  # sales since the previous crawl
    beyond_sold_window: int | None = None  # of those, below pages_sold × 120 in the sold list


def window_saturated(reported: int, counted: int, window: int) -> bool:
    """A phase's window was full and every item in it was counted as new: nothing in it reaches
    back to what the previous crawl saw, so more new items may lie beyond it."""
    return reported >= window and counted >= reported


def unseen_events(market: Market, keyword: str, previous: int, at: int, on_sale_window: int, sold_window: int) -> dict:
    """What happened between two crawls of ``keyword`` and how much of it a crawl at ``at``
    could not see, read off the market's event times (the search lists newest created first)."""
    events = market.listing_events(keyword, at)
    created_between = (events.created > previous) & (events.created <= at)
    on_sale = (events.sale_at > at) & (events.withdrawn_at > at)
    new_on_sale = int(np.count_nonzero(created_between & on_sale))
    sold = events.sale_at <= at
    in_sold_window = sold & (np.cumsum(sold) <= sold_window)
    sold_between = (events.sale_at > previous) & sold
    created = int(np.count_nonzero(created_between))
    sales = int(np.count_nonzero(sold_between))
    return {
        "created": created,
        "gone_before_seen": created - new_on_sale,
        "beyond_on_sale_window": max(0, new_on_sale - on_sale_window),
        "sales": sales,
        "beyond_sold_window": sales - int(np.count_nonzero(sold_between & in_sold_window)),
    }


# --- a worker: some IPs, crawled in simulated-time order ---------------------------------------


@dataclasses.dataclass(frozen=True)
class IpPlan:
    ip_id: int
    keyword: str
    label: str
    listings_per_hour: float
    first_crawl_at: int


# The columns of IpRun.hourly, in the order the report's "series" lists them.
SERIES = ("truth_inflow", "measured_inflow", "truth_outflow", "measured_outflow")


@dataclasses.dataclass
class IpRun:
    plan: IpPlan
    crawls: list[CrawlRecord]
    # Indexed by hour of the run: the market's listings created and sales (truth_*), and the
    # rows ip_stats_hourly holds (measured_*); the columns of SERIES, int64.
    hourly: pd.DataFrame
    lost_to_baseline: dict  # created / sales between the start and the baseline crawl


class _Unlimited:
    """The harness crawls a frozen market: pacing requests would only cost wall time."""

    async def acquire(self) -> float:
        return 0.0


class Method(enum.Enum):
    """How the figures are obtained: the event-time method of SPEC §4.1 (the crawler spends one
    page on the sold count and the rest on sale; results carry counts and listing times), or the
    item method of SPEC §4 alone (each phase its own pages; results as the original nodes send
    them). Both spend the same page budget."""

    EVENT = "event"
    WINDOW = "window"

    @property
    def page_plan(self) -> PagePlan:
        return PagePlan.COUNTS if self is Method.EVENT else PagePlan.WINDOW

    def as_sent(self, response: CrawlResponse) -> CrawlResponse:
        if self is Method.EVENT:
            return response
        return dataclasses.replace(
            response,
            found_on_sale=None,
            found_sold=None,
            on_sale_more=False,
            items=tuple(dataclasses.replace(item, created=0, updated=0) for item in response.items),
        )


async def _freeze_clock(clock: httpx.AsyncClient, at: int) -> None:
    # uvicorn drops a keep-alive connection idle for 5 s; a crawl can take longer than that on a
    # loaded machine, and the next request may race the close.
    for attempt in range(3):
        try:
            (await clock.post("/__clock", json={"now": at, "scale": 0})).raise_for_status()
            return
        except httpx.TransportError:
            if attempt == 2:
                raise


async def _crawl_ips(
    scenario: BenchScenario, plans: Sequence[IpPlan], database_url: str, worker: int, method: Method
) -> list[IpRun]:
    state = build_state(scenario.market, seed=scenario.seed, time_scale=0, start=scenario.start)
    market = state.market
    engine = create_engine(database_url, pool_size=1)
    with SimulatorServer(create_app(state)) as server:
        settings = load_settings(
            {**scenario.settings, "MERCARI_WEB_URL": server.url, "MERCARI_API_URL": server.url}
        )
        config = IngestConfig.from_settings(settings)
        pages_on_sale, pages_sold = method.page_plan.phase_pages(
            settings.scheduler_pages_on_sale, settings.scheduler_pages_sold
        )
        on_sale_window, sold_window = pages_on_sale * PAGE_SIZE, pages_sold * PAGE_SIZE
        crawler = Crawler(
            CrawlerConfig.from_settings(settings, pinned_mode=scenario.mode, page_plan=method.page_plan),
            _Unlimited(),
            CrawlerMetrics(),
        )
        clock = httpx.AsyncClient(base_url=server.url, timeout=30)
        by_id = {plan.ip_id: plan for plan in plans}
        records: dict[int, list[CrawlRecord]] = {plan.ip_id: [] for plan in plans}
        due = [(plan.first_crawl_at, plan.ip_id) for plan in plans]
        heapq.heapify(due)
        started, reported_day = time.monotonic(), -1
        try:
            # Each IP is crawled once more after the end: an hour's figures are final only once
            # a crawl after it has looked (the event-time method places events in their hours).
            while due:
                at, ip_id = heapq.heappop(due)
                plan = by_id[ip_id]
                await _freeze_clock(clock, at)
                request = CrawlRequest.new_task(ip_id, plan.keyword, settings.cadence, at)
                response = method.as_sent(dataclasses.replace(await crawler.crawl(request), crawled_at=at))
                result = apply(engine, response, config, now=from_unix(at))
                reports = collapse_reports(response.items).values()
                sold_reported = sum(1 for item in reports if item.is_sold)
                on_sale_reported = len(reports) - sold_reported
                record = CrawlRecord(
                    at=at,
                    baseline=result.baseline,
                    inflow=result.inflow,
                    outflow=result.outflow,
                    pages=response.pages_crawled,
                    saturated_on_sale=not result.baseline
                    and window_saturated(on_sale_reported, result.inflow, on_sale_window),
                    saturated_sold=not result.baseline and window_saturated(sold_reported, result.outflow, sold_window),
                )
                history = records[ip_id]
                if history and not result.failed:
                    # The market is idle between crawls, so reading it here cannot race the server.
                    unseen = unseen_events(market, plan.keyword, history[-1].at, at, on_sale_window, sold_window)
                    record = dataclasses.replace(record, **unseen)
                if result.failed:
                    print(f"worker {worker}: crawl of {plan.keyword} at {at} failed: {response.error_message}",
                          file=sys.stderr, flush=True)
                else:
                    history.append(record)
                if at < scenario.end or result.failed:
                    heapq.heappush(due, (to_unix(result.next_crawl_at), ip_id))
                if (day := (at - scenario.start) // DAY) != reported_day:
                    reported_day = day
                    crawled = sum(len(r) for r in records.values())
                    print(f"worker {worker}: day {day + 1}/{scenario.days}, {crawled} crawls, "
                          f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            runs = []
            for plan in plans:
                truth = market.truth(plan.keyword, scenario.start, scenario.end)
                history = records[plan.ip_id]
                lost = {"created": 0, "sales": 0}
                if history:
                    before = unseen_events(market, plan.keyword, scenario.start - 1, history[0].at, 0, 0)
                    lost = {"created": before["created"], "sales": before["sales"]}
                measured = hourly_series(engine, plan.ip_id, scenario.start, scenario.days * 24)
                hourly = measured.add_prefix("measured_").assign(
                    truth_inflow=[h.created for h in truth], truth_outflow=[h.sold for h in truth])
                runs.append(IpRun(plan, history, hourly[list(SERIES)], lost))
        finally:
            await clock.aclose()
            await crawler.close()
            engine.dispose()
    return runs


def crawl_shard(
    scenario: BenchScenario, plans: Sequence[IpPlan], database_url: str, worker: int, method: Method
) -> list[IpRun]:
    return asyncio.run(_crawl_ips(scenario, plans, database_url, worker, method))


def shards(plans: Sequence[IpPlan], count: int) -> list[list[IpPlan]]:
    """Deal IPs hottest first, back and forth, so each worker gets a similar share of pages."""
    ordered = sorted(plans, key=lambda p: -p.listings_per_hour)
    dealt: list[list[IpPlan]] = [[] for _ in range(min(count, len(plans)))]
    for index, plan in enumerate(ordered):
        lap, seat = divmod(index, len(dealt))
        dealt[seat if lap % 2 == 0 else len(dealt) - 1 - seat].append(plan)
    return dealt


# --- error metrics (pure) -------------------------------------------------------------------
#
# Hourly series are pandas Series of integer counts indexed by hour of the run. Every figure
# leaves here as a Python int or float: numpy's scalars round differently from round().


def relative_error(measured: int, truth: int) -> float | None:
    return None if truth == 0 else (measured - truth) / truth


def mean_absolute_error(measured: pd.Series, truth: pd.Series) -> float:
    """Over the hours both series hold. Counts are integers: the sum is exact, the mean is one
    division."""
    return float((measured - truth).abs().mean())


def correlation(measured: Sequence[float], truth: Sequence[float]) -> float | None:
    """Pearson's r; None when either series is constant (r is undefined)."""
    if len(truth) < 2 or len(set(measured)) < 2 or len(set(truth)) < 2:
        return None
    return float(np.corrcoef(measured, truth)[0, 1])


def daily_totals(hourly: pd.Series) -> list[int]:
    """The totals of each day of the run the series covers (whole days)."""
    return hourly.groupby(hourly.index // 24).sum().tolist()


def attribute_to_crawl_hours(crawl_hours: Sequence[int], amounts: Sequence[int], hours: int) -> pd.Series:
    """A series that puts each amount in the hour of its crawl (hour index), as ingest does."""
    by_hour = pd.Series(amounts, index=crawl_hours, dtype="int64").groupby(level=0).sum()
    return by_hour.reindex(range(hours), fill_value=0)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def series_figures(measured: pd.Series, truth: pd.Series) -> dict:
    """Figures of one flow over some whole Japan-time days of the run."""
    day_errors = [relative_error(m, t) for m, t in zip(daily_totals(measured), daily_totals(truth), strict=True)]
    known = [abs(e) for e in day_errors if e is not None]
    measured_total, truth_total = int(measured.sum()), int(truth.sum())
    mean_truth = truth_total / len(truth)
    mae = mean_absolute_error(measured, truth)
    return {
        "truth_total": truth_total,
        "measured_total": measured_total,
        "rel_error_24h": _round(relative_error(measured_total, truth_total)),
        "abs_rel_error_24h": _round(statistics.mean(known) if known else None),
        "daily_rel_errors": [_round(e) for e in day_errors],
        "hourly_mae": _round(mae, 3),
        "hourly_nmae": _round(mae / mean_truth if mean_truth else None),
        "hourly_correlation": _round(correlation(measured, truth)),
    }


# --- comparing one IP's measured figures with the truth ---------------------------------------


def ip_report(run: IpRun, days: int, start: int) -> dict:
    hourly = run.hourly
    steady = slice(24, days * 24) if days > 1 else slice(0, 24)
    measured_crawls = [c for c in run.crawls if not c.baseline]
    crawl_hours = [(c.at - start) // HOUR for c in measured_crawls]
    hours = days * 24
    reattributed_in = attribute_to_crawl_hours(crawl_hours, [c.created for c in measured_crawls], hours)
    reattributed_out = attribute_to_crawl_hours(crawl_hours, [c.sales for c in measured_crawls], hours)
    steady_crawls = [c for c, h in zip(measured_crawls, crawl_hours, strict=True) if steady.start <= h < steady.stop]
    saturated = [c for c in steady_crawls if c.saturated_on_sale or c.saturated_sold]

    def total(field: str) -> int:
        return sum(getattr(c, field) for c in steady_crawls)

    inflow_causes = {
        "created": total("created"),
        "gone_before_seen": total("gone_before_seen"),
        "beyond_on_sale_window": total("beyond_on_sale_window"),
    }
    # What ingest counted beyond what was new and visible: older listings counted as new when
    # the window reached them again (never seen before, or forgotten after the available TTL).
    inflow_causes["counted_again"] = total("inflow") - (
        inflow_causes["created"] - inflow_causes["gone_before_seen"] - inflow_causes["beyond_on_sale_window"]
    )
    outflow_causes = {"sales": total("sales"), "beyond_sold_window": total("beyond_sold_window")}
    outflow_causes["other"] = total("outflow") - (outflow_causes["sales"] - outflow_causes["beyond_sold_window"])
    steady_hours, first_day = hourly.iloc[steady], hourly.iloc[:24]
    return {
        "ip_id": run.plan.ip_id,
        "keyword": run.plan.keyword,
        "label": run.plan.label,
        "listings_per_hour": run.plan.listings_per_hour,
        # The crawl after the end only closes the last hours: not counted as spent on the period.
        "crawls": sum(1 for c in run.crawls if c.at < start + days * DAY),
        "pages": sum(c.pages for c in run.crawls if c.at < start + days * DAY),
        "steady_crawls": len(steady_crawls),
        "saturation_rate": _round(len(saturated) / len(steady_crawls) if steady_crawls else None),
        "saturated_on_sale": sum(c.saturated_on_sale for c in steady_crawls),
        "saturated_sold": sum(c.saturated_sold for c in steady_crawls),
        "mean_interval_minutes": _round(
            statistics.mean(b.at - a.at for a, b in zip(run.crawls, run.crawls[1:], strict=False)) / 60 if len(run.crawls) > 1 else None, 1
        ),
        "inflow": series_figures(steady_hours.measured_inflow, steady_hours.truth_inflow),
        "outflow": series_figures(steady_hours.measured_outflow, steady_hours.truth_outflow),
        "first_day": {
            "inflow": series_figures(first_day.measured_inflow, first_day.truth_inflow),
            "outflow": series_figures(first_day.measured_outflow, first_day.truth_outflow),
            "lost_to_baseline": run.lost_to_baseline,
        },
        "causes": {
            "inflow": inflow_causes,
            "outflow": outflow_causes,
            # The truth moved to crawl hours against the truth: the error the hour attribution
            # alone makes, with every event seen.
            "attribution_hourly_mae": {
                "inflow": _round(mean_absolute_error(reattributed_in.iloc[steady], steady_hours.truth_inflow), 3),
                "outflow": _round(mean_absolute_error(reattributed_out.iloc[steady], steady_hours.truth_outflow), 3),
            },
            "attribution_hourly_correlation": {
                "inflow": _round(correlation(reattributed_in.iloc[steady], steady_hours.truth_inflow)),
                "outflow": _round(correlation(reattributed_out.iloc[steady], steady_hours.truth_outflow)),
            },
        },
        "series": {column: hourly[column].tolist() for column in SERIES},
    }


def overall_report(ips: Sequence[dict]) -> dict:
    figures: dict[str, Any] = {"ips": len(ips)}
    for flow in ("inflow", "outflow"):
        truth = sum(ip[flow]["truth_total"] for ip in ips)
        measured = sum(ip[flow]["measured_total"] for ip in ips)
        first_truth = sum(ip["first_day"][flow]["truth_total"] for ip in ips)
        first_measured = sum(ip["first_day"][flow]["measured_total"] for ip in ips)
        figures |= {
            f"{flow}_24h_rel_error": _round(relative_error(measured, truth)),
            f"{flow}_24h_abs_rel_error_median": _round(_median([ip[flow]["abs_rel_error_24h"] for ip in ips])),
            f"{flow}_hourly_mae": _round(statistics.mean(ip[flow]["hourly_mae"] for ip in ips), 3),
            f"{flow}_hourly_nmae_median": _round(_median([ip[flow]["hourly_nmae"] for ip in ips])),
            f"{flow}_hourly_correlation_median": _round(_median([ip[flow]["hourly_correlation"] for ip in ips])),
            f"{flow}_first_day_rel_error": _round(relative_error(first_measured, first_truth)),
        }
    steady = sum(ip["steady_crawls"] for ip in ips)
    saturated_on_sale = sum(ip["saturated_on_sale"] for ip in ips)
    saturated_sold = sum(ip["saturated_sold"] for ip in ips)
    saturated = sum(round((ip["saturation_rate"] or 0) * ip["steady_crawls"]) for ip in ips)
    figures |= {
        "saturation_rate": _round(saturated / steady if steady else None),
        "saturation_rate_on_sale": _round(saturated_on_sale / steady if steady else None),
        "saturation_rate_sold": _round(saturated_sold / steady if steady else None),
        "crawls": sum(ip["crawls"] for ip in ips),
        "pages": sum(ip["pages"] for ip in ips),
    }
    return figures


def spearman(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rank correlation: Pearson's r of the ranks (average ranks for ties); None when
    either side is constant."""
    if len(first) < 2:
        return None
    return correlation(pd.Series(first).rank().tolist(), pd.Series(second).rank().tolist())


def hot_rank_correlation(ips: Sequence[dict], days: int) -> float | None:
    """The mean over the steady days of Spearman's ρ between the IPs ranked by the day's hot
    score as measured and as the truth has it: what a daily hot leaderboard gets right."""
    first_day = 1 if days > 1 else 0
    values = []
    for day in range(first_day, days):
        hours = slice(day * 24, (day + 1) * 24)

        def score(ip: dict, kind: str, hours: slice = hours) -> float:
            return hot_score(sum(ip["series"][f"{kind}_inflow"][hours]), sum(ip["series"][f"{kind}_outflow"][hours]))

        rho = spearman([score(ip, "measured") for ip in ips], [score(ip, "truth") for ip in ips])
        if rho is not None:
            values.append(rho)
    return statistics.mean(values) if values else None


def quality_shares(database_urls: Sequence[str], scenario: BenchScenario) -> dict[str, float]:
    """How the hourly rows of the steady days were obtained (share of rows per quality)."""
    counts: dict[str, int] = {}
    first = scenario.start + (DAY if scenario.days > 1 else 0)
    for url in dict.fromkeys(database_urls):
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.select(ip_stats_hourly.c.quality, sa.func.count())
                    .where(ip_stats_hourly.c.hour_bucket >= from_unix(first),
                           ip_stats_hourly.c.hour_bucket < from_unix(scenario.end))
                    .group_by(ip_stats_hourly.c.quality)
                )
                for quality, count in rows:
                    counts[quality or "unknown"] = counts.get(quality or "unknown", 0) + int(count)
        finally:
            engine.dispose()
    total = sum(counts.values())
    return {quality: round(count / total, 4) for quality, count in sorted(counts.items())} if total else {}


# --- the run --------------------------------------------------------------------------------


def hourly_series(engine: sa.Engine, ip_id: int, start: int, hours: int) -> pd.DataFrame:
    """An IP's hourly inflow and outflow from ip_stats_hourly, indexed by hour of the run (from
    ``start``), 0 for hours without a row."""
    query = sa.select(ip_stats_hourly.c.hour_bucket, ip_stats_hourly.c.inflow, ip_stats_hourly.c.outflow).where(
        ip_stats_hourly.c.ip_id == ip_id,
        ip_stats_hourly.c.hour_bucket >= from_unix(start),
        ip_stats_hourly.c.hour_bucket < from_unix(start + hours * HOUR),
    )
    with engine.connect() as connection:
        rows = [((to_unix(hour) - start) // HOUR, inflow, outflow) for hour, inflow, outflow in connection.execute(query)]
    frame = pd.DataFrame(rows, columns=["hour", "inflow", "outflow"]).set_index("hour")
    return frame.reindex(range(hours), fill_value=0).astype("int64")


def prepare_database(database_url: str, scenario: BenchScenario) -> dict[str, int]:
    """Migrate an empty database and import the scenario's IPs; their ids by keyword."""
    engine = create_engine(database_url)
    try:
        migrate(engine)
        rows = [{"name": k, **v} for k, v in scenario.ips.items()]
        report = import_ips(engine, rows, upsert=False, now=from_unix(scenario.start))
    finally:
        engine.dispose()
    if report.failed:
        raise ScenarioError(f"{scenario.name}: the IPs could not be imported: {report.failed}")
    return {row["name"]: row["id"] for row in report.created}


def run(scenario: BenchScenario, database_urls: Sequence[str], workers: int = 2, method: Method = Method.EVENT) -> dict:
    """Crawl the scenario and compare. ``database_urls`` are empty databases: one that every
    worker shares, or one per worker (at least ``workers`` of them)."""
    started = time.monotonic()
    ids = {}
    for url in dict.fromkeys(database_urls):
        ids = prepare_database(url, scenario)  # the same import into empty databases: the same ids
    settings = load_settings(scenario.settings)
    moment = from_unix(scenario.start)
    intervals = [
        (ids[k], settings.cadence.interval_for_weight(float(v.get("weight", 1))), None) for k, v in scenario.ips.items()
    ]
    first = dict(rebuild_schedule(intervals, moment))
    profiles = {p.keyword: p for p in scenario.market.profiles}
    plans = [
        IpPlan(ids[k], k, v.get("name_en") or k, profiles[k].listings_per_hour, to_unix(first[ids[k]]))
        for k, v in scenario.ips.items()
    ]
    dealt = shards(plans, workers)
    urls = [database_urls[i % len(database_urls)] for i in range(len(dealt))]
    print(f"{scenario.name}: {len(plans)} IPs × {scenario.days} days in {scenario.mode.value} mode, "
          f"{method.value} method, {len(dealt)} worker(s)", file=sys.stderr, flush=True)
    if len(dealt) == 1:
        runs = crawl_shard(scenario, dealt[0], urls[0], 1, method)
    else:
        # fork: the workers inherit this module even when it was loaded from a path.
        with ProcessPoolExecutor(len(dealt), mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(crawl_shard, scenario, shard, url, i + 1, method)
                       for i, (shard, url) in enumerate(zip(dealt, urls, strict=True))]
            runs = [r for future in futures for r in future.result()]
    ips = [ip_report(r, scenario.days, scenario.start) for r in sorted(runs, key=lambda r: r.plan.listings_per_hour)]
    qualities = quality_shares(urls, scenario)
    overall = overall_report(ips) | {
        "wall_seconds": round(time.monotonic() - started, 1),
        "hot_rank_spearman": _round(hot_rank_correlation(ips, scenario.days)),
        "pages_per_ip_hour": _round(sum(ip["pages"] for ip in ips) / (len(ips) * scenario.days * 24), 3),
        "quality_shares": qualities,
    }
    return {
        "scenario": scenario.name,
        "method": method.value,
        "mode": scenario.mode.value,
        "start": from_unix(scenario.start).astimezone(JST).isoformat(),
        "days": scenario.days,
        "steady_days": f"2-{scenario.days}" if scenario.days > 1 else "1",
        "settings": dict(scenario.settings),
        "overall": overall,
        "ips": ips,
    }


# --- output ---------------------------------------------------------------------------------


def largest_errors(ips: Sequence[dict], count: int = PLOTTED_IPS) -> list[dict]:
    def error(ip: dict) -> float:
        return sum(abs(ip[flow]["rel_error_24h"] or 0) for flow in ("inflow", "outflow"))

    return sorted(ips, key=error, reverse=True)[:count]


def write_plots(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    out.mkdir(parents=True, exist_ok=True)
    prefix = f"{result['scenario']}-{result['method']}"
    for stale in out.glob(f"{prefix}-*.png"):  # the directory holds the last run's plots
        stale.unlink()
    paths = []
    for rank, ip in enumerate(largest_errors(result["ips"]), 1):
        figure, axes = pyplot.subplots(2, 1, figsize=(12, 6), sharex=True)
        hours = np.arange(len(ip["series"]["truth_inflow"])) / 24
        for axis, flow in zip(axes, ("inflow", "outflow"), strict=True):
            axis.plot(hours, ip["series"][f"truth_{flow}"], label="truth", color="black", linewidth=1)
            axis.plot(hours, ip["series"][f"measured_{flow}"], label="measured", color="tab:red", linewidth=1)
            axis.set_ylabel(f"{flow} / hour")
            axis.legend(loc="upper right")
            axis.set_title(f"{flow}: 24 h error {100 * (ip[flow]['rel_error_24h'] or 0):+.1f} %, "
                           f"hourly r {ip[flow]['hourly_correlation']}", fontsize=9)
        axes[-1].set_xlabel(f"days since {result['start'][:10]} (Japan time)")
        figure.suptitle(f"IP {ip['ip_id']} {ip['label']} ({ip['listings_per_hour']:g} listings/h), "
                        f"{ip['crawls']} crawls, saturated {100 * (ip['saturation_rate'] or 0):.0f} %")
        figure.tight_layout()
        path = out / f"{prefix}-{rank}-ip{ip['ip_id']}.png"
        figure.savefig(path, dpi=100)
        pyplot.close(figure)
        paths.append(str(path))
    return paths


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f}%"


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_tables(result: dict) -> None:
    days = result["days"] - 1 if result["days"] > 1 else 1
    print(f"{result['scenario']} ({result['mode']} mode, {result['method']} method), {result['days']} days from "
          f"{result['start']}; figures over days {result['steady_days']}, per-day figures per 24 h")
    print(f"{'IP':24} {'/h':>6} {'crawls':>6} {'sat':>5} │ {'in/day':>7} {'meas':>7} {'24h err':>7} {'MAE':>6} "
          f"{'r':>5} │ {'out/day':>7} {'meas':>7} {'24h err':>7} {'MAE':>6} {'r':>5}")
    for ip in result["ips"]:
        inflow, outflow = ip["inflow"], ip["outflow"]
        print(f"{ip['label'][:24]:24} {ip['listings_per_hour']:>6g} {ip['crawls']:>6} "
              f"{100 * (ip['saturation_rate'] or 0):>4.0f}% │ "
              f"{inflow['truth_total'] / days:>7.1f} {inflow['measured_total'] / days:>7.1f} "
              f"{_percent(inflow['rel_error_24h']):>7} {_number(inflow['hourly_mae']):>6} "
              f"{_number(inflow['hourly_correlation']):>5} │ "
              f"{outflow['truth_total'] / days:>7.1f} {outflow['measured_total'] / days:>7.1f} "
              f"{_percent(outflow['rel_error_24h']):>7} {_number(outflow['hourly_mae']):>6} "
              f"{_number(outflow['hourly_correlation']):>5}")
    o = result["overall"]
    print()
    print(f"{'overall':12} {'24h err':>8} {'median |24h err|':>16} {'mean MAE':>8} {'median nMAE':>11} "
          f"{'median r':>8} {'day-1 err':>9}")
    for flow in ("inflow", "outflow"):
        print(f"{flow:12} {_percent(o[f'{flow}_24h_rel_error']):>8} "
              f"{_percent(o[f'{flow}_24h_abs_rel_error_median']).lstrip('+'):>16} "
              f"{_number(o[f'{flow}_hourly_mae']):>8} {_number(o[f'{flow}_hourly_nmae_median']):>11} "
              f"{_number(o[f'{flow}_hourly_correlation_median']):>8} {_percent(o[f'{flow}_first_day_rel_error']):>9}")
    print(f"saturated crawls {_percent(o['saturation_rate']).lstrip('+')} (on sale "
          f"{_percent(o['saturation_rate_on_sale']).lstrip('+')}, sold {_percent(o['saturation_rate_sold']).lstrip('+')}); "
          f"{o['crawls']} crawls, {o['pages']} pages ({_number(o['pages_per_ip_hour'])} per IP-hour), "
          f"{o['wall_seconds']} s wall")
    print(f"daily hot-score ranking vs the truth's: Spearman ρ {_number(o['hot_rank_spearman'])}; hourly rows "
          + ", ".join(f"{quality} {100 * share:.0f}%" for quality, share in o["quality_shares"].items()))
    print()
    print("where the error comes from (steady days; counts over the period)")
    print(f"{'IP':24} │ {'created':>8} {'counted':>8} {'gone':>7} {'beyond':>7} {'again':>6} │ {'sales':>7} "
          f"{'counted':>8} {'beyond':>7} {'other':>5} │ {'attribution MAE in/out':>22}")
    for ip in result["ips"]:
        inflow, outflow = ip["causes"]["inflow"], ip["causes"]["outflow"]
        attribution = ip["causes"]["attribution_hourly_mae"]
        print(f"{ip['label'][:24]:24} │ {inflow['created']:>8} {ip['inflow']['measured_total']:>8} "
              f"{inflow['gone_before_seen']:>7} {inflow['beyond_on_sale_window']:>7} {inflow['counted_again']:>6} │ "
              f"{outflow['sales']:>7} {ip['outflow']['measured_total']:>8} {outflow['beyond_sold_window']:>7} "
              f"{outflow['other']:>5} │ {attribution['inflow']:>10.2f} / {attribution['outflow']:<10.2f}")
    if result.get("plots"):
        print()
        print("plots: " + ", ".join(result["plots"]))


@contextlib.contextmanager
def fresh_databases(kind: str, workers: int, server_url: str) -> Iterator[list[str]]:
    """Empty databases for a run, removed afterwards: a SQLite file per worker, or one MariaDB
    database on ``server_url`` that the workers share."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="animehot-accuracy-") as directory:
            yield [f"sqlite:///{directory}/worker-{i + 1}.sqlite3" for i in range(workers)]
        return
    name = f"animehot_accuracy_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(server_url)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        yield [f"{server_url}/{name}?charset=utf8mb4"]
    finally:
        with server.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default=str(DEFAULT_SCENARIO))
    parser.add_argument("--mode", choices=[m.value for m in Mode], help="overrides the scenario's mode")
    parser.add_argument("--workers", type=int, default=2, help="processes crawling IPs side by side")
    parser.add_argument("--database", choices=["sqlite", "mysql"], default="sqlite",
                        help="fresh SQLite files (one per worker) or a fresh MariaDB database on --server-url")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--database-url", help="an empty database every worker writes to, kept afterwards")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="directory for the plots")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the tables")
    parser.add_argument("--method", choices=[*(m.value for m in Method), "both"], default=Method.EVENT.value,
                        help="event: SPEC §4.1 (the default); window: the item method alone; both: one after the "
                             "other on the same market, seed and page budget")
    args = parser.parse_args()
    try:
        scenario = load_bench_scenario(args.scenario)
    except ScenarioError as exc:
        raise SystemExit(str(exc)) from None
    if args.mode:
        scenario = dataclasses.replace(scenario, mode=Mode(args.mode))
    methods = list(Method) if args.method == "both" else [Method(args.method)]
    if args.database_url and len(methods) > 1:
        raise SystemExit("--method both needs an empty database per method: leave --database-url out")
    results = []
    for method in methods:
        with contextlib.ExitStack() as stack:
            if args.database_url:
                urls = [args.database_url]
            else:
                urls = stack.enter_context(fresh_databases(args.database, args.workers, args.server_url))
            result = run(scenario, urls, args.workers, method)
        if not args.no_plots:
            result["plots"] = write_plots(result, Path(args.out))
        results.append(result)
    if args.json:
        output = results[0] if len(results) == 1 else {"methods": {r["method"]: r for r in results}}
        print(json.dumps(output, ensure_ascii=False))
    else:
        for index, result in enumerate(results):
            if index:
                print()
            print_tables(result)

if __name__ == "__main__":
    main()
