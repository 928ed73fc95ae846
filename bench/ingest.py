"""Ingest benchmark: milliseconds per applied crawl result, against a floor on the same tables.

    .venv/bin/python -m bench.ingest [--database-url URL] [--results N] [--ips K] [--json] [--profile]

Without --database-url it creates a fresh MySQL database on 127.0.0.1 (root, no password; see
--server-url), migrates it and drops it at the end. With --database-url the database is migrated
and written to (IPs named ``bench-…``): give it a scratch database.

Each IP first gets a baseline crawl; then N results of 1,200 items (10 pages × 120: 840 on sale,
360 sold) are applied round-robin over the IPs, an hour apart per IP, each with a realistic mix:
mostly known on-sale items, some new listings, a few price changes, some newly sold, a few sold
without having been seen, and the rest re-reported sold items. Each is applied through
``ingest.apply`` and timed (one transaction, commit included).

The floor, measured in the same run right after each result: one transaction that SELECTs the
result's 1,200 item_snapshots keys and upserts the same 1,200 item_snapshots rows in one
``storage.db.upsert`` call, commit included. Going through ``db.upsert`` keeps the floor on
whatever statement form ingest writes with. It runs on a shadow IP that gets exactly the same
items, so its table and index hold the same amount of data. The ratio ingest/floor (goal: at
most 3×) is taken at p50 and p95.

--profile times every SQL statement (SQLAlchemy before/after_cursor_execute) and the commit,
and prints where an ingest's time goes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from animehot_dagster.domain.messages import CrawlResponse, Item, ItemStatus
from animehot_dagster.storage.db import create_engine, upsert
from animehot_dagster.storage.ingest import IngestConfig, apply
from animehot_dagster.storage.ip_catalog import import_ips
from animehot_dagster.storage.migrate import migrate
from animehot_dagster.storage.schema import item_snapshots

DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
PAGES, PER_PAGE = 10, 120
ITEMS = PAGES * PER_PAGE
ON_SALE_REPORTED, SOLD_REPORTED = 840, 360  # 7 pages on sale, 3 pages sold
NEW_LISTINGS, PRICE_CHANGES, NEWLY_SOLD, NEW_SOLD = 60, 20, 50, 10
START = datetime(2026, 11, 2, 0, 5, tzinfo=UTC)
SNAPSHOT_UPDATES = ("title", "price", "status", "image_url", "item_url", "first_seen_at", "last_seen_at", "sold_at")
TITLE_WORDS = ["ちいかわ", "ハチワレ", "うさぎ", "ぬいぐるみ", "アクスタ", "缶バッジ", "限定", "新品", "未開封", "セット", "一番くじ", "マスコット"]


# ------------------------------------------------------------------------------------------
# A small market per IP: what is on sale and what sold, newest first.


@dataclasses.dataclass
class Listing:
    source_id: str
    title: str
    price: int


class Market:
    def __init__(self, rng: random.Random, ip_index: int):
        self.rng = rng
        self.prefix = f"m{ip_index:02d}"
        self.counter = 0
        self.on_sale: list[Listing] = [self._new() for _ in range(ON_SALE_REPORTED + 200)]
        self.sold: list[Listing] = [self._new() for _ in range(SOLD_REPORTED + 100)]

    def _new(self) -> Listing:
        self.counter += 1
        title = " ".join(self.rng.sample(TITLE_WORDS, 4)) + f" No.{self.counter}"
        return Listing(f"{self.prefix}{self.counter:09d}", title, self.rng.randrange(300, 30_000, 10))

    def advance(self) -> None:
        """An hour passes: new listings arrive, some prices move, some listings sell."""
        for listing in self.rng.sample(self.on_sale[NEW_LISTINGS:ON_SALE_REPORTED], PRICE_CHANGES):
            listing.price = max(300, listing.price + self.rng.choice([-500, -200, 200, 500]))
        # Items that sell come from the visible part of the on-sale list (the crawl saw them).
        selling = set(self.rng.sample(range(ON_SALE_REPORTED), NEWLY_SOLD))
        newly_sold = [listing for i, listing in enumerate(self.on_sale) if i in selling]
        self.on_sale = [listing for i, listing in enumerate(self.on_sale) if i not in selling]
        unseen_sold = [self._new() for _ in range(NEW_SOLD)]
        self.sold = unseen_sold + newly_sold + self.sold
        self.on_sale = [self._new() for _ in range(NEW_LISTINGS)] + self.on_sale

    def report(self) -> list[Item]:
        def item(listing: Listing, status: ItemStatus) -> Item:
            return Item(
                source_id=listing.source_id,
                title=listing.title,
                price=listing.price,
                image_url=f"https://static.mercdn.net/item/detail/orig/photos/{listing.source_id}_1.jpg",
                item_url=f"https://jp.mercari.com/item/{listing.source_id}",
                status=status,
            )

        return [item(x, ItemStatus.ON_SALE) for x in self.on_sale[:ON_SALE_REPORTED]] + [
            item(x, ItemStatus.SOLD) for x in self.sold[:SOLD_REPORTED]
        ]


def make_response(ip_id: int, crawled_at: datetime, items: list[Item]) -> CrawlResponse:
    return CrawlResponse(
        ip_id=ip_id,
        task_id=str(uuid.uuid4()),
        crawled_at=int(crawled_at.timestamp()),
        items=tuple(items),
        total_found=len(items) * 3,
        pages_crawled=PAGES,
    )


def floor_once(engine: sa.Engine, shadow_ip: int, crawled_at: datetime, items: list[Item]) -> None:
    rows = [
        {
            "ip_id": shadow_ip,
            "source_id": i.source_id,
            "title": i.title[:512],
            "price": i.price,
            "status": "sold" if i.is_sold else "on_sale",
            "image_url": i.image_url[:1024],
            "item_url": i.item_url[:1024],
            "first_seen_at": crawled_at,
            "last_seen_at": crawled_at,
            "sold_at": crawled_at if i.is_sold else None,
        }
        for i in items
    ]
    with engine.begin() as connection:
        connection.execute(
            sa.select(item_snapshots.c.source_id, item_snapshots.c.status, item_snapshots.c.last_seen_at).where(
                item_snapshots.c.ip_id == shadow_ip,
                item_snapshots.c.source_id.in_([r["source_id"] for r in rows]),
            )
        ).all()
        upsert(connection, item_snapshots, rows, SNAPSHOT_UPDATES, ("ip_id", "source_id"))


# ------------------------------------------------------------------------------------------
# Statement profile


_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+[`\"]?(\w+)", re.IGNORECASE)


def statement_kind(statement: str) -> str:
    words = statement.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    table = _TABLE.search(statement)
    kind = f"{verb} {table.group(1) if table else ''}".strip()
    upper = statement.upper()
    if "FOR UPDATE" in upper:
        kind += " … FOR UPDATE"
    elif "ON DUPLICATE KEY" in upper or "ON CONFLICT" in upper:
        kind += " … upsert"
    elif verb == "SELECT" and "count(" in statement.lower():
        kind += " (aggregate)"
    elif verb == "SELECT" and " IN (" in upper:
        kind += " … IN (list)"
    elif verb == "SELECT" and "LIMIT" in upper:
        kind += " … LIMIT"
    return kind


class Profiler:
    """Per-phase totals of statement time, by statement kind; commit time measured from the
    engine's commit event to the end of the transaction."""

    def __init__(self, engine: sa.Engine):
        self.phase = None
        self.totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.commit_started: float | None = None
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)
        sa.event.listen(engine, "commit", self._commit)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self.phase:
            self.totals[self.phase][statement_kind(statement)].append(time.perf_counter() - conn.info.pop("bench_started"))

    def _commit(self, conn):
        self.commit_started = time.perf_counter()

    def end_transaction(self, ended: float) -> None:
        if self.phase and self.commit_started is not None:
            self.totals[self.phase]["COMMIT"].append(ended - self.commit_started)
        self.commit_started = None

    def report(self, phase: str, runs: int, total_seconds: float) -> list[dict]:
        rows = []
        for kind, times in sorted(self.totals[phase].items(), key=lambda kv: -sum(kv[1])):
            rows.append({"statement": kind, "count_per_result": len(times) / runs, "ms_per_result": 1000 * sum(times) / runs})
        sql = sum(sum(t) for t in self.totals[phase].values())
        rows.append({"statement": "(python: building, state machine, statement compilation)", "count_per_result": None,
                     "ms_per_result": 1000 * (total_seconds - sql) / runs})
        return rows


