"""The worklist snapshot flow: one snapshot of the RIS's Modality Worklist (DOMAIN §7).

Deployed as ``worklist-snapshot`` (``prefect.yaml``: every 30 minutes from 06:00 to 18:00 on
weekdays, Europe/Zurich): each run asks the worklist for the day's steps once and keeps what
it saw, so the day's plan survives a RIS that drops performed steps. A worklist that does not
answer fails that run (after its task's retries), visibly; the plan kept so far and the
weekly report are untouched. With ``worklist.enabled = false`` a run does nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger

from flows.outcome import run_logged
from flows.weekly import settings_for
from pyschedvisu.config import Settings


def _scheduled_day() -> dt.date:
    """The day of the run's scheduled time, in this machine's time zone (the RIS's)."""
    from prefect.runtime import flow_run

    value = flow_run.scheduled_start_time
    return dt.datetime.fromtimestamp(value.timestamp()).date()


def _run_name() -> str:
    from prefect.runtime import flow_run

    day = flow_run.parameters.get("day")
    value = flow_run.scheduled_start_time
    when = dt.datetime.fromtimestamp(value.timestamp()).strftime("%Y%m%d-%H%M")
    return f"worklist-snapshot-{day or when}"


@flow(name="worklist-snapshot", flow_run_name=_run_name, validate_parameters=True)
def worklist_snapshot(day: dt.date | None = None, config_path: str | None = None) -> Any:
    """Snapshot the Modality Worklist of a day and fold it into the day's plan.

    Args:
        day: Day whose steps are asked. Empty: the day of the run's scheduled time.
        config_path: TOML configuration file. Empty: $PYSCHEDVISU_CONFIG, else built-in defaults.
    """
    return run_logged(
        "worklist snapshot",
        lambda: settings_for(config_path),
        lambda settings: _snapshot(settings, day),
    )


def _snapshot(settings: Settings, day: dt.date | None) -> Any:
    """The body of :func:`worklist_snapshot`, once its settings are loaded."""
    from tasks.worklist import snapshot_worklist

    logger = get_run_logger()
    if not settings.worklist.enabled:
        logger.info("worklist.enabled is false: no snapshot (pause this deployment's schedule)")
        return {"skipped": "worklist.enabled is false"}
    day = day or _scheduled_day()
    if not settings.business_days(day, day):
        logger.info("%s is not a business day: no snapshot", day)
        return {"skipped": f"{day} is not a business day"}
    return snapshot_worklist(day, settings)
