"""Prefect task: one day of PACS metadata into the series store (wraps :mod:`pyschedvisu.retrieval`).

Cached on the day + the retrieval fingerprint, but only once the store holds the day as
*final*: a day too recent to be final (data may still arrive) is fetched again on every run.
The store check also works without Prefect's cache, so a second run never talks to the PACS.
Concurrency towards the PACS: tag ``pacs`` (a Prefect tag concurrency limit, if set) plus the
client's own limits (``pacs.max_concurrent`` associations, ``pacs.max_ops_per_s``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import get_run_logger, task
from prefect.tasks import exponential_backoff

from pyschedvisu.config import Settings
from pyschedvisu.retrieval import retrieval_fingerprint, shared_client
from pyschedvisu.retrieval import retrieve_day as _retrieve_day
from pyschedvisu.store import SeriesStore
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    ConfigError,
    PseudonymKeyError,
    StoreError,
)

#: Failures no retry can fix: the operator must act (key, AE registration, config).
NOT_RETRIED = (PseudonymKeyError, AssociationRejectedError, ConfigError)


def cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Key = day + fingerprint + manifest time, only for days stored as final (else no cache)."""
    if parameters.get("force"):
        return None
    day: dt.date = parameters["day"]
    settings: Settings = parameters["settings"]
    fingerprint = retrieval_fingerprint(settings)
    try:
        manifest = SeriesStore(settings.paths.data_dir).manifest(day)
    except StoreError:
        return None
    if not manifest or manifest.get("fingerprint") != fingerprint or not manifest.get("final"):
        return None
    return f"retrieve-day-{day.isoformat()}-{fingerprint}-final-{manifest.get('written_at', '')}"


def _should_retry(task: Any, task_run: Any, state: Any) -> bool:
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # unreadable result: retrying is the safe side
            return True
    return not isinstance(exc, NOT_RETRIED)


@task(
    name="retrieve-day",
    task_run_name="retrieve-{day}",
    cache_key_fn=cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=_should_retry,
    tags=["pacs"],
)
def retrieve_day(day: dt.date, settings: Settings, force: bool = False) -> dict[str, Any]:
    """Retrieve ``day`` (or read it back from the store when final there); return its summary.

    Summary keys: day, studies, series, excluded, failed, seconds, method, final,
    reasons {code: count}, from_cache, dimse_ops.
    """
    logger = get_run_logger()
    result = _retrieve_day(day, settings, client=shared_client(settings), force=force)
    summary = result.summary()
    if summary["from_cache"]:
        logger.info("%s: already in the store (final), no PACS request", day)
    else:
        logger.info(
            "%s: %d studies, %d series kept, %d excluded, %d failed in %.1f s (%s, %d DIMSE ops)%s",
            day,
            summary["studies"],
            summary["series"],
            summary["excluded"],
            summary["failed"],
            summary["seconds"],
            summary["method"],
            summary["dimse_ops"],
            "" if summary["final"] else "; not final yet: fetched again next run",
        )
    return summary
