"""Exactly-once application of a crawl result (SPEC §4, ARCHITECTURE rule 2).

Everything here runs on the real databases and, where processes matter, in real OS processes
that are started, synchronised and SIGKILLed for real. "Identical to one apply" is checked on
full dumps of every table of the schema.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from animehot_dagster.domain.messages import CrawlResponse, encode_response
from animehot_dagster.storage.ingest import IngestConfig, UnknownIpError, apply
from animehot_dagster.storage.schema import crawl_log, ip_metadata, ip_stats_hourly, item_events, metadata
from animehot_dagster_tests.factories import T0, make_ips, on_sale, response, sold

REPO = Path(__file__).resolve().parents[2]
CONFIG = IngestConfig()

H0 = T0  # the baseline crawl's hour
H1 = T0 + timedelta(hours=1)  # the hour of the result under test
BASELINE_AT = H0 + timedelta(minutes=3)
RESULT_AT = H1 + timedelta(minutes=7)
NOW = H1 + timedelta(minutes=9)  # the processing time, fixed so that every apply is comparable
RESULT_TASK = "task-under-test-0001"

# The result under test: 10 pages × 120 = 1,200 reports, as a real crawl an hour after the
# baseline would bring them.
KEPT, REPRICED, NEW, NEWLY_SOLD, NEW_SOLD, SOLD_AGAIN, RELISTED = 750, 50, 140, 100, 50, 100, 10
assert KEPT + REPRICED + NEW + NEWLY_SOLD + NEW_SOLD + SOLD_AGAIN + RELISTED == 1_200
EXPECTED_INFLOW = NEW
EXPECTED_OUTFLOW = NEWLY_SOLD + NEW_SOLD


def _price(i: int) -> int:
    return 300 + (i * 37) % 9_000


def baseline_items() -> list:
    """1,000 items on sale (a*) and 200 already sold (s*)."""
    return [on_sale(f"a{i}", _price(i)) for i in range(1_000)] + [sold(f"s{i}", _price(i)) for i in range(200)]


def result_items() -> list:
    items = [on_sale(f"a{i}", _price(i)) for i in range(KEPT)]
    items += [on_sale(f"a{i}", _price(i) + 100) for i in range(KEPT, KEPT + REPRICED)]  # price_change
    items += [on_sale(f"n{i}", _price(i + 5_000)) for i in range(NEW)]  # new_listing
    first_sold = KEPT + REPRICED
    items += [sold(f"a{i}", _price(i)) for i in range(first_sold, first_sold + NEWLY_SOLD)]  # sold
    items += [sold(f"x{i}", _price(i + 7_000)) for i in range(NEW_SOLD)]  # new_sold
    items += [sold(f"s{i}", _price(i)) for i in range(SOLD_AGAIN)]  # sold, reported again
    items += [on_sale(f"s{i}", _price(i)) for i in range(SOLD_AGAIN, SOLD_AGAIN + RELISTED)]  # relisted
    return items


def the_result(ip_id: int) -> CrawlResponse:
    return response(ip_id, RESULT_AT, result_items(), task_id=RESULT_TASK)


# --------------------------------------------------------------------------------------------
# State helpers


def build_state(engine: Engine) -> int:
    """The state every test starts from: two IPs, the first with its baseline crawl applied."""
    ip_id, _other = make_ips(engine, "ちいかわ", "ぼっち・ざ・ろっく！")
    first = apply(engine, response(ip_id, BASELINE_AT, baseline_items(), task_id="baseline-0001"), CONFIG, now=BASELINE_AT)
    assert first.applied and first.baseline
    return ip_id


def reset(engine: Engine) -> None:
    """Empty every table (and restart MySQL's auto-increment counters) for a second state."""
    with engine.begin() as connection:
        if engine.dialect.name == "mysql":
            connection.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
            for table in metadata.sorted_tables:
                connection.execute(sa.text(f"TRUNCATE TABLE {table.name}"))
            connection.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))
        else:
            for table in reversed(metadata.sorted_tables):
                connection.execute(table.delete())


