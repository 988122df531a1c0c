"""Incremental extraction: the series store -> ``<data_dir>/studies.parquet``.

A day's studies depend only on that day's series, so only the days whose series changed since
the last run are recomputed; the stored rows of the other days are reused. What was used is
kept in ``<data_dir>/studies.state.json``::

    {"version": 1,
     "config": "<fingerprint of extract, machines, descriptions, draw + rules version>",
     "days": {"2024-03-04": {"written_at": "...", "fingerprint": "...", "counts": {...}}, ...}}

A different config fingerprint, a missing table or ``force`` recomputes every day in scope. A
run with nothing new writes nothing. Files: ``studies.parquet`` (``schema.STUDY_SCHEMA``,
reportable machines only, see ``pyschedvisu_core.studies`` for the columns) and
``studies_mixed.parquet`` (the ``mixed cases`` studies, plus their ``models``), both written
atomically, then the state file. A lock file serialises concurrent runs on one data dir.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu.store import SeriesStore, atomic_write_bytes, atomic_write_parquet
from pyschedvisu_core import schema
from pyschedvisu_core.errors import ExtractionError, StoreError
from pyschedvisu_core.studies import RULES_VERSION, build_studies, split_mixed

log = logging.getLogger("pyschedvisu.extraction")

STUDIES_FILE = "studies.parquet"
MIXED_FILE = "studies_mixed.parquet"
STATE_FILE = "studies.state.json"
LOCK_FILE = ".studies.lock"
STATE_VERSION = 1
MIXED_SCHEMA: dict[str, pl.DataType] = {**schema.STUDY_SCHEMA, "models": pl.String()}


@dataclass
class ExtractResult:
    """What one extraction run did."""

    path: Path
    mixed_path: Path
    written: bool  # False: nothing new, files untouched
    full: bool  # the whole table was rebuilt (new config or rules, or a missing table)
    days_total: int  # days in the table after the run
    days_recomputed: list[dt.date] = field(default_factory=list)
    days_removed: list[dt.date] = field(default_factory=list)
    n_studies: int = 0
    n_mixed: int = 0
    per_machine: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def core_arguments(settings: Settings) -> dict[str, Any]:
    """The plain config values the core needs (never the Settings object itself)."""
    return {
        "machines": {k: list(v) for k, v in settings.machines.items()},
        "labels": {
            k: {lk: list(lv) for lk, lv in v.items()} for k, v in settings.descriptions.items()
        },
        "prep_minutes": {k: v.prep_minutes for k, v in settings.draw.machine.items()},
        "retake_split_s": settings.extract.retake_split_s,
    }


def config_fingerprint(settings: Settings) -> str:
    """Everything the study table depends on besides the series."""
    return f"{settings.fingerprint('extract', 'machines', 'descriptions', 'draw')}-r{RULES_VERSION}"


STAMP_KEYS = ("written_at", "fingerprint", "counts")


def _day_stamp(manifest: dict[str, Any], file_id: list[int]) -> dict[str, Any]:
    return {**{k: manifest.get(k) for k in STAMP_KEYS}, "file": file_id}


def _file_id(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_mtime_ns, st.st_size]


def _day_states(
    store: SeriesStore, scope: set[dt.date], known: dict[str, Any]
) -> tuple[dict[dt.date, dict[str, Any]], set[dt.date]]:
    """(stamp of every stored day in scope, days whose stamp differs from ``known``).

    A manifest whose file (mtime, size) is unchanged is not even parsed: a no-op run over ten
    years only stats files. Otherwise its written_at / fingerprint / counts decide.
    """
    stamps: dict[dt.date, dict[str, Any]] = {}
    changed: set[dt.date] = set()
    for day in scope:
        file_id = _file_id(store.path(day, "manifest"))
        if file_id is None:
            continue
        old = known.get(day.isoformat())
        if old is not None and old.get("file") == file_id:
            stamps[day] = old
            continue
        man = store.manifest(day)
        if man is None:
            continue
        stamps[day] = _day_stamp(man, file_id)
        if old is None or {k: old.get(k) for k in STAMP_KEYS} != {
            k: man.get(k) for k in STAMP_KEYS
        }:
            changed.add(day)
    return stamps, changed


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_FILE).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # a second run waits instead of interleaving writes
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("%s: unreadable extraction state, recomputing every day", path)
        return {}
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else {}


def _read_table(
    path: Path, target: dict[str, pl.DataType], drop: set[dt.date]
) -> pl.DataFrame | None:
    if not path.exists():
        return None
    try:
        frame = pl.scan_parquet(path).filter(~pl.col("date").is_in(sorted(drop))).collect()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StoreError(f"{path}: unreadable study table ({exc}); delete it to recompute") from exc
    return frame.select([pl.col(c).cast(t) for c, t in target.items()])


def _scan_series(store: SeriesStore, days: list[dt.date]) -> pl.LazyFrame:
    """The stored series of ``days``, lazily: the core reads only the columns it needs."""
    paths = [p for p in (store.path(d, "series") for d in days) if p.exists()]
    if not paths:
        return schema.empty(schema.SERIES_SCHEMA).lazy()
    return pl.scan_parquet(paths).select(
        [pl.col(c).cast(t) for c, t in schema.SERIES_SCHEMA.items()]
    )


def _per_machine(frame: pl.DataFrame) -> dict[str, int]:
    counts = frame.group_by("machine").len().sort("machine")
    return dict(zip(counts["machine"].to_list(), counts["len"].to_list(), strict=True))


def extract(
    settings: Settings, days: Iterable[dt.date] | None = None, force: bool = False
) -> ExtractResult:
    """Bring ``<data_dir>/studies.parquet`` up to date with the series store.

    ``days``: the days to consider (default: every stored day; the table then holds exactly the
    stored days). Days outside ``days`` keep their rows. ``force`` recomputes the days in scope.
    """
    t0 = time.perf_counter()
    data_dir = Path(settings.paths.data_dir)
    path, mixed_path, state_path = (
        data_dir / STUDIES_FILE,
        data_dir / MIXED_FILE,
        data_dir / STATE_FILE,
    )
    with _locked(data_dir):
        store = SeriesStore(data_dir)
        state = _read_state(state_path)
        cfg = config_fingerprint(settings)
        known: dict[str, Any] = dict(state.get("days", {})) if state.get("config") == cfg else {}
        tables_ok = path.exists() and mixed_path.exists() and state.get("config") == cfg
        rebuild = not tables_ok  # new config or a lost table: every stored day, not just `days`
        if days is None or rebuild:
            scope = set(store.days()) | {dt.date.fromisoformat(d) for d in known}
            scope |= set(days or ())
        else:
            scope = set(days)
        manifests, differing = _day_states(store, scope, known)
        changed = sorted(manifests if (rebuild or force) else differing)
        removed = sorted(d for d in scope if d not in manifests and d.isoformat() in known)
        if not changed and not removed and not rebuild:
            result = _unchanged(path, mixed_path, known)
            result.seconds = time.perf_counter() - t0
            log.info(
                "extract: nothing new (%d days, %d studies)", result.days_total, result.n_studies
            )
            return result

        try:
            studies = build_studies(
                _scan_series(store, changed), **core_arguments(settings)
            ).collect()
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise ExtractionError(f"series -> studies failed: {exc}") from exc
        reportable, mixed = (f.collect() for f in split_mixed(studies))
        drop = set(changed) | set(removed)
        kept = None if rebuild else _read_table(path, schema.STUDY_SCHEMA, drop)
        kept_mixed = None if rebuild else _read_table(mixed_path, MIXED_SCHEMA, drop)
        order = ["date", "machine", "start", "study_key"]
        table = pl.concat([f for f in (kept, reportable) if f is not None]).sort(order)
        mixed_table = pl.concat(
            [f for f in (kept_mixed, mixed.select(list(MIXED_SCHEMA))) if f is not None]
        ).sort(order)
        atomic_write_parquet(path, table)
        atomic_write_parquet(mixed_path, mixed_table)
        new_days = (
            {}
            if rebuild
            else {d: v for d, v in known.items() if dt.date.fromisoformat(d) not in drop}
        )
        new_days.update({d.isoformat(): manifests[d] for d in changed})
        new_state = {
            "version": STATE_VERSION,
            "config": cfg,
            "days": dict(sorted(new_days.items())),
        }
        atomic_write_bytes(state_path, json.dumps(new_state, indent=1, sort_keys=True).encode())
    result = ExtractResult(
        path=path,
        mixed_path=mixed_path,
        written=True,
        full=rebuild,
        days_total=len(new_days),
        days_recomputed=changed,
        days_removed=removed,
        n_studies=table.height,
        n_mixed=mixed_table.height,
        per_machine=_per_machine(table),
        seconds=time.perf_counter() - t0,
    )
    log.info(
        "extract: %d day(s) recomputed, %d removed, %d studies (+%d mixed) in %.2f s -> %s",
        len(changed),
        len(removed),
        result.n_studies,
        result.n_mixed,
        result.seconds,
        path,
    )
    return result


def _unchanged(path: Path, mixed_path: Path, known: dict[str, Any]) -> ExtractResult:
    table = _read_table(path, {"machine": pl.String()}, set()) if path.exists() else None
    n_mixed = (
        pl.scan_parquet(mixed_path).select(pl.len()).collect().item() if mixed_path.exists() else 0
    )
    frame = table if table is not None else pl.DataFrame(schema={"machine": pl.String()})
    return ExtractResult(
        path=path,
        mixed_path=mixed_path,
        written=False,
        full=False,
        days_total=len(known),
        n_studies=frame.height,
        n_mixed=int(n_mixed),
        per_machine=_per_machine(frame),
    )


__all__ = ["ExtractResult", "config_fingerprint", "core_arguments", "extract"]
