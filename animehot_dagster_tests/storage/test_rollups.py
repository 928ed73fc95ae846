"""The rollup checks' reads and the leaderboards' names, on MariaDB: a rollup's totals against
the hourly rows of its own Japan-time hours, and nothing of the hours around them."""

from __future__ import annotations

from datetime import date, timedelta

from animehot_dagster.storage.leaderboard import ip_names
from animehot_dagster.storage.rollups import day_totals, rollup_day, rollup_week, week_totals
from animehot_dagster.storage.schema import ip_metadata, ip_stats_daily, ip_stats_hourly
from animehot_dagster_tests.factories import T0, make_ips

MONDAY = date(2026, 11, 2)  # T0 is 09:00 of it in Japan
HOUR = timedelta(hours=1)


def hourly(connection, ip_id, at, inflow, outflow):
    connection.execute(ip_stats_hourly.insert().values(ip_id=ip_id, hour_bucket=at, inflow=inflow, outflow=outflow))


def test_rolled_up_totals_equal_the_hours_of_their_day_and_week(mysql_engine):
    a, b = make_ips(mysql_engine, "ちいかわ", "呪術廻戦")
    with mysql_engine.begin() as connection:
        hourly(connection, a, T0, 10, 4)
        hourly(connection, b, T0 + HOUR, 5, 1)
        hourly(connection, a, T0 + 24 * HOUR, 7, 7)  # Tuesday
        hourly(connection, a, T0 - 9 * HOUR - HOUR, 100, 100)  # Sunday 23:00 in Japan: the week before
        rollup_day(connection, MONDAY, T0)
        rollup_day(connection, MONDAY + timedelta(days=1), T0)
        rollup_week(connection, MONDAY, T0)
        monday, week = day_totals(connection, MONDAY), week_totals(connection, MONDAY)
    assert monday.rolled == monday.hourly == (15, 5)
    assert week.rolled == week.hourly == (22, 12)


def test_a_rollup_behind_its_hours_differs_from_them(mysql_engine):
    [ip] = make_ips(mysql_engine, "ちいかわ")
    with mysql_engine.begin() as connection:
        hourly(connection, ip, T0, 10, 4)
        rollup_day(connection, MONDAY, T0)
        hourly(connection, ip, T0 + HOUR, 3, 3)  # a late crawl's hour, not yet rolled up
        late = day_totals(connection, MONDAY)
        connection.execute(ip_stats_daily.delete())
        missing = day_totals(connection, MONDAY)
        never = week_totals(connection, MONDAY)
    assert (late.rolled, late.hourly) == ((10, 4), (13, 7))
    assert (missing.rolled, missing.hourly) == ((0, 0), (13, 7))
    assert (never.rolled, never.hourly) == ((0, 0), (13, 7))


def test_ip_names_cover_deleted_ips(mysql_engine):
    kept, deleted = make_ips(mysql_engine, "ちいかわ", "呪術廻戦")
    with mysql_engine.begin() as connection:
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == deleted).values(status="deleted"))
        assert ip_names(connection) == {kept: "ちいかわ", deleted: "呪術廻戦"}
