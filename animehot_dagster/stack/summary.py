"""What a run of the local system measured: crawls, inflow and outflow per IP, the leaderboard,
and the error against the simulator's ground truth over the same stretch of market time."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from animehot_dagster.api.params import leaderboard_hours
from animehot_dagster.api.views import leaderboard_json
from animehot_dagster.domain.leaderboard import LeaderboardType
from animehot_dagster.domain.scores import hot_score, liquidity_index
from animehot_dagster.domain.timebuckets import hour_bucket, rfc3339_jst, to_unix
from animehot_dagster.storage.api_reads import ranked
from animehot_dagster.storage.schema import crawl_log, ip_metadata, ip_stats_hourly

LEADERBOARD_LIMIT = 10


@dataclasses.dataclass(frozen=True)
class MarketClock:
    """Maps wall time to the simulator's market time (it runs ``scale`` times as fast)."""

    wall: float
    market: float
    scale: float

    @classmethod
    def read(cls, simulator_url: str) -> MarketClock:
        before = datetime.now().timestamp()
        answer = httpx.get(f"{simulator_url}/__clock", timeout=10).json()
        after = datetime.now().timestamp()
        return cls((before + after) / 2, float(answer["now"]), float(answer["scale"]))

    def market_time(self, wall: float) -> float:
        return self.market + (wall - self.wall) * self.scale


def relative_error(measured: float, truth: float) -> float | None:
    return None if truth == 0 else (measured - truth) / truth


@dataclasses.dataclass
class IpRow:
    ip_id: int
    name: str
    crawls: int
    baselines: int
    first_crawl: datetime
    last_crawl: datetime
    inflow: int  # from the hourly rows, as the API serves them
    outflow: int
    measured_inflow: int  # from the crawls after the first, the span the truth is taken over
    measured_outflow: int
    truth_created: int | None = None
    truth_sold: int | None = None

    def as_json(self) -> dict:
        return {
            "ip_id": self.ip_id,
            "name": self.name,
            "crawls": self.crawls,
            "baseline_crawls": self.baselines,
            "first_crawl": rfc3339_jst(self.first_crawl),
            "last_crawl": rfc3339_jst(self.last_crawl),
            "inflow": self.inflow,
            "outflow": self.outflow,
            "liquidity_index": _number(liquidity_index(self.inflow, self.outflow)),
            "hot_score": hot_score(self.inflow, self.outflow),
            "vs_truth": {
                "measured_inflow": self.measured_inflow,
                "measured_outflow": self.measured_outflow,
                "truth_created": self.truth_created,
                "truth_sold": self.truth_sold,
                "inflow_error": _round(relative_error(self.measured_inflow, self.truth_created), 4)
                if self.truth_created is not None else None,
                "outflow_error": _round(relative_error(self.measured_outflow, self.truth_sold), 4)
                if self.truth_sold is not None else None,
            },
        }


def _number(value) -> float | None:
    return None if value is None else float(value)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def crawl_rows(engine: Engine, since: datetime) -> list[IpRow]:
    """Per IP crawled since ``since``: its crawls and its figures over the hours they fell in."""
    with engine.connect() as connection:
        crawls = connection.execute(
            sa.select(crawl_log.c.ip_id, ip_metadata.c.name, crawl_log.c.crawled_at, crawl_log.c.baseline,
                      crawl_log.c.inflow, crawl_log.c.outflow, crawl_log.c.hour_bucket)
            .join(ip_metadata, ip_metadata.c.id == crawl_log.c.ip_id)
            .where(crawl_log.c.crawled_at >= since)
            .order_by(crawl_log.c.ip_id, crawl_log.c.crawled_at)
        ).all()
        by_ip: dict[int, list] = {}
        for row in crawls:
            by_ip.setdefault(row.ip_id, []).append(row)
        rows = []
        for ip_id, ip_crawls in by_ip.items():
            first_hour, last_hour = ip_crawls[0].hour_bucket, ip_crawls[-1].hour_bucket
            inflow, outflow = connection.execute(
                sa.select(sa.func.coalesce(sa.func.sum(ip_stats_hourly.c.inflow), 0),
                          sa.func.coalesce(sa.func.sum(ip_stats_hourly.c.outflow), 0))
                .where(ip_stats_hourly.c.ip_id == ip_id, ip_stats_hourly.c.hour_bucket >= first_hour,
                       ip_stats_hourly.c.hour_bucket <= last_hour)
            ).one()
            after_first = ip_crawls[1:]
            rows.append(IpRow(
                ip_id=ip_id, name=ip_crawls[0].name, crawls=len(ip_crawls),
                baselines=sum(1 for c in ip_crawls if c.baseline),
                first_crawl=ip_crawls[0].crawled_at, last_crawl=ip_crawls[-1].crawled_at,
                inflow=int(inflow), outflow=int(outflow),
                measured_inflow=sum(c.inflow for c in after_first),
                measured_outflow=sum(c.outflow for c in after_first),
            ))
    return rows