def dump(engine: Engine, surrogate_ids: bool = True) -> dict[str, list[tuple]]:
    """Every row of every table. Without ``surrogate_ids`` the auto-increment ids of the fact
    tables are left out (ip_metadata.id stays: other tables refer to it), for comparing two
    databases whose counters went different ways (MySQL does not give back the ids a rolled-back
    transaction took)."""
    tables = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            columns = [
                c for c in table.c if surrogate_ids or table is ip_metadata or not (c.primary_key and c.autoincrement is True)
            ]
            rows = [tuple(row) for row in connection.execute(sa.select(*columns))]
            tables[table.name] = sorted(rows, key=repr)
    return tables


def assert_same_rows(actual: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> None:
    problems = []
    for name in expected:
        got, want = actual[name], expected[name]
        if got != want:
            extra = [r for r in got if r not in want][:3]
            missing = [r for r in want if r not in got][:3]
            problems.append(f"{name}: {len(got)} rows, expected {len(want)}; unexpected {extra}; missing {missing}")
    assert not problems, "tables differ from one apply:\n" + "\n".join(problems)


def reference_after_one_apply(engine: Engine) -> tuple[dict, float, int]:
    """Build the state, apply the result once in this process, dump, and reset the database to
    the starting state again. Returns the dump (without surrogate ids), the apply's seconds and
    the IP's id."""
    ip_id = build_state(engine)
    started = time.perf_counter()
    once = apply(engine, the_result(ip_id), CONFIG, now=NOW)
    seconds = time.perf_counter() - started
    assert once.applied and not once.baseline
    assert (once.inflow, once.outflow) == (EXPECTED_INFLOW, EXPECTED_OUTFLOW)
    assert once.alerts == ("high_outflow",)  # so that ip_alerts is part of what is compared
    expected = dump(engine, surrogate_ids=False)
    reset(engine)
    assert build_state(engine) == ip_id
    return expected, seconds, ip_id


def task_logged(engine: Engine, task_id: str = RESULT_TASK) -> bool:
    with engine.connect() as connection:
        return connection.execute(sa.select(crawl_log.c.task_id).where(crawl_log.c.task_id == task_id)).first() is not None


def result_traces(engine: Engine, ip_id: int) -> dict[str, int]:
    """What of the result under test a reader could see."""
    with engine.connect() as connection:
        def count(statement):
            return connection.execute(statement).scalar_one()

        return {
            "crawl_log": count(sa.select(sa.func.count()).select_from(crawl_log).where(crawl_log.c.task_id == RESULT_TASK)),
            "item_events": count(sa.select(sa.func.count()).select_from(item_events).where(item_events.c.task_id == RESULT_TASK)),
            "ip_stats_hourly": count(
                sa.select(sa.func.count()).select_from(ip_stats_hourly).where(
                    ip_stats_hourly.c.ip_id == ip_id, ip_stats_hourly.c.hour_bucket == H1
                )
            ),
        }


# --------------------------------------------------------------------------------------------
# The applying process: a fresh interpreter that applies the result file once.

CHILD = r"""
import json, sys
from datetime import datetime
from animehot_dagster.domain.messages import decode_response
from animehot_dagster.storage.db import create_engine
from animehot_dagster.storage.ingest import IngestConfig, apply
url, path, now, wait = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3]), sys.argv[4] == "wait"
result = decode_response(open(path, encoding="utf-8").read())
engine = create_engine(url)
with engine.connect() as connection:  # connected before the start signal; apply reuses it
    connection.exec_driver_sql("SELECT 1")
print("ready", flush=True)
if wait:
    assert sys.stdin.readline().strip() == "go"
outcome = apply(engine, result, IngestConfig(), now=now)
print(json.dumps({"applied": outcome.applied, "inflow": outcome.inflow, "outflow": outcome.outflow,
                  "seconds": outcome.duration_seconds}), flush=True)
"""


def start_child(url: str, result_file: Path, wait_for_go: bool = False) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(result_file), NOW.isoformat(), "wait" if wait_for_go else "now"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.kill()
        raise AssertionError(f"applying process did not start: {line!r} {child.communicate()[1]}")
    return child


def finish_child(child: subprocess.Popen, timeout: float = 60) -> dict:
    out, err = child.communicate(timeout=timeout)
    assert child.returncode == 0, f"applying process failed ({child.returncode}): {err}"
    return json.loads(out.strip().splitlines()[-1])


def write_result(tmp_path: Path, result: CrawlResponse) -> Path:
    path = tmp_path / f"{result.task_id}.json"
    path.write_text(encode_response(result), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Tests


def test_applying_the_same_result_twice_changes_nothing_the_second_time(engine):
    ip_id = build_state(engine)
    result = the_result(ip_id)

    first = apply(engine, result, CONFIG, now=NOW)
    after_one = dump(engine)
    second = apply(engine, result, CONFIG, now=NOW)

    assert first.applied and (first.inflow, first.outflow) == (EXPECTED_INFLOW, EXPECTED_OUTFLOW)
    assert not second.applied
    # The answer for the repeat describes the crawl as it was applied.
    assert (second.inflow, second.outflow, second.items, second.failed) == (first.inflow, first.outflow, first.items, False)
    assert second.next_crawl_at == first.next_crawl_at
    assert_same_rows(dump(engine), after_one)
    assert len(after_one["item_events"]) == EXPECTED_INFLOW + EXPECTED_OUTFLOW + REPRICED + RELISTED


def test_two_processes_applying_the_same_result_at_once_apply_it_once(engine, database_url, tmp_path):
    expected, _, ip_id = reference_after_one_apply(engine)
    result_file = write_result(tmp_path, the_result(ip_id))

    children = [start_child(database_url, result_file, wait_for_go=True) for _ in range(2)]
    for child in children:  # both are connected and waiting: release them together
        child.stdin.write("go\n")
    for child in children:
        child.stdin.flush()
    outcomes = [finish_child(child) for child in children]

    assert sorted(o["applied"] for o in outcomes) == [False, True], outcomes
    assert all((o["inflow"], o["outflow"]) == (EXPECTED_INFLOW, EXPECTED_OUTFLOW) for o in outcomes), outcomes
    assert_same_rows(dump(engine, surrogate_ids=False), expected)


def _innodb_transactions(server: sa.Connection) -> list:
    """INNODB_TRX (a snapshot InnoDB refreshes at most every 100 ms, and only if nobody read it
    in the last 100 ms)."""
    return server.execute(
        sa.text(
            "SELECT trx_id, trx_mysql_thread_id, trx_state, trx_rows_modified, trx_query "
            "FROM information_schema.INNODB_TRX"
        )
    ).all()


def test_mysql_crash_between_two_writes_leaves_nothing_and_the_retry_applies_once(mysql_engine, mysql_url, tmp_path):
    """Kill the applying process while it holds its result's first writes (crawl log, item
    snapshots, item events) and waits to write the hourly row; nothing of it may be visible."""
    expected, _, ip_id = reference_after_one_apply(mysql_engine)
    before = dump(mysql_engine)
    result_file = write_result(tmp_path, the_result(ip_id))

    # A REPEATABLE READ locking read of the not-yet-existing (ip, H1) hourly row takes a gap lock
    # (here on the gap after the last index record up to the supremum, as (ip, H0) is the last
    # key). An INSERT into a locked gap needs an insert-intention lock, which conflicts with the
    # gap lock whatever the inserter's own isolation level (ingest runs READ COMMITTED), so the
    # ingest's `INSERT … ON DUPLICATE KEY UPDATE` into ip_stats_hourly waits on it. Verified on
    # MariaDB 10.11: the wait shows in INNODB_TRX as LOCK WAIT on that statement, below.
    locker_engine = sa.create_engine(mysql_url, isolation_level="REPEATABLE READ")
    locker = locker_engine.connect()
    lock = locker.begin()
    server_engine = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    child = None
    try:
        held = locker.execute(
            sa.select(ip_stats_hourly.c.id)
            .where(ip_stats_hourly.c.ip_id == ip_id, ip_stats_hourly.c.hour_bucket == H1)
            .with_for_update()
        ).all()
        assert held == []
        locker_trx = locker.execute(
            sa.text("SELECT trx_id FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID()")
        ).scalar_one()

        child = start_child(mysql_url, result_file)
        waiting = None
        deadline = time.monotonic() + 30
        with server_engine.connect() as server:
            while waiting is None and time.monotonic() < deadline and child.poll() is None:
                waiting = next(
                    (
                        t
                        for t in _innodb_transactions(server)
                        if t.trx_state == "LOCK WAIT" and (t.trx_query or "").startswith("INSERT INTO ip_stats_hourly")
                    ),
                    None,
                )
                # InnoDB refreshes the INNODB_TRX snapshot only when it was not read in the last
                # 100 ms, so polling faster than that would keep reading a stale one.
                time.sleep(0.25)
            assert waiting is not None, (
                f"the ingest never waited on the hourly row: {child.poll()} {_innodb_transactions(server)} "
                f"{server.execute(sa.text('SELECT ID, COMMAND, STATE, INFO FROM information_schema.PROCESSLIST')).all()}"
            )
            blockers = server.execute(
                sa.text("SELECT blocking_trx_id FROM information_schema.INNODB_LOCK_WAITS WHERE requesting_trx_id = :t"),
                {"t": waiting.trx_id},
            ).scalars().all()
            assert blockers == [locker_trx]
            # Its earlier writes are done: the crawl log row, every snapshot, every event.
            assert waiting.trx_rows_modified >= 1 + 1_200 + EXPECTED_INFLOW + EXPECTED_OUTFLOW

            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            assert child.returncode == -signal.SIGKILL

            lock.rollback()  # let the dead client's statement finish; the server then rolls it back
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                alive = server.execute(
                    sa.text("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = :id"),
                    {"id": waiting.trx_mysql_thread_id},
                ).scalar_one()
                if not alive and not any(t.trx_id == waiting.trx_id for t in _innodb_transactions(server)):
                    break
                time.sleep(0.25)
            else:
                raise AssertionError("the killed process's transaction is still open on the server")
    finally:
        if child is not None and child.poll() is None:
            child.kill()
        locker.close()
        locker_engine.dispose()
        server_engine.dispose()

    assert result_traces(mysql_engine, ip_id) == {"crawl_log": 0, "item_events": 0, "ip_stats_hourly": 0}
    assert_same_rows(dump(mysql_engine), before)

    retry = apply(mysql_engine, the_result(ip_id), CONFIG, now=NOW)
    assert retry.applied and (retry.inflow, retry.outflow) == (EXPECTED_INFLOW, EXPECTED_OUTFLOW)
    assert_same_rows(dump(mysql_engine, surrogate_ids=False), expected)


KILLS = 5


def test_processes_killed_at_random_moments_then_a_retry_apply_the_result_once(engine, database_url, tmp_path):
    expected, apply_seconds, ip_id = reference_after_one_apply(engine)
    result_file = write_result(tmp_path, the_result(ip_id))
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)

    # The process says "ready" just before it calls apply, which takes about as long as the
    # reference apply did here; the kills fall anywhere in that span. A kill that comes too late
    # (the process had committed) must have left exactly one apply behind; the state is then set
    # back and the span shortened, until KILLS processes have died before their commit.
    span = 0.9 * apply_seconds
    history, crashes = [], 0
    for _attempt in range(3 * KILLS):
        if crashes == KILLS:
            break
        child = start_child(database_url, result_file)
        delay = rng.uniform(0, span)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        _out, err = child.communicate(timeout=30)
        committed = task_logged(engine)
        history.append((round(delay, 3), child.returncode, committed))
        assert child.returncode in (0, -signal.SIGKILL), f"the applying process failed: {err}"
        if committed:
            assert_same_rows(dump(engine, surrogate_ids=False), expected)
            reset(engine)
            assert build_state(engine) == ip_id
            span *= 0.6
            continue
        assert child.returncode == -signal.SIGKILL, (seed, history)  # it had not finished
        assert result_traces(engine, ip_id) == {"crawl_log": 0, "item_events": 0, "ip_stats_hourly": 0}, (seed, history)
        crashes += 1

    assert crashes == KILLS, (seed, history)
    for _attempt in range(3):  # retry until the crawl log holds the task
        if task_logged(engine):
            break
        finish_child(start_child(database_url, result_file))
    assert task_logged(engine), (seed, history)
    assert_same_rows(dump(engine, surrogate_ids=False), expected)


def test_a_result_with_an_error_changes_no_state_but_is_logged(engine):
    ip_id = build_state(engine)
    before = dump(engine)
    # A failed crawl may still carry what it saw before failing; none of it may count.
    failed = response(ip_id, RESULT_AT, result_items()[:300], task_id="failed-0001", error_message="page timeout")

    outcome = apply(engine, failed, CONFIG, now=NOW)
    again = apply(engine, failed, CONFIG, now=NOW)

    assert outcome.applied and outcome.failed and (outcome.inflow, outcome.outflow, outcome.items) == (0, 0, 0)
    assert not again.applied and again.failed
    after = dump(engine)
    # Not even ip_metadata: the weight stays and the IP is no fresher (last_crawled_at).
    for table in ("ip_metadata", "item_snapshots", "item_events", "ip_stats_hourly", "ip_alerts", "ip_stats_daily", "ip_stats_weekly"):
        assert after[table] == before[table], table
    with engine.connect() as connection:
        logged = connection.execute(sa.select(crawl_log).where(crawl_log.c.task_id == "failed-0001")).one()
    assert logged.error_message == "page timeout"
    assert (logged.items_count, logged.inflow, logged.outflow, logged.baseline) == (0, 0, 0, False)
    assert len(after["crawl_log"]) == len(before["crawl_log"]) + 1

    # The next good crawl still sees the states as the baseline left them.
    good = apply(engine, the_result(ip_id), CONFIG, now=NOW)
    assert (good.inflow, good.outflow) == (EXPECTED_INFLOW, EXPECTED_OUTFLOW)


def test_no_items_is_a_successful_crawl_not_an_error(engine):
    ip_id = build_state(engine)
    before = dump(engine)

    empty = apply(engine, response(ip_id, RESULT_AT, [], task_id="empty-0001", error_message="no_items"), CONFIG, now=NOW)
    failed_later = apply(
        engine, response(ip_id, RESULT_AT + timedelta(hours=1), [], task_id="failed-0002", error_message="blocked"), CONFIG, now=NOW
    )

    assert empty.applied and not empty.failed and not empty.baseline
    assert failed_later.failed
    after = dump(engine)
    assert after["item_snapshots"] == before["item_snapshots"]
    with engine.connect() as connection:
        hours = connection.execute(
            sa.select(ip_stats_hourly.c.hour_bucket, ip_stats_hourly.c.crawl_count, ip_stats_hourly.c.inflow, ip_stats_hourly.c.outflow)
            .where(ip_stats_hourly.c.ip_id == ip_id)
            .order_by(ip_stats_hourly.c.hour_bucket)
        ).all()
        logged = dict(connection.execute(sa.select(crawl_log.c.task_id, crawl_log.c.error_message)).all())
    # The empty crawl counts in its hour (a crawl that found nothing); the failed one does not.
    assert [tuple(h) for h in hours] == [(H0, 1, 0, 0), (H1, 1, 0, 0)]
    assert logged["empty-0001"] == "no_items" and logged["failed-0002"] == "blocked"


def test_a_result_for_an_unknown_ip_raises_and_writes_nothing(engine):
    ip_id = build_state(engine)
    before = dump(engine)

    with pytest.raises(UnknownIpError):
        apply(engine, the_result(ip_id + 1_000), CONFIG, now=NOW)

    assert_same_rows(dump(engine), before)
    assert not task_logged(engine)