# ------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def server_version(engine: sa.Engine) -> str:
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as connection:
        return str(connection.execute(sa.text("SELECT VERSION()")).scalar_one())


def run(database_url: str, results: int, ips: int, seed: int, profile: bool, log) -> dict:
    engine = create_engine(database_url)
    migrate(engine)
    config = IngestConfig()
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    report = import_ips(
        engine,
        [{"name": f"bench-{tag}-{kind}{i}"} for kind in ("", "shadow-") for i in range(ips)],
        upsert=False,
        now=now,
    )
    ids = {row["name"]: row["id"] for row in report.created}
    ip_ids = [ids[f"bench-{tag}-{i}"] for i in range(ips)]
    shadow_ids = [ids[f"bench-{tag}-shadow-{i}"] for i in range(ips)]
    markets = [Market(rng, i) for i in range(ips)]
    profiler = Profiler(engine) if profile else None

    # Baselines: the first crawl of every IP records states and counts nothing.
    baseline_ms = []
    for index, market in enumerate(markets):
        items = market.report()
        started = time.perf_counter()
        outcome = apply(engine, make_response(ip_ids[index], START, items), config, now=START)
        baseline_ms.append(1000 * (time.perf_counter() - started))
        assert outcome.baseline and outcome.items == ITEMS, outcome
        floor_once(engine, shadow_ids[index], START, items)

    ingest_s, floor_s, mixes = [], [], []
    for n in range(results):
        index = n % ips
        crawled_at = START + timedelta(hours=1 + n // ips, minutes=index)
        markets[index].advance()
        items = markets[index].report()
        response = make_response(ip_ids[index], crawled_at, items)

        if profiler:
            profiler.phase = "ingest"
        started = time.perf_counter()
        outcome = apply(engine, response, config, now=crawled_at)
        ended = time.perf_counter()
        if profiler:
            profiler.end_transaction(ended)
        ingest_s.append(ended - started)
        assert outcome.applied and not outcome.baseline and outcome.items == ITEMS, outcome
        mixes.append((outcome.inflow, outcome.outflow))

        if profiler:
            profiler.phase = "floor"
        started = time.perf_counter()
        floor_once(engine, shadow_ids[index], crawled_at, items)
        ended = time.perf_counter()
        if profiler:
            profiler.end_transaction(ended)
            profiler.phase = None
        floor_s.append(ended - started)
        if (n + 1) % 10 == 0:
            log(f"  {n + 1}/{results} results applied")

    ingest_ms = [1000 * s for s in ingest_s]
    floor_ms = [1000 * s for s in floor_s]
    figures = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "database": engine.dialect.name,
            "server_version": server_version(engine),
            "sqlalchemy": sa.__version__,
        },
        "workload": {
            "results": results,
            "ips": ips,
            "items_per_result": ITEMS,
            "seed": seed,
            "mean_inflow": statistics.fmean(m[0] for m in mixes),
            "mean_outflow": statistics.fmean(m[1] for m in mixes),
            "baseline_ms_mean": statistics.fmean(baseline_ms),
        },
        "ingest": {
            "p50_ms": percentile(ingest_ms, 0.50),
            "p95_ms": percentile(ingest_ms, 0.95),
            "mean_ms": statistics.fmean(ingest_ms),
            "items_per_s": ITEMS * results / sum(ingest_s),
        },
        "floor": {
            "p50_ms": percentile(floor_ms, 0.50),
            "p95_ms": percentile(floor_ms, 0.95),
            "mean_ms": statistics.fmean(floor_ms),
            "items_per_s": ITEMS * results / sum(floor_s),
        },
    }
    figures["ratio_p50"] = figures["ingest"]["p50_ms"] / figures["floor"]["p50_ms"]
    figures["ratio_p95"] = figures["ingest"]["p95_ms"] / figures["floor"]["p95_ms"]
    figures["goal_ratio"] = 3.0
    figures["within_goal"] = figures["ratio_p50"] <= 3.0
    if profiler:
        figures["profile"] = {
            "ingest": profiler.report("ingest", results, sum(ingest_s)),
            "floor": profiler.report("floor", results, sum(floor_s)),
        }
    engine.dispose()
    return figures


