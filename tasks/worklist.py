"""Prefect tasks of the Modality Worklist (thin wrappers over :mod:`pyschedvisu.worklist`).

``snapshot_worklist`` takes one snapshot of a day; a worklist that does not answer fails it
(:class:`WorklistError`), retried twice with a growing delay, then the run shows Failed:
visible in the dashboard, retried by the next run 30 minutes later anyway. Nothing else
depends on it: the weekly report reads what the snapshots kept. ``match_plan`` matches every
stored plan to the study table (local files only).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from pyschedvisu.config import Settings
from pyschedvisu.worklist.matches import update_matches
from pyschedvisu.worklist.snapshot import take_snapshot
from tasks.retrieve import _should_retry

#: Retries of a snapshot before its run fails (the next one comes 30 minutes later).
SNAPSHOT_RETRIES = 2


@task(
    name="worklist-snapshot",
    task_run_name="worklist-{day}",
    retries=SNAPSHOT_RETRIES,
    retry_delay_seconds=exponential_backoff(backoff_factor=20),
    retry_jitter_factor=0.5,
    retry_condition_fn=_should_retry,
    tags=["worklist"],
    cache_policy=NO_CACHE,
)
def snapshot_worklist(day: dt.date, settings: Settings) -> dict[str, Any]:
    """Snapshot the worklist of ``day`` now, keep it, fold the day's plan; its summary."""
    summary = take_snapshot(day, settings).summary()
    per = ", ".join(f"{k} {v}" for k, v in summary["per_machine"].items())
    get_run_logger().info(
        "%s: %d step(s) in the worklist (%s); plan of the day: %d step(s) from %d snapshot(s)",
        day,
        summary["entries"],
        per,
        summary["planned_steps"],
        summary["snapshots_of_day"],
    )
    return summary


@task(name="match-plan", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def match_plan(settings: Settings) -> str:
    """Every stored plan against the study table; the path of ``plan_matches.parquet``."""
    result = update_matches(settings)
    get_run_logger().info(
        "%d day(s) with a plan: %s",
        result.plan_days,
        ", ".join(f"{v} {k}" for k, v in result.per_status.items()),
    )
    return str(result.path)


def plan_for_report(settings: Settings) -> str | None:
    """The plan matches of the weekly report (inside a flow): None without a worklist, or
    when matching failed, which the report survives (said in the log, never its failure)."""
    if not settings.worklist.enabled:
        return None
    state = match_plan(settings, return_state=True)
    if state.is_completed():
        return str(state.result())
    get_run_logger().warning(
        "planned against performed left out of this report: %s", state.message or state.name
    )
    return None
