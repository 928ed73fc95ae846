"""The code location: every definition in ``defs/``, loaded and merged in one place, with the
resources built from the settings."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from animehot_dagster.defs.resources import build_resources
from animehot_dagster.observability.logging import configure_logging
from animehot_dagster.settings import load_settings


@dg.definitions
def defs() -> dg.Definitions:
    settings = load_settings()
    configure_logging("dagster", settings.debug)
    # Every job here is a few steps of database work: running them in the run's own process
    # saves a process start per step (seconds, against milliseconds of work).
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=build_resources(settings), executor=dg.in_process_executor),
    )
