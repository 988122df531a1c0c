"""Backfill flow: retrieve a range of days, then rebuild the study table. No report.

Run it from the Prefect UI (custom run: start, end) after adding a machine, changing a
filter, or when the weekly run reported missing days. Days already stored are cache /
store hits; ``force`` fetches them again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.outcome import failed, failed_state, run_logged
from flows.weekly import MAX_WORKERS, settings_for
from pyschedvisu.config import Settings
from pyschedvisu.phases import phase
from pyschedvisu_core import runs


@flow(
    name="backfill",
    flow_run_name="backfill-{start}-{end}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
    validate_parameters=True,
)
def backfill(
    start: dt.date, end: dt.date, config_path: str | None = None, force: bool = False
) -> Any:
    """Retrieve every business day from ``start`` to ``end``, then update the study table.

    Ends Failed (after extracting what was retrieved) when a day could not be fetched;
    retrying the run fetches only those days.

    Args:
        start: First day to retrieve.
        end: Last day to retrieve (included).
        config_path: TOML configuration file. Empty: $PYSCHEDVISU_CONFIG, else built-in defaults.
        force: Fetch days again even when already stored.
    """
    if end < start:
        return failed("backfill", f"end {end} is before start {start}")
    return run_logged(
        "backfill",
        lambda: settings_for(config_path),
        lambda settings: _backfill(settings, start, end, force),
    )


def _backfill(settings: Settings, start: dt.date, end: dt.date, force: bool) -> Any:
    """The body of :func:`backfill`, once its settings are loaded."""
    from tasks.extract import extract_studies, summarise_dropped
    from tasks.notify import publish_artifacts
    from tasks.retrieve import retrieve_days

    logger = get_run_logger()
    days = settings.business_days(start, end)
    logger.info("backfill %s..%s: %d business day(s)", start, end, len(days))
    outcomes = retrieve_days(settings, days, force=force)
    missing = runs.missing_days(outcomes)
    with phase(logger, "extracting the study table"):
        studies_path = extract_studies(settings, None)
        dropped = summarise_dropped(settings, days)
    publish_artifacts(
        settings,
        end,
        [],
        runs.quality_rows(outcomes),
        missing,
        None,
        None,
        kind="backfill",
        dropped=dropped,
    )
    result = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": len(days),
        "fetched": sum(1 for o in outcomes if o.ok and not o.summary.get("from_cache", False)),
        "missing": [d.isoformat() for d in missing],
        "studies": studies_path,
        "dropped": dropped.lines(),
    }
    if missing:
        return failed_state("backfill", missing, result)
    return result
