"""Alert rules (SPEC §7) at their boundaries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from animehot_dagster.domain.alerts import AlertThresholds, AlertType, Severity, evaluate, missing_alerts
from animehot_dagster.domain.scores import liquidity_index

DEFAULTS = AlertThresholds()


def kinds(alerts) -> set[AlertType]:
    return {a.alert_type for a in alerts}


def test_default_thresholds_are_the_manuals():
    assert (DEFAULTS.high_outflow, DEFAULTS.low_liquidity, DEFAULTS.high_liquidity) == (50, 0.3, 2.0)


@pytest.mark.parametrize("outflow, raised", [(49, False), (50, True), (51, True)])
def test_high_outflow_from_50_inclusive(outflow, raised):
    # inflow chosen so that the liquidity index raises nothing by itself
    alerts = evaluate(outflow, outflow, Decimal("1.0000"), DEFAULTS)
    assert (AlertType.HIGH_OUTFLOW in kinds(alerts)) is raised
    if raised:
        (alert,) = alerts
        assert alert.severity is Severity.WARNING
        assert alert.threshold == Decimal(50)
        assert alert.actual_value == Decimal(outflow)
        assert str(outflow) in alert.message


@pytest.mark.parametrize(
    "liquidity, raised",
    [("0.2999", True), ("0.3000", False), ("0.3001", False), ("0.0000", True)],
)
def test_low_liquidity_strictly_below_0_3(liquidity, raised):
    alerts = evaluate(10, 3, Decimal(liquidity), DEFAULTS)
    assert kinds(alerts) == ({AlertType.LOW_LIQUIDITY} if raised else set())
    if raised:
        assert alerts[0].severity is Severity.INFO
        assert alerts[0].threshold == Decimal("0.3")
        assert alerts[0].actual_value == Decimal(liquidity)


@pytest.mark.parametrize("liquidity, raised", [("2.0000", False), ("2.0001", True), ("1.9999", False), ("7.5000", True)])
def test_surge_strictly_above_2_0(liquidity, raised):
    alerts = evaluate(10, 20, Decimal(liquidity), DEFAULTS)
    assert kinds(alerts) == ({AlertType.SURGE} if raised else set())
    if raised:
        assert alerts[0].severity is Severity.CRITICAL
        assert alerts[0].threshold == Decimal("2.0")
        assert alerts[0].actual_value == Decimal(liquidity)


def test_no_liquidity_alerts_when_nothing_was_listed():
    assert evaluate(0, 0, None, DEFAULTS) == []
    assert kinds(evaluate(0, 60, None, DEFAULTS)) == {AlertType.HIGH_OUTFLOW}


def test_an_hour_can_raise_two_alerts_but_one_of_each_type():
    alerts = evaluate(20, 60, liquidity_index(20, 60), DEFAULTS)
    assert [a.alert_type for a in alerts] == [AlertType.HIGH_OUTFLOW, AlertType.SURGE]


def test_figures_computed_by_the_scores_module_hit_the_boundaries_exactly():
    assert evaluate(10, 3, liquidity_index(10, 3), DEFAULTS) == []  # 0.3 exactly
    assert evaluate(10, 20, liquidity_index(10, 20), DEFAULTS) == []  # 2.0 exactly
    assert kinds(evaluate(100, 29, liquidity_index(100, 29), DEFAULTS)) == {AlertType.LOW_LIQUIDITY}
    assert kinds(evaluate(10, 21, liquidity_index(10, 21), DEFAULTS)) == {AlertType.SURGE}
    assert kinds(evaluate(1000, 2001, liquidity_index(1000, 2001), DEFAULTS)) == {AlertType.HIGH_OUTFLOW, AlertType.SURGE}


def test_custom_thresholds():
    thresholds = AlertThresholds(high_outflow=5, low_liquidity=0.5, high_liquidity=1.5)
    assert kinds(evaluate(10, 5, Decimal("0.5000"), thresholds)) == {AlertType.HIGH_OUTFLOW}
    assert kinds(evaluate(10, 4, Decimal("0.4000"), thresholds)) == {AlertType.LOW_LIQUIDITY}
    assert kinds(evaluate(2, 4, Decimal("2.0000"), thresholds)) == {AlertType.SURGE}
    assert evaluate(4, 4, Decimal("1.0000"), thresholds) == []


def test_zero_high_outflow_threshold_alerts_on_every_hour():
    assert kinds(evaluate(3, 0, Decimal("0.0000"), AlertThresholds(high_outflow=0, low_liquidity=0, high_liquidity=5))) == {AlertType.HIGH_OUTFLOW}


# ------------------------------------------------------------------------------ stored alerts


def test_an_alert_the_figures_raise_but_not_stored_is_missing():
    raised = evaluate(10, 60, liquidity_index(10, 60), DEFAULTS)  # high outflow and a surge
    assert missing_alerts(raised, ["surge"]) == ["high_outflow"]
    assert missing_alerts(raised, []) == ["high_outflow", "surge"]


def test_an_alert_is_never_withdrawn_so_one_the_figures_no_longer_raise_is_no_fault():
    # An earlier crawl of the hour raised a surge; later crawls calmed the figures.
    calm = evaluate(100, 40, liquidity_index(100, 40), DEFAULTS)
    assert calm == []
    assert missing_alerts(calm, ["surge", "high_outflow"]) == []
    assert missing_alerts(evaluate(10, 60, liquidity_index(10, 60), DEFAULTS), ["surge", "high_outflow"]) == []
