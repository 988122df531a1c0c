"""The worklist store: every snapshot of a day, and the plan folded from them.

Layout, for a day D of year Y::

    <data_dir>/worklist/Y/D/snapshot-<YYYYmmddTHHMMSSffffff>.parquet   one per snapshot
    <data_dir>/worklist/Y/D.planned.parquet                            the day's plan

A snapshot file holds the entries seen (``worklist.SNAPSHOT_SCHEMA``: patient keys, never
patient ids) and, in its Parquet metadata, when it was taken and which machines it asked
for. The plan (``worklist.PLANNED_SCHEMA``) is folded again from every snapshot of the day
after each new one, under the day's lock; its metadata says which machines had a plan and
from how many snapshots. Every file is written to a temporary name and renamed
(:mod:`pyschedvisu.store`). A day without a plan file had no snapshot: "no plan".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu.store import atomic_write_parquet, file_lock
from pyschedvisu_core import schema
from pyschedvisu_core.errors import StoreError
from pyschedvisu_core.planmatch import COVERAGE_SCHEMA
from pyschedvisu_core.worklist import PLANNED_SCHEMA, SNAPSHOT_SCHEMA, fold_snapshots

log = logging.getLogger("pyschedvisu.worklist")

#: Parquet metadata key of a snapshot's and a plan's facts (JSON).
META_KEY = "pyschedvisu.worklist"
PLANNED_SUFFIX = ".planned.parquet"


@dataclass(frozen=True)
class DayPlan:
    """A day's plan as stored: its steps, the machines it covers, its snapshots."""

    day: dt.date
    steps: pl.DataFrame
    machines: tuple[str, ...]
    snapshots: int
    first: dt.datetime | None = None
    last: dt.datetime | None = None


@dataclass
class Plans:
    """Every stored plan in a range: the steps and which machine had a plan on which day."""

    steps: pl.DataFrame
    coverage: pl.DataFrame  # COVERAGE_SCHEMA
    days: list[dt.date] = field(default_factory=list)


def _meta(path: Path) -> dict[str, Any]:
    try:
        raw = pl.read_parquet_metadata(path).get(META_KEY, "{}")
        data = json.loads(raw)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise StoreError(f"{path}: unreadable worklist file ({exc}); delete it") from exc
    return data if isinstance(data, dict) else {}


