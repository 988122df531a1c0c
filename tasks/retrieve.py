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

from prefect import get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.tasks import exponential_backoff

from pyschedvisu import progress
from pyschedvisu.config import Settings
from pyschedvisu.progress import DayProgress
from pyschedvisu.retrieval import retrieval_fingerprint, shared_client, stored_summary
from pyschedvisu.retrieval import retrieve_day as _retrieve_day
from pyschedvisu.store import SeriesStore, clean_stale_tmp
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    ConfigError,
    PseudonymKeyError,
    StoreError,
)
from pyschedvisu_core.runs import DayOutcome

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
        manifest = SeriesStore(settings.paths.data_dir).final_manifest(day, fingerprint)
    except StoreError:
        return None
    if manifest is None:
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


@task(name="stored-days", cache_policy=NO_CACHE)
def stored_days(settings: Settings, days: list[dt.date]) -> dict[dt.date, dict[str, Any]]:
    """Summaries of the ``days`` already *final* in the store with today's retrieval rules.

    The same test ``retrieve_day`` starts with, done once for all days: a weekly run over
    years of history then starts a task only for the days that need the PACS (a task run
    costs ~40 ms of orchestration even when it only reads the store).
    """
    store = SeriesStore(settings.paths.data_dir)
    fingerprint = retrieval_fingerprint(settings)
    out: dict[dt.date, dict[str, Any]] = {}
    for day in days:
        try:
            manifest = store.final_manifest(day, fingerprint)
        except StoreError:
            continue  # unreadable: retrieve_day will fetch it again
        if manifest is not None:
            out[day] = stored_summary(day, manifest)
    return out


def _outcome(day: dt.date, future: PrefectFuture[Any]) -> DayOutcome:
    future.wait()
    state = future.state
    if state.is_completed():
        return DayOutcome(day, True, dict(state.result()))
    err = state.result(raise_on_failure=False)
    message = (
        f"{type(err).__name__}: {err}"
        if isinstance(err, BaseException)
        else (state.message or state.name or "")
    )
    return DayOutcome(day, False, error=message)


def retrieve_days(settings: Settings, days: list[dt.date], force: bool = False) -> list[DayOutcome]:
    """Map :func:`retrieve_day` over the ``days`` not final in the store (inside a flow).

    A failing day is recorded in its outcome, never raised: the others go on. Temporary
    files an interrupted run left in the data dir are removed first. Each task run logs its
    day; the flow logs a progress line every few days (done / total, failures so far, time
    left), and a CLI command running the flow here shows one bar instead.
    """
    stale = clean_stale_tmp(settings.paths.data_dir)
    if stale:
        get_run_logger().info(
            "removed %d temporary file(s) an interrupted run left in %s",
            len(stale),
            settings.paths.data_dir,
        )
    stored = {} if force else stored_days(settings, days)
    todo = [d for d in days if d not in stored]
    fetched: dict[dt.date, DayOutcome] = {}
    bar = DayProgress(
        len(days),
        label="retrieval",
        log=progress.log_to(get_run_logger()),
        every=progress.default_every(len(days)),
    )
    with bar:
        bar.skip(len(stored))
        futures = (
            retrieve_day.map(todo, settings=unmapped(settings), force=unmapped(force))
            if todo
            else []
        )
        day_of = {fut: day for day, fut in zip(todo, futures, strict=True)}
        for fut in as_completed(list(futures)):
            outcome = _outcome(day_of[fut], fut)
            fetched[outcome.day] = outcome
            bar.advance(ok=outcome.ok)
    return [fetched[d] if d in fetched else DayOutcome(d, True, stored[d]) for d in days]
