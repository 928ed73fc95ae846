"""Preview tables for materialization metadata, shown as tables in the Dagster UI."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import dagster as dg

from animehot_dagster.domain.timebuckets import rfc3339_jst


def _plain(value: object) -> str | int | float | bool | None:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return rfc3339_jst(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def preview_table(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> dg.TableMetadataValue:
    """A table of ``rows`` (dicts) with ``columns``, times in Japan time, decimals as numbers."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({column: _plain(row.get(column)) for column in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(column) for column in columns]),
    )
