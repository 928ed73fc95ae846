"""Alert rules (SPEC §7), evaluated on an hour's stats."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from decimal import Decimal


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertType(enum.Enum):
    HIGH_OUTFLOW = "high_outflow"
    LOW_LIQUIDITY = "low_liquidity"
    SURGE = "surge"


@dataclasses.dataclass(frozen=True)
class AlertThresholds:
    high_outflow: int = 50
    low_liquidity: float = 0.3
    high_liquidity: float = 2.0


@dataclasses.dataclass(frozen=True)
class Alert:
    alert_type: AlertType
    severity: Severity
    message: str
    threshold: Decimal
    actual_value: Decimal


def evaluate(
    inflow: int, outflow: int, liquidity: Decimal | None, thresholds: AlertThresholds
) -> list[Alert]:
    """The alerts an hour with these figures raises (at most one of each type)."""
    alerts = []
    if outflow >= thresholds.high_outflow:
        alerts.append(
            Alert(
                AlertType.HIGH_OUTFLOW,
                Severity.WARNING,
                f"outflow {outflow} reached the threshold {thresholds.high_outflow}",
                Decimal(thresholds.high_outflow),
                Decimal(outflow),
            )
        )
    if liquidity is not None and liquidity < Decimal(str(thresholds.low_liquidity)):
        alerts.append(
            Alert(
                AlertType.LOW_LIQUIDITY,
                Severity.INFO,
                f"liquidity index {liquidity} is below {thresholds.low_liquidity} "
                f"(inflow {inflow}, outflow {outflow})",
                Decimal(str(thresholds.low_liquidity)),
                liquidity,
            )
        )
    if liquidity is not None and liquidity > Decimal(str(thresholds.high_liquidity)):
        alerts.append(
            Alert(
                AlertType.SURGE,
                Severity.CRITICAL,
                f"liquidity index {liquidity} is above {thresholds.high_liquidity}: "
                f"selling faster than listed (inflow {inflow}, outflow {outflow})",
                Decimal(str(thresholds.high_liquidity)),
                liquidity,
            )
        )
    return alerts


def missing_alerts(raised: Iterable[Alert], stored_types: Iterable[str]) -> list[str]:
    """The types of the ``raised`` alerts that are not stored, sorted. An alert raised by an
    earlier crawl of the hour stays even if later crawls calmed the figures (SPEC §7: one alert
    per (ip, hour, type), never withdrawn), so a stored alert the figures no longer raise is no
    fault: only a missing one is."""
    return sorted({alert.alert_type.value for alert in raised} - set(stored_types))