def add_truth(rows: list[IpRow], simulator_url: str, clock: MarketClock) -> None:
    """The simulator's truth over the market time between each IP's first and last crawl."""
    with httpx.Client(base_url=simulator_url, timeout=30) as client:
        for row in rows:
            if row.crawls < 2:
                continue
            start = clock.market_time(to_unix(row.first_crawl))
            end = clock.market_time(to_unix(row.last_crawl))
            answer = client.get("/__truth", params={"keyword": row.name, "from": int(start), "to": int(end)})
            answer.raise_for_status()
            span = answer.json()["span"]
            row.truth_created, row.truth_sold = span["created"], span["sold"]


def leaderboard_of(engine: Engine, rows: list[IpRow]) -> dict:
    """The hot leaderboard over the hours the crawls fell in, in the API's wire shape, as
    ``GET /api/v1/leaderboard`` serves it once the last of those hours is complete (it ranks
    complete hours only)."""
    first = min(hour_bucket(r.first_crawl) for r in rows)
    complete_at = hour_bucket(max(r.last_crawl for r in rows)) + timedelta(hours=1)
    hours = leaderboard_hours(int((complete_at - first) / timedelta(hours=1)))
    span, entries, names = ranked(engine, LeaderboardType.HOT, hours, LEADERBOARD_LIMIT, complete_at)
    board = leaderboard_json(LeaderboardType.HOT.value, hours, span, entries, names)
    return {"as_of": rfc3339_jst(complete_at), "request": f"/api/v1/leaderboard?type=hot&hours={hours}", **board}


def build_summary(engine: Engine, since: datetime, simulator_url: str | None, clock: MarketClock | None,
                  wall_seconds: float, urls: dict[str, str]) -> dict:
    rows = crawl_rows(engine, since)
    if simulator_url and clock:
        add_truth(rows, simulator_url, clock)
    with_truth = [r for r in rows if r.truth_created is not None]
    overall = {
        "measured_inflow": sum(r.measured_inflow for r in with_truth),
        "truth_created": sum(r.truth_created for r in with_truth),
        "measured_outflow": sum(r.measured_outflow for r in with_truth),
        "truth_sold": sum(r.truth_sold for r in with_truth),
    }
    for measured, truth, name in (("measured_inflow", "truth_created", "inflow_error"),
                                  ("measured_outflow", "truth_sold", "outflow_error")):
        error = relative_error(overall[measured], overall[truth] or 0)
        overall[name] = _round(error, 4)
    return {
        "since": rfc3339_jst(since),
        "wall_seconds": round(wall_seconds, 1),
        "crawls": sum(r.crawls for r in rows),
        "ips": [r.as_json() for r in rows],
        "leaderboard": leaderboard_of(engine, rows) if rows else None,
        "vs_truth": overall,
        "urls": urls,
    }


def _percent(error: float | None) -> str:
    return "   n/a" if error is None else f"{error * 100:+5.1f}%"


def format_summary(summary: dict) -> str:
    lines = [f"Summary: {summary['crawls']} crawls in {summary['wall_seconds'] / 60:.1f} min", ""]
    lines.append(f"{'IP':<24} {'crawls':>6} {'inflow':>7} {'outflow':>7} {'liq.':>5}   "
                 f"{'in vs truth':>19} {'out vs truth':>19}")
    for ip in summary["ips"]:
        truth = ip["vs_truth"]
        liquidity = "-" if ip["liquidity_index"] is None else f"{ip['liquidity_index']:.2f}"
        created = "-" if truth["truth_created"] is None else f"{truth['truth_created']:.0f}"
        sold = "-" if truth["truth_sold"] is None else f"{truth['truth_sold']:.0f}"
        lines.append(
            f"{_clip(ip['name'], 24)} {ip['crawls']:>6} {ip['inflow']:>7} {ip['outflow']:>7} {liquidity:>5}   "
            f"{truth['measured_inflow']:>5}/{created:>5} {_percent(truth['inflow_error'])}  "
            f"{truth['measured_outflow']:>5}/{sold:>5} {_percent(truth['outflow_error'])}"
        )
    overall = summary["vs_truth"]
    lines += ["", "Against the simulator's ground truth (crawls after each IP's first, over the same market time):",
              f"  inflow  {overall['measured_inflow']} measured / {overall['truth_created']} listed: "
              f"{_percent(overall['inflow_error'])}",
              f"  outflow {overall['measured_outflow']} measured / {overall['truth_sold']} sold:   "
              f"{_percent(overall['outflow_error'])}"]
    board = summary["leaderboard"]
    if board:
        lines += ["", f"Hot leaderboard ({board['request']}, as it reads from {board['as_of']}):"]
        lines += [f"  {e['rank']:>2}. {_clip(e['ip_name'], 24)} hot {e['score']:>8.1f}  in {e['inflow']:>5}  "
                  f"out {e['outflow']:>5}" for e in board["items"]]
    lines += [""] + [f"{name:<12} {url}" for name, url in summary["urls"].items()]
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    # East Asian characters take two columns in a terminal.
    out, used = "", 0
    for char in text:
        cost = 2 if ord(char) > 0x2E80 else 1
        if used + cost > width:
            break
        out, used = out + char, used + cost
    return out + " " * (width - used)
