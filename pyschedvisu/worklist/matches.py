"""Planned against performed: every stored plan matched to the study table.

``update_matches`` reads the plans of every day with a worklist snapshot
(:class:`~pyschedvisu.worklist.store.WorklistStore`) and ``<data_dir>/studies.parquet``,
matches them (:func:`pyschedvisu_core.planmatch.match_plan`) and writes, atomically::

    <data_dir>/plan_matches.parquet   planmatch.PLAN_MATCH_SCHEMA: one row per step / unplanned study
    <data_dir>/plan_days.parquet      planmatch.COVERAGE_SCHEMA: which machine had a plan which day

Cheap enough to redo in full every run (ten years of plans: well under a second, see
docs/benchmarks.md); the report reads both files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu.store import atomic_write_parquet, conform
from pyschedvisu.worklist.store import WorklistStore
from pyschedvisu_core import schema
from pyschedvisu_core.errors import StoreError
from pyschedvisu_core.planmatch import COVERAGE_SCHEMA, PLAN_MATCH_SCHEMA, STATUSES, match_plan

log = logging.getLogger("pyschedvisu.worklist")

MATCHES_FILE = "plan_matches.parquet"
PLAN_DAYS_FILE = "plan_days.parquet"
STUDIES_FILE = "studies.parquet"


@dataclass
class MatchResult:
    """What one matching run wrote (counts only)."""

    path: Path
    days_path: Path
    plan_days: int
    per_status: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def labels_of(settings: Settings) -> dict[str, dict[str, list[str]]]:
    """The description patterns, as plain values (labels of no-shows)."""
    return {k: {lk: list(lv) for lk, lv in v.items()} for k, v in settings.descriptions.items()}


def update_matches(settings: Settings) -> MatchResult:
    """Match every stored plan to the study table; write both files (see the module)."""
    t0 = time.perf_counter()
    data_dir = Path(settings.paths.data_dir)
    plans = WorklistStore(data_dir, settings.site).plans()
    studies_path = data_dir / STUDIES_FILE
    try:
        studies = (
            conform(pl.read_parquet(studies_path), schema.STUDY_SCHEMA)
            if studies_path.exists()
            else schema.empty(schema.STUDY_SCHEMA)
        )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StoreError(f"{studies_path}: cannot read the study table ({exc})") from exc
    matches = match_plan(
        plans.steps,
        studies,
        plans.coverage,
        window_s=settings.worklist.match_window_minutes * 60,
        labels=labels_of(settings),
    )
    path, days_path = data_dir / MATCHES_FILE, data_dir / PLAN_DAYS_FILE
    atomic_write_parquet(path, schema.with_site(matches, settings.site))
    atomic_write_parquet(days_path, schema.with_site(plans.coverage, settings.site))
    counts = dict(matches.group_by("status").len().iter_rows())
    result = MatchResult(
        path,
        days_path,
        len(plans.days),
        {s: int(counts.get(s, 0)) for s in STATUSES},
        time.perf_counter() - t0,
    )
    log.info(
        "planned against performed: %d day(s) with a plan; %s in %.2f s -> %s",
        result.plan_days,
        ", ".join(f"{v} {k}" for k, v in result.per_status.items()),
        result.seconds,
        path,
    )
    return result


def load_matches(data_dir: str | Path) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """(plan matches, plan days) as written by :func:`update_matches`; None before any."""
    path, days_path = Path(data_dir) / MATCHES_FILE, Path(data_dir) / PLAN_DAYS_FILE
    if not path.exists() or not days_path.exists():
        return None
    try:
        matches = conform(pl.read_parquet(path), PLAN_MATCH_SCHEMA)
        days = conform(pl.read_parquet(days_path), COVERAGE_SCHEMA)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StoreError(f"{path}: cannot read the plan matches ({exc})") from exc
    return matches, days