def print_figures(figures: dict) -> None:
    m, w, i, f = figures["machine"], figures["workload"], figures["ingest"], figures["floor"]
    print(f"machine: {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}, "
          f"{m['database']} {m['server_version']}, SQLAlchemy {m['sqlalchemy']}")
    print(f"workload: {w['results']} results × {w['items_per_result']} items over {w['ips']} IPs after a baseline each "
          f"(mean inflow {w['mean_inflow']:.0f}, outflow {w['mean_outflow']:.0f} per result; seed {w['seed']}); "
          f"baseline apply {w['baseline_ms_mean']:.0f} ms")
    print(f"ingest.apply: p50 {i['p50_ms']:7.1f} ms   p95 {i['p95_ms']:7.1f} ms   {i['items_per_s']:8.0f} items/s")
    print(f"floor       : p50 {f['p50_ms']:7.1f} ms   p95 {f['p95_ms']:7.1f} ms   {f['items_per_s']:8.0f} items/s"
          "   (SELECT 1,200 keys + one 1,200-row db.upsert of item_snapshots, one transaction)")
    verdict = "within" if figures["within_goal"] else "ABOVE"
    print(f"ratio ingest/floor: p50 {figures['ratio_p50']:.2f}×, p95 {figures['ratio_p95']:.2f}× "
          f"({verdict} the {figures['goal_ratio']:.0f}× goal)")
    for phase in ("ingest", "floor"):
        rows = figures.get("profile", {}).get(phase)
        if not rows:
            continue
        print(f"\nwhere one {phase} result's time goes (mean per result):")
        for row in rows:
            count = "" if row["count_per_result"] is None else f"{row['count_per_result']:5.1f}×"
            print(f"  {row['ms_per_result']:8.2f} ms  {count:>7}  {row['statement']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="database to use (default: a fresh MySQL database, dropped at the end)")
    parser.add_argument("--server-url", default=os.environ.get("TEST_MYSQL_URL", DEFAULT_SERVER_URL),
                        help="MySQL server for the fresh database (default: %(default)s)")
    parser.add_argument("--results", type=int, default=40, help="timed results (default: %(default)s)")
    parser.add_argument("--ips", type=int, default=4, help="IPs the results go round (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=20261102)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--profile", action="store_true", help="time every SQL statement and report where the time goes")
    args = parser.parse_args(argv)
    if args.results < 1 or args.ips < 1:
        parser.error("--results and --ips must be at least 1")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    created = None
    url = args.database_url
    server = None
    if url is None:
        created = f"animehot_bench_{uuid.uuid4().hex[:8]}"
        server = sa.create_engine(args.server_url)
        with server.begin() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {created} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        url = f"{args.server_url}/{created}?charset=utf8mb4"
    try:
        log(f"benchmarking ingest on {sa.make_url(url).render_as_string(hide_password=True)}")
        figures = run(url, args.results, args.ips, args.seed, args.profile, log)
        figures["command"] = " ".join([os.path.basename(sys.executable), "-m", "bench.ingest", *(argv if argv is not None else sys.argv[1:])])
    finally:
        if created:
            with server.begin() as connection:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {created}"))
            server.dispose()
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
