"""Incremental extraction: the series store -> ``<data_dir>/studies.parquet``.

A day's studies depend only on that day's series, so only the days whose series changed since
the last run are recomputed; the stored rows of the other days are reused. What was used is
kept in ``<data_dir>/studies.state.json``::

    {"version": 1,
     "config": "<fingerprint of extract, machines, descriptions, draw + rules version>",
     "days": {"2024-03-04": {"written_at": "...", "fingerprint": "...", "counts": {...},
                             "token": "<store.day_token: which write of the day>",
                             "file": [mtime_ns, size]}, ...}}

A different config fingerprint, a missing table or ``force`` recomputes every day in scope. A
run with nothing new writes nothing. Files: ``studies.parquet`` (``schema.STUDY_SCHEMA``,
reportable machines only, see ``pyschedvisu_core.studies`` for the columns) and
``studies_mixed.parquet`` (the ``mixed cases`` studies, plus their ``models``, ``stations``,
``serials``), both written atomically with a last column ``site`` (the settings' site), then
the state file. A lock file serialises concurrent runs on one data dir.

Series are read through the store's yearly packs (see ``pyschedvisu.store``); the days that
had to be read from their day files are packed meanwhile (a background thread, overlapping the
study computation), so that any later rebuild reads ten files instead of thousands.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu.config import Settings, plain_machines
from pyschedvisu.store import (
    SeriesStore,
    atomic_write_bytes,
    atomic_write_parquet,
    day_token,
    file_lock,
    read_manifest,
)
from pyschedvisu_core import schema
from pyschedvisu_core.dropped import Dropped, from_manifests, from_tables
from pyschedvisu_core.errors import DayUnreadableError, ExtractionError, StoreError
from pyschedvisu_core.studies import RULES_VERSION, build_studies, split_mixed

log = logging.getLogger("pyschedvisu.extraction")

STUDIES_FILE = "studies.parquet"
MIXED_FILE = "studies_mixed.parquet"
STATE_FILE = "studies.state.json"
LOCK_FILE = ".studies.lock"
STATE_VERSION = 1
MIXED_SCHEMA: dict[str, pl.DataType] = {
    **schema.STUDY_SCHEMA,
    "models": pl.String(),
    "stations": pl.String(),
    "serials": pl.String(),
}


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
        "machines": plain_machines(settings.machines),
        "labels": {
            k: {lk: list(lv) for lk, lv in v.items()} for k, v in settings.descriptions.items()
        },
        "prep_minutes": {k: v.prep_minutes for k, v in settings.draw.machine.items()},
        "retake_split_s": settings.extract.retake_split_s,
        "overlap_tolerance_s": settings.takes.overlap_tolerance_s,
    }


def config_fingerprint(settings: Settings) -> str:
    """Everything the study table depends on besides the series (and its site, when it is not
    the one-department ``default``: a store that becomes a site's is rewritten with its name)."""
    sections = ("extract", "takes", "machines", "descriptions", "draw")
    site = "" if settings.site == schema.DEFAULT_SITE else f"-{settings.site}"
    return f"{settings.fingerprint(*sections)}-r{RULES_VERSION}{site}"


STAMP_KEYS = ("written_at", "fingerprint", "counts")


def _day_stamp(manifest: dict[str, Any], file_id: list[int]) -> dict[str, Any]:
    # token: which write of the day this is (tells same-second rewrites apart; selects packs)
    stamp = {k: manifest.get(k) for k in STAMP_KEYS}
    return {**stamp, "token": day_token(manifest), "file": file_id}


def _same_write(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(old.get(k) == new.get(k) for k in (*STAMP_KEYS, "token"))


def _file_id(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
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
    root = str(store.root)  # plain strings: pathlib costs more than the stat itself here
    for day in scope:
        iso = day.isoformat()
        file_id = _file_id(f"{root}/{day.year:04d}/{iso}.manifest.json")
        if file_id is None:
            continue
        old = known.get(iso)
        if old is not None and old.get("file") == file_id:
            stamps[day] = old
            continue
        man = _manifest(f"{root}/{day.year:04d}/{iso}.manifest.json")
        if man is None:
            continue
        stamps[day] = _day_stamp(man, file_id)
        if old is None or not _same_write(old, stamps[day]):
            changed.add(day)
    return stamps, changed


def _manifest(path: str) -> dict[str, Any] | None:
    """``SeriesStore.manifest`` on a plain path (no Path objects: thousands of days)."""
    man = read_manifest(path)
    return man if isinstance(man, dict) else None


def _tokens(
    store: SeriesStore, days: list[dt.date], stamps: dict[dt.date, dict[str, Any]]
) -> dict[dt.date, str]:
    """The write token of each day (stamps from before tokens: read from the manifest)."""
    out = {}
    for day in days:
        token = stamps[day].get("token")
        if not isinstance(token, str):
            man = store.manifest(day)
            token = day_token(man) if man is not None else ""
        out[day] = token
    return out


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


def _read_series(
    store: SeriesStore, tokens: dict[dt.date, str], pool: ThreadPoolExecutor
) -> tuple[pl.DataFrame, Future[list[int]] | None]:
    """The stored series of the days of ``tokens``, and the packing of the days not in a pack
    yet, started on ``pool`` (it overlaps the study computation; wait for it before leaving).

    Reading thousands of day files costs more than the whole extraction: packing them once
    makes every later rebuild (new config, rules, lost table) read ten yearly files instead.
    """
    series, unpacked = store.read_series(tokens)
    if not unpacked:
        return series, None
    return series, pool.submit(store.write_packs, series, {d: tokens[d] for d in unpacked})


def _packed(store: SeriesStore, packing: Future[list[int]] | None) -> None:
    if packing is None:
        return
    try:
        packing.result()
    except (OSError, pl.exceptions.PolarsError) as exc:  # packs only speed reads up
        log.warning("%s: could not write series packs (%s)", store.root, exc)


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
    with file_lock(data_dir / LOCK_FILE):  # a second run waits instead of interleaving writes
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
        try:
            manifests, differing = _day_states(store, scope, known)
        except DayUnreadableError as exc:
            raise _set_aside(store, exc) from exc
        changed = sorted(manifests if (rebuild or force) else differing)
        removed = sorted(d for d in scope if d not in manifests and d.isoformat() in known)
        if not changed and not removed and not rebuild:
            result = _unchanged(path, mixed_path, known)
            result.seconds = time.perf_counter() - t0
            log.info(
                "extract: nothing new (%d days, %d studies)", result.days_total, result.n_studies
            )
            return result

        with ThreadPoolExecutor(1, thread_name_prefix="pack") as pool:
            try:
                series, packing = _read_series(store, _tokens(store, changed, manifests), pool)
            except DayUnreadableError as exc:
                raise _set_aside(store, exc) from exc
            try:
                studies = build_studies(series, **core_arguments(settings)).collect()
            except (OSError, pl.exceptions.PolarsError) as exc:
                raise ExtractionError(f"series -> studies failed: {exc}") from exc
            finally:
                _packed(store, packing)
        reportable, mixed = (f.collect() for f in split_mixed(studies))
        drop = set(changed) | set(removed)
        kept = None if rebuild else _read_table(path, schema.STUDY_SCHEMA, drop)
        kept_mixed = None if rebuild else _read_table(mixed_path, MIXED_SCHEMA, drop)
        order = ["date", "machine", "start", "study_key"]
        table = pl.concat([f for f in (kept, reportable) if f is not None]).sort(order)
        mixed_table = pl.concat(
            [f for f in (kept_mixed, mixed.select(list(MIXED_SCHEMA))) if f is not None]
        ).sort(order)
        # on disk, every row says its site (readers that do not ask for it never see it)
        atomic_write_parquet(path, schema.with_site(table, settings.site))
        atomic_write_parquet(mixed_path, schema.with_site(mixed_table, settings.site))
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
        # No indent: json's C encoder only runs without it (ten years of days: 0.1 s vs 0.01 s).
        atomic_write_bytes(state_path, json.dumps(new_state, sort_keys=True).encode())
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


def _set_aside(store: SeriesStore, exc: DayUnreadableError) -> StoreError:
    """The error of a stored day that cannot be read, once that day is moved aside.

    Moved aside, the day is no longer stored: the next retrieval (the next run of a flow, or
    ``pyschedvisu retrieve``) fetches it again, without ``--force``.
    """
    if exc.day is None:
        return exc
    moved = store.quarantine(exc.day)
    where = f"moved aside to {moved}" if moved is not None else "already moved aside"
    log.warning("%s: stored day unreadable (%s); %s", exc.day, exc, where)
    return StoreError(
        f"{exc}; the day is {where}: `pyschedvisu retrieve --start {exc.day}` (or the next "
        "run) fetches it again, then extract again"
    )


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


def _columns(path: Path, wanted: list[str], days: list[dt.date] | None) -> pl.DataFrame:
    """``wanted`` columns of a study table (null where an older table lacks one)."""
    if not path.exists():
        return pl.DataFrame(schema={c: MIXED_SCHEMA[c] for c in wanted})
    try:
        lazy = pl.scan_parquet(path)
        present = lazy.collect_schema().names()
        if days is not None:
            lazy = lazy.filter(pl.col("date").is_in(days))
        return lazy.select(
            pl.col(c) if c in present else pl.lit(None, dtype=MIXED_SCHEMA[c]).alias(c)
            for c in wanted
        ).collect()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StoreError(f"{path}: unreadable study table ({exc}); delete it to recompute") from exc


def dropped_studies(settings: Settings, days: Iterable[dt.date] | None = None) -> Dropped:
    """What the rules left out over ``days`` (every stored day when None), with the values
    that did not match: institutions (from the day manifests of the store), days with no
    study kept, mixed-case scanner combinations and OTHER descriptions (from the tables)."""
    data_dir = Path(settings.paths.data_dir)
    store = SeriesStore(data_dir)
    scope = sorted(set(days)) if days is not None else None
    retrieval = from_manifests(store.manifests(scope))
    studies = _columns(
        data_dir / STUDIES_FILE, ["date", "machine", "description", "study_descriptions"], scope
    )
    mixed = _columns(data_dir / MIXED_FILE, ["date", "models", "stations", "serials"], scope)
    return retrieval.merge(from_tables(studies, mixed, scope))


__all__ = ["ExtractResult", "config_fingerprint", "core_arguments", "dropped_studies", "extract"]
