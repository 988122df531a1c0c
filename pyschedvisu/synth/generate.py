"""Generate the synthetic department: DICOM files, truth and a summary, day by day.

Layout of ``out``::

    dicom/<YYYYMMDD>/<study_uid>/<series_uid>/<n>.dcm    the files a PACS serves
    truth/studies.parquet      TRUTH_STUDY_SCHEMA: what a perfect pipeline reports
    truth/uptake.parquet       TRUTH_UPTAKE_SCHEMA: the injection of each of those studies
    truth/series.parquet       TRUTH_SERIES_SCHEMA: every series written, kept/excluded/failed
    truth/excluded.parquet     EXCLUDED_SCHEMA: study- and series-level exclusions
    truth/kept_series.parquet  SERIES_SCHEMA with patient_id (raw) instead of patient_key
    truth/cases.parquet        where each special case is (date, study_uid, series_uid, case)
    truth/book.parquet         appointments.BOOK_SCHEMA: the RIS's appointment book (the worklist)
    truth/plan.parquet         planmatch.PLAN_MATCH_SCHEMA: planned against performed, as it must be
    truth/days/<YYYYMMDD>/     the same per day, plus day.json (written last = day complete)
    synth.json                 parameters and counts

A day depends only on (seed, day, config), so ranges can be extended: complete days with the
same seed, version and config are skipped unless ``force``. The combined truth files cover
every complete day under ``out``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, cast

import polars as pl

from pyschedvisu import reference as ref
from pyschedvisu.config import Settings, display_machine, plain_machines
from pyschedvisu.store import atomic_write_bytes, atomic_write_parquet
from pyschedvisu.synth.appointments import BOOK_SCHEMA, day_book
from pyschedvisu.synth.department import Department, relabel
from pyschedvisu.synth.plan import DayPlan, plan_day
from pyschedvisu.synth.truth import CASES_SCHEMA, KEPT_SERIES_SCHEMA, Rules, day_truth
from pyschedvisu.synth.writer import write_day
from pyschedvisu_core import schema
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.planmatch import PLAN_MATCH_SCHEMA

log = logging.getLogger("pyschedvisu.synth")

#: Bump when the generated content changes for a given seed and day.
#: 4: the appointment book and the worklist's plan
#: 5: the Radiopharmaceutical Information Sequence of PT / NM series, and its truth
VERSION = "5"

TRUTH_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "studies": schema.TRUTH_STUDY_SCHEMA,
    "uptake": schema.TRUTH_UPTAKE_SCHEMA,
    "series": schema.TRUTH_SERIES_SCHEMA,
    "excluded": schema.EXCLUDED_SCHEMA,
    "kept_series": KEPT_SERIES_SCHEMA,
    "cases": CASES_SCHEMA,
    "book": BOOK_SCHEMA,
    "plan": PLAN_MATCH_SCHEMA,
}
#: The truth files of the appointment book, drawn after the day (same files without it).
BOOK_KINDS = ("book", "plan")


@dataclass(frozen=True)
class SynthSummary:
    """Counts over the requested days (generated now or already there)."""

    days: int
    studies: int  # DICOM studies written
    series: int
    instances: int
    excluded: int  # series excluded on purpose (incl. those of excluded studies)
    failed: int  # series a perfect retrieval keeps apart as failed
    truth_studies: int = 0  # rows of truth/studies.parquet for these days
    generated_days: int = 0  # days written by this call (the rest were complete already)
    seconds: float = 0.0


@dataclass(frozen=True)
class Dept:
    """Plain config values a day depends on (picklable for the worker processes).

    ``machine_keys`` / ``slots``: which reference scanners are planned and how full;
    ``rules``: the config the truth is told by; ``department``: the names the files carry
    (None: the reference department's).
    """

    machine_keys: list[str]
    slots: dict[str, list[int]]
    rules: Rules
    department: Department | None = None

    @classmethod
    def from_settings(cls, settings: Settings, department: Department | None = None) -> Dept:
        if department is None:
            keys = settings.display_machines()
            slots = {k: list(v.slots_per_weekday) for k, v in settings.draw.machine.items()}
        else:
            # another department's config names other machines: its scanners are the
            # reference ones, planned as the reference department plans them
            keys = list(dict.fromkeys(minify_machine(display_machine(g)) for g in ref.MACHINES))
            slots = {
                k: list(cast(list[int], v["slots_per_weekday"]))
                for k, v in ref.MACHINE_DRAW.items()
            }
        return cls(
            machine_keys=keys,
            slots=slots,
            department=department,
            rules=Rules(
                machines=plain_machines(settings.machines),
                descriptions={
                    k: {lk: list(lv) for lk, lv in v.items()}
                    for k, v in settings.descriptions.items()
                },
                retake_split_s=settings.extract.retake_split_s,
                overlap_tolerance_s=settings.takes.overlap_tolerance_s,
            ),
        )

    def fingerprint(self) -> str:
        data = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(f"{VERSION}|{data}".encode()).hexdigest()[:16]


def _day_dir(out: Path, day: dt.date) -> Path:
    return out / "truth" / "days" / day.strftime("%Y%m%d")


def _marker(out: Path, day: dt.date) -> dict[str, Any] | None:
    try:
        return json.loads((_day_dir(out, day) / "day.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _complete(out: Path, day: dt.date, seed: int, fp: str) -> bool:
    man = _marker(out, day)
    return bool(
        man
        and man.get("seed") == seed
        and man.get("config") == fp
        and (out / "dicom" / day.strftime("%Y%m%d")).is_dir()
    )


def day_plan(day: dt.date, seed: int, dept: Dept) -> DayPlan:
    """The plan of one day under the department's names."""
    return relabel(plan_day(day, seed, dept.slots, dept.machine_keys), dept.department)


def truth_frames(
    days: list[dt.date],
    seed: int,
    settings: Settings,
    department: Department | None = None,
) -> dict[str, pl.DataFrame]:
    """The truth of ``days`` told by ``settings`` (no file written; the plan is re-made),
    without the appointment book.

    A day's files do not depend on the config, its truth does: e.g. the truth of another
    department under the config ``pyschedvisu discover`` drafted for it.
    """
    dept = Dept.from_settings(settings, department)
    per_day = [day_truth(day_plan(d, seed, dept), dept.rules) for d in days]
    # the appointment book is the reference department's RIS: not told by another config
    return {
        kind: pl.concat([f[kind] for f in per_day]) if per_day else schema.empty(target)
        for kind, target in TRUTH_SCHEMAS.items()
        if kind not in BOOK_KINDS
    }


def generate_day(
    out: Path, day: dt.date, seed: int, dept: Dept, index: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Plan, write and record one day; returns its marker (with counts). ``index``: gets the
    demo PACS's index row of every file written (see ``writer.write_day``)."""
    name = day.strftime("%Y%m%d")
    (_day_dir(out, day) / "day.json").unlink(missing_ok=True)
    plan = day_plan(day, seed, dept)
    dicom = out / "dicom"
    for stale in dicom.glob(f".*-{name}-*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dicom / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir(parents=True)
    # the day appears under its name in one rename: a reader never sees half a day
    instances = write_day(plan, tmp, index, rel_root=name)
    final = dicom / name
    if final.exists():
        trash = dicom / f".old-{name}-{os.getpid()}"
        final.rename(trash)
        shutil.rmtree(trash)
    tmp.rename(final)
    frames = day_truth(plan, dept.rules)
    frames.update(day_book(plan, frames["studies"], dept.rules))
    for kind, frame in frames.items():
        atomic_write_parquet(_day_dir(out, day) / f"{kind}.parquet", frame)
    status = frames["series"]["status"]
    marker = {
        "day": day.isoformat(),
        "seed": seed,
        "version": VERSION,
        "config": dept.fingerprint(),
        "counts": {
            "studies": len(plan.studies),
            "series": frames["series"].height,
            "instances": instances,
            "excluded": int((status == "excluded").sum()),
            "failed": int((status == "failed").sum()),
            "truth_studies": frames["studies"].height,
        },
    }
    atomic_write_bytes(
        _day_dir(out, day) / "day.json", json.dumps(marker, indent=2, sort_keys=True).encode()
    )
    return marker


def ensure_book(out: Path, day: dt.date, seed: int, dept: Dept) -> bool:
    """Draw the appointment book of a day generated before books existed; True if drawn.

    The book depends only on the day's plan and truth, which are the same: the day's
    files are not written again.
    """
    folder = _day_dir(out, day)
    if all((folder / f"{kind}.parquet").exists() for kind in BOOK_KINDS):
        return False
    plan = plan_day(day, seed, dept.slots, dept.machine_keys)
    studies = pl.read_parquet(folder / "studies.parquet")
    for kind, frame in day_book(plan, studies, dept.rules).items():
        atomic_write_parquet(folder / f"{kind}.parquet", frame)
    return True


def _can_spawn() -> bool:
    """Spawned workers re-import ``__main__``: impossible for ``python -`` or a REPL file."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return main is None or Path(main).is_file()


def _run_day(
    args: tuple[Path, dt.date, int, Dept, bool],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out, day, seed, dept, indexed = args
    rows: list[dict[str, Any]] = []
    return generate_day(out, day, seed, dept, rows if indexed else None), rows


def combine_truth(out: Path) -> dict[str, int]:
    """Rewrite ``truth/*.parquet`` from every complete day under ``out``; returns row counts."""
    days = sorted(p.parent for p in (out / "truth" / "days").glob("*/day.json"))
    counts = {}
    for kind, target in TRUTH_SCHEMAS.items():
        paths = [d / f"{kind}.parquet" for d in days]
        if kind in BOOK_KINDS:  # days generated before books, outside the range asked
            paths = [p for p in paths if p.exists()]
        frame = pl.concat([pl.read_parquet(p) for p in paths]) if paths else schema.empty(target)
        atomic_write_parquet(out / "truth" / f"{kind}.parquet", frame.select(list(target)))
        counts[kind] = frame.height
    return counts


def generate(
    out: Path,
    start: dt.date,
    end: dt.date,
    seed: int = 0,
    settings: Settings | None = None,
    *,
    force: bool = False,
    workers: int | None = None,
    department: Department | None = None,
    on_day: Callable[[int, int], None] | None = None,
    index: bool = True,
) -> SynthSummary:
    """Generate the department for the business days from ``start`` to ``end`` into ``out``.

    ``department``: the names the files carry (default: the reference department's, which
    the default config describes; see :mod:`pyschedvisu.synth.department`).
    Deterministic: the same seed, days and config give byte-identical files and truth.
    ``workers`` processes write days in parallel (default: one per CPU; 1 = in-process); a
    script calling this needs the usual ``if __name__ == "__main__":`` guard.
    ``on_day(done, todo)`` is called once the days to write are known (``done=0``), then
    after each day written, in this process. ``index``: hand the files written to the demo
    PACS's index cache as they are written (``out/dicom/.index.v2.parquet``, see
    :func:`pyschedvisu.demo_pacs.indexing.add_to_index`), so that serving them reads none
    (a cache: it holds the files' mtimes, so it is the one file that is not byte-identical).
    """
    import time

    began = time.perf_counter()
    settings = settings or Settings()
    out = Path(out)
    dept = Dept.from_settings(settings, department)
    fp = dept.fingerprint()
    days = settings.business_days(start, end)
    todo = [d for d in days if force or not _complete(out, d, seed, fp)]
    (out / "dicom").mkdir(parents=True, exist_ok=True)
    n_workers = min(workers or os.cpu_count() or 1, len(todo))
    jobs = [(out, d, seed, dept, index) for d in todo]
    written = 0
    rows: list[dict[str, Any]] = []

    def tick() -> None:
        nonlocal written
        written += 1
        if on_day is not None:
            on_day(written, len(todo))

    if on_day is not None:
        on_day(0, len(todo))
    if n_workers > 1 and _can_spawn():
        # spawn: forking a process that runs threads (polars, Prefect, pytest) may deadlock
        try:
            with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
                for future in as_completed([pool.submit(_run_day, job) for job in jobs]):
                    rows += future.result()[1]
                    tick()
        except BrokenProcessPool as exc:
            log.warning("worker processes failed (%s): generating in this process", exc)
            jobs = [j for j in jobs if not _complete(out, j[1], seed, fp)]
        else:
            jobs = []
    for job in jobs:
        rows += _run_day(job)[1]
        tick()
    if index and todo:
        from pyschedvisu.demo_pacs.indexing import add_to_index

        add_to_index(out / "dicom", rows, [d.strftime("%Y%m%d") for d in todo])
    for d in days:
        if d not in todo:
            ensure_book(out, d, seed, dept)
    combine_truth(out)
    totals = {
        "studies": 0,
        "series": 0,
        "instances": 0,
        "excluded": 0,
        "failed": 0,
        "truth_studies": 0,
    }
    for d in days:
        man = _marker(out, d) or {}
        for k in totals:
            totals[k] += int(man.get("counts", {}).get(k, 0))
    summary = SynthSummary(
        days=len(days),
        generated_days=len(todo),
        seconds=round(time.perf_counter() - began, 3),
        **totals,
    )
    info = {
        "generator": "pyschedvisu.synth",
        "version": VERSION,
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "config": fp,
        "department": department.name if department is not None else "reference",
        "days": [d.isoformat() for d in days],
        "counts": {
            k: v for k, v in asdict(summary).items() if k not in ("seconds", "generated_days")
        },
    }
    atomic_write_bytes(out / "synth.json", json.dumps(info, indent=2, sort_keys=True).encode())
    log.info(
        "synthetic department: %d days (%d generated) in %.1f s",
        len(days),
        len(todo),
        summary.seconds,
    )
    return summary