class WorklistStore:
    """Snapshots and plans under ``<data_dir>/worklist``."""

    def __init__(self, data_dir: str | Path, site: str = schema.DEFAULT_SITE) -> None:
        self.root = Path(data_dir) / "worklist"
        self.site = site  # the ``site`` column of every file written here

    # -- paths ---------------------------------------------------------------------------
    def day_dir(self, day: dt.date) -> Path:
        return self.root / f"{day.year:04d}" / day.isoformat()

    def snapshot_path(self, day: dt.date, taken_at: dt.datetime) -> Path:
        return self.day_dir(day) / f"snapshot-{taken_at:%Y%m%dT%H%M%S%f}.parquet"

    def planned_path(self, day: dt.date) -> Path:
        return self.root / f"{day.year:04d}" / f"{day.isoformat()}{PLANNED_SUFFIX}"

    # -- writing -------------------------------------------------------------------------
    def add_snapshot(
        self,
        day: dt.date,
        rows: pl.DataFrame,
        taken_at: dt.datetime,
        machines: list[str],
        counts: dict[str, int],
    ) -> DayPlan:
        """Keep one snapshot of ``day`` (``SNAPSHOT_SCHEMA`` rows), then fold the day again."""
        meta = {
            "day": day.isoformat(),
            "taken_at": taken_at.isoformat(),
            "machines": machines,
            "counts": counts,
        }
        with file_lock(self.day_dir(day) / ".lock"):
            atomic_write_parquet(
                self.snapshot_path(day, taken_at),
                schema.with_site(rows.select(list(SNAPSHOT_SCHEMA)), self.site),
                {META_KEY: json.dumps(meta)},
            )
            return self._fold(day)

    def refold(self, day: dt.date) -> DayPlan | None:
        """Fold ``day``'s snapshots again (None when it has none)."""
        if not self.snapshot_files(day):
            return None
        with file_lock(self.day_dir(day) / ".lock"):
            return self._fold(day)

    def snapshot_files(self, day: dt.date) -> list[Path]:
        folder = self.day_dir(day)
        return sorted(folder.glob("snapshot-*.parquet")) if folder.is_dir() else []

    def _fold(self, day: dt.date) -> DayPlan:
        files = self.snapshot_files(day)
        metas = [_meta(p) for p in files]
        taken = [dt.datetime.fromisoformat(str(m["taken_at"])) for m in metas if "taken_at" in m]
        machines = sorted({str(x) for m in metas for x in m.get("machines", [])})
        try:
            rows = (
                pl.scan_parquet(
                    files, schema=SNAPSHOT_SCHEMA, missing_columns="insert", extra_columns="ignore"
                )
                .collect()
                .select(list(SNAPSHOT_SCHEMA))
            )
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise StoreError(f"{self.day_dir(day)}: unreadable snapshots ({exc})") from exc
        steps = fold_snapshots(day, rows, taken)
        first, last = (min(taken), max(taken)) if taken else (None, None)
        meta = {
            "day": day.isoformat(),
            "machines": machines,
            "snapshots": len(files),
            "first": first.isoformat() if first else None,
            "last": last.isoformat() if last else None,
        }
        atomic_write_parquet(
            self.planned_path(day), schema.with_site(steps, self.site), {META_KEY: json.dumps(meta)}
        )
        return DayPlan(day, steps, tuple(machines), len(files), first, last)

    # -- reading -------------------------------------------------------------------------
    def planned_days(
        self, start: dt.date | None = None, end: dt.date | None = None
    ) -> list[dt.date]:
        """Days with a plan (at least one snapshot), sorted."""
        out = []
        for path in self.root.glob(f"*/*{PLANNED_SUFFIX}"):
            try:
                day = dt.date.fromisoformat(path.name.removesuffix(PLANNED_SUFFIX))
            except ValueError:
                continue
            if (start is None or day >= start) and (end is None or day <= end):
                out.append(day)
        return sorted(out)

    def plan(self, day: dt.date) -> DayPlan | None:
        """The stored plan of ``day``; None when it has none."""
        path = self.planned_path(day)
        if not path.exists():
            return None
        meta = _meta(path)
        try:
            steps = pl.read_parquet(path).select(list(PLANNED_SCHEMA))
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise StoreError(f"{path}: unreadable plan ({exc}); delete it to fold again") from exc
        first, last = meta.get("first"), meta.get("last")
        return DayPlan(
            day,
            steps,
            tuple(str(m) for m in meta.get("machines", [])),
            int(meta.get("snapshots", 0)),
            dt.datetime.fromisoformat(first) if first else None,
            dt.datetime.fromisoformat(last) if last else None,
        )

    def plans(self, start: dt.date | None = None, end: dt.date | None = None) -> Plans:
        """Every stored plan from ``start`` to ``end`` (all when None), in one frame."""
        days = self.planned_days(start, end)
        paths = [self.planned_path(d) for d in days]
        cover: list[dict[str, Any]] = []
        for day, path in zip(days, paths, strict=True):
            cover += [{"date": day, "machine": m} for m in _meta(path).get("machines", [])]
        try:
            steps = (
                pl.scan_parquet(
                    paths, schema=PLANNED_SCHEMA, missing_columns="insert", extra_columns="ignore"
                )
                .collect()
                .select(list(PLANNED_SCHEMA))
                if paths
                else pl.DataFrame(schema=PLANNED_SCHEMA)
            )
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise StoreError(f"{self.root}: unreadable plans ({exc})") from exc
        return Plans(steps, pl.DataFrame(cover, schema=COVERAGE_SCHEMA), days)
