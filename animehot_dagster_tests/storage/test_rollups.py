"""The rollup checks' reads and the leaderboards' names, on MariaDB: a rollup's totals per IP against
the sums per IP of the hourly rows of its own Japan-time hours, and nothing of the hours around them."""

from __future__ import annotations

from datetime import date, timedelta

from animehot_dagster.domain.rollups import IpMismatch, mismatched_ips, pooled
from animehot_dagster.storage.leaderboard import ip_names
from animehot_dagster.storage.rollups import day_totals, rollup_day, rollup_week, week_totals
from animehot_dagster.storage.schema import ip_metadata, ip_stats_daily, ip_stats_hourly, ip_stats_weekly
from animehot_dagster_tests.factories import T0, make_ips

MONDAY = date(2026, 11, 2)  # T0 is 09:00 of it in Japan
HOUR = timedelta(hours=1)


def hourly(connection, ip_id, at, inflow, outflow):
    connection.execute(ip_stats_hourly.insert().values(ip_id=ip_id, hour_bucket=at, inflow=inflow, outflow=outflow))


def monday_rolled_up(connection, a, b):
    """An hour of ``a`` (10 in / 4 out) and one of ``b`` (5 in / 1 out) on MONDAY, its day and week rolled up."""
    hourly(connection, a, T0, 10, 4)
    hourly(connection, b, T0 + HOUR, 5, 1)
    rollup_day(connection, MONDAY, T0)
    rollup_week(connection, MONDAY, T0)


def test_rolled_up_totals_equal_each_ips_hours_of_their_day_and_week(mysql_engine):
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
    assert monday.rolled == monday.hourly == {a: (10, 4), b: (5, 1)}
    assert week.rolled == week.hourly == {a: (17, 11), b: (5, 1)}
    assert mismatched_ips(monday.rolled, monday.hourly) == mismatched_ips(week.rolled, week.hourly) == []


def test_an_ip_whose_hours_are_all_empty_is_still_there_with_zeros(mysql_engine):
    [ip] = make_ips(mysql_engine, "ちいかわ")
    with mysql_engine.begin() as connection:
        hourly(connection, ip, T0, 0, 0)
        before = day_totals(connection, MONDAY)
        rollup_day(connection, MONDAY, T0)
        after = day_totals(connection, MONDAY)
    assert (before.rolled, before.hourly) == ({}, {ip: (0, 0)})
    assert mismatched_ips(before.rolled, before.hourly) == [IpMismatch(ip, None, (0, 0))]
    assert after.rolled == after.hourly == {ip: (0, 0)}


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
    assert (late.rolled, late.hourly) == ({ip: (10, 4)}, {ip: (13, 7)})
    assert (missing.rolled, missing.hourly) == ({}, {ip: (13, 7)})
    assert (never.rolled, never.hourly) == ({}, {ip: (13, 7)})


def test_figures_swapped_between_two_ips_show_per_ip_though_their_sums_agree(mysql_engine):
    a, b = make_ips(mysql_engine, "ちいかわ", "呪術廻戦")
    with mysql_engine.begin() as connection:
        monday_rolled_up(connection, a, b)
        for table, bucket in ((ip_stats_daily, ip_stats_daily.c.date_bucket), (ip_stats_weekly, ip_stats_weekly.c.week_start)):
            for ip, (inflow, outflow) in ((a, (5, 1)), (b, (10, 4))):
                connection.execute(
                    table.update().where(table.c.ip_id == ip, bucket == MONDAY).values(total_inflow=inflow, total_outflow=outflow)
                )
        day, week = day_totals(connection, MONDAY), week_totals(connection, MONDAY)
    for totals in (day, week):
        assert totals.rolled == {a: (5, 1), b: (10, 4)}
        assert totals.hourly == {a: (10, 4), b: (5, 1)}
        assert pooled(totals.rolled) == pooled(totals.hourly)
        assert [m.ip_id for m in mismatched_ips(totals.rolled, totals.hourly)] == [a, b]


def test_a_rollup_row_left_without_hours_is_read(mysql_engine):
    a, b = make_ips(mysql_engine, "ちいかわ", "呪術廻戦")
    with mysql_engine.begin() as connection:
        monday_rolled_up(connection, a, b)
        connection.execute(ip_stats_hourly.delete().where(ip_stats_hourly.c.ip_id == b))
        day = day_totals(connection, MONDAY)
    assert (day.rolled, day.hourly) == ({a: (10, 4), b: (5, 1)}, {a: (10, 4)})
    assert mismatched_ips(day.rolled, day.hourly) == [IpMismatch(b, (5, 1), None)]


def test_ip_names_cover_deleted_ips(mysql_engine):
    kept, deleted = make_ips(mysql_engine, "ちいかわ", "呪術廻戦")
    with mysql_engine.begin() as connection:
        connection.execute(ip_metadata.update().where(ip_metadata.c.id == deleted).values(status="deleted"))
        assert ip_names(connection) == {kept: "ちいかわ", deleted: "呪術廻戦"}
