"""Prefect task: bring the study table up to date (thin wrapper over :mod:`pyschedvisu.extraction`)."""

from __future__ import annotations

import datetime as dt

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pyschedvisu.config import Settings
from pyschedvisu.extraction import dropped_studies, extract
from pyschedvisu_core.dropped import Dropped


# No cache: extraction is itself incremental (its state file says what is already done), and
# one data dir is never extracted twice at once (tag "extract" + a file lock in the shell).
@task(
    name="extract-studies",
    retries=1,
    retry_delay_seconds=5,
    tags=["extract"],
    cache_policy=NO_CACHE,
)
def extract_studies(settings: Settings, days: list[dt.date] | None = None) -> str:
    """Recompute the studies of the changed ``days`` (all stored days when None); return the path."""
    logger = get_run_logger()
    result = extract(settings, days)
    if result.written:
        logger.info(
            "%d day(s) recomputed, %d removed: %d studies (%d mixed cases) in %.2f s",
            len(result.days_recomputed),
            len(result.days_removed),
            result.n_studies,
            result.n_mixed,
            result.seconds,
        )
    else:
        logger.info(
            "nothing new: %d studies over %d days unchanged", result.n_studies, result.days_total
        )
    for machine, count in result.per_machine.items():
        logger.info("  %s: %d studies", machine, count)
    return str(result.path)


@task(name="dropped-studies", cache_policy=NO_CACHE)
def summarise_dropped(settings: Settings, days: list[dt.date] | None = None) -> Dropped:
    """What the rules left out over ``days`` and why (logged as warnings, one line a kind)."""
    logger = get_run_logger()
    dropped = dropped_studies(settings, days)
    for line in dropped.lines():
        logger.warning(line)
    return dropped
