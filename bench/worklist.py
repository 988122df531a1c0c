"""Planned against performed: a worklist snapshot of a 60-entry day on a local Orthanc, and
the matching of ten years of plans (issue 18).

1. **Snapshot**: Orthanc 1.10.1 with its Modality Worklists plugin serves 60 ``.wl`` entries of
   one day (12 per machine of the reference department); ``take_snapshot`` asks them (one
   C-FIND per station AE title, 5 here), pseudonymises, keeps the snapshot and folds the day.
   Timed ``--runs`` times, each a new snapshot (the fold reads every snapshot of the day so far).
2. **Matching**: ten years of a synthetic study table (``bench/synthetic.py``) and a plan drawn
   from it (94 % of takes 1 planned, by Study Instance UID, accession number or patient; a few
   no-shows), matched in the core (``planmatch.match_plan``, in memory) and through the shell
   (``update_matches``: ~2,500 day plans read from the worklist store, ``studies.parquet``,
   both files written).

    .venv/bin/python bench/worklist.py [--runs 10] [--years 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY = dt.date(2024, 3, 5)


def sixty_entries() -> list[object]:
    """60 MWL entries of ``DAY``: 12 per machine, 40 minutes apart from 07:30."""
    from pyschedvisu.synth.appointments import STATIONS, mwl_dataset

    out = []
    for m, (key, (ae, modality)) in enumerate(STATIONS.items()):
        for i in range(12):
            start = dt.datetime.combine(DAY, dt.time(7, 30)) + dt.timedelta(minutes=40 * i)
            out.append(
                mwl_dataset(
                    {
                        "station_ae": ae,
                        "station_name": key,
                        "shown_start": start,
                        "shown_end": start + dt.timedelta(minutes=30),
                        "modality": modality,
                        "description": "PET-CT FDG Tronc" if modality == "PT" else "Scinti os",
                        "step_id": f"SPS{m}{i:02d}",
                        "patient_id": f"{10_000_000 + 100 * m + i}",
                        "patient_name": f"Bench^Patient{m}{i}",
                        "accession_number": f"B{m}{i:04d}",
                        "requested_procedure_id": f"RP{m}{i:02d}",
                        "study_uid": None,
                    }
                )
            )
    return out


def bench_snapshot(runs: int) -> dict[str, float]:
    from pyschedvisu.config import Settings
    from pyschedvisu.worklist.snapshot import take_snapshot
    from tests.fixtures.orthanc import start_orthanc, write_worklist_files

    work = Path(tempfile.mkdtemp(prefix="bench-worklist-"))
    folder = work / "worklists"
    write_worklist_files(folder, sixty_entries())
    orth = start_orthanc(work / "orthanc", worklists=folder)
    try:
        settings = Settings(
            worklist={"enabled": True, "port": orth.dicom_port, "called_ae": orth.aet},
            paths={"data_dir": str(work / "data")},
        )
        times = []
        for k in range(runs):
            now = dt.datetime.combine(DAY, dt.time(6)) + dt.timedelta(minutes=30 * k)
            t0 = time.perf_counter()
            result = take_snapshot(DAY, settings, now=now)
            times.append(time.perf_counter() - t0)
            assert result.entries == 60, result.summary()
    finally:
        orth.stop()
    return {
        "median_s": statistics.median(times),
        "max_s": max(times),
        "first_s": times[0],
        "queries": float(result.queries),
    }


def ten_years_of_plans(years: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(study table, planned steps, coverage) of ``years`` synthetic years."""
    from bench.synthetic import synthetic_studies
    from pyschedvisu_core.planmatch import COVERAGE_SCHEMA
    from pyschedvisu_core.worklist import PLANNED_SCHEMA

    end = dt.date(2025, 12, 31)
    studies = synthetic_studies(dt.date(end.year - years + 1, 1, 1), end).with_columns(
        accession_number=pl.col("study_uid").str.replace_all(r"\D", "").str.slice(-10)
    )
    rng = random.Random(18)
    rows = []
    firsts = studies.filter(pl.col("take") == 1).select(
        "date", "machine", "study_uid", "accession_number", "patient_key", "start", "end"
    )
    for n, (day, machine, uid, acc, patient, start, end_) in enumerate(firsts.iter_rows()):
        if rng.random() < 0.06:
            continue  # unplanned
        how = rng.random()
        sched = (start - dt.timedelta(seconds=rng.randint(-300, 2400))).replace(microsecond=0)
        rows.append(
            (
                day,
                machine,
                f"acc:{acc if how < 0.8 else 'R' + str(n)}/RP{n}/SPS{n}",
                uid if how < 0.4 else None,
                acc if how < 0.8 else f"R{n}",
                patient,
                sched,
                sched + (end_ - start),
            )
        )
        if rng.random() < 0.05:  # a no-show the same day
            rows.append((day, machine, f"acc:N{n}/RP/SPS", None, f"N{n}", f"NS{n}", sched, sched))
    planned = pl.DataFrame(
        rows,
        schema=[
            "date",
            "machine",
            "step_key",
            "study_uid",
            "accession_number",
            "patient_key",
            "scheduled_start",
            "scheduled_end",
        ],
        orient="row",
    ).with_columns(
        first_scheduled_start=pl.col("scheduled_start"),
        first_seen=pl.col("scheduled_start"),
        last_seen=pl.col("scheduled_start"),
        scheduled_duration_s=(
            pl.col("scheduled_end") - pl.col("scheduled_start")
        ).dt.total_seconds(),
        n_seen=pl.lit(1),
        added_same_day=pl.lit(False),
        rescheduled=pl.lit(False),
    )
    for col, dtype in PLANNED_SCHEMA.items():
        if col not in planned.columns:
            planned = planned.with_columns(pl.lit(None, dtype=dtype).alias(col))
    planned = planned.select([pl.col(c).cast(t) for c, t in PLANNED_SCHEMA.items()])
    coverage = (
        studies.select("date", "machine").unique().cast(COVERAGE_SCHEMA)  # type: ignore[arg-type]
    )
    return studies, planned, coverage


def bench_matching(years: int) -> dict[str, float]:
    from pyschedvisu.config import Settings
    from pyschedvisu.store import atomic_write_parquet
    from pyschedvisu.worklist.matches import update_matches
    from pyschedvisu.worklist.store import META_KEY, WorklistStore
    from pyschedvisu_core.planmatch import match_plan

    studies, planned, coverage = ten_years_of_plans(years)
    settings = Settings(worklist={"enabled": True})
    labels = {k: {lk: list(lv) for lk, lv in v.items()} for k, v in settings.descriptions.items()}
    core = []
    for _ in range(3):
        t0 = time.perf_counter()
        matches = match_plan(planned, studies, coverage, labels=labels)
        core.append(time.perf_counter() - t0)
    counts = dict(matches.group_by("status").len().iter_rows())

    # the shell: the same plans as day files of the worklist store, then update_matches
    work = Path(tempfile.mkdtemp(prefix="bench-matching-"))
    settings.paths.data_dir = work
    studies.write_parquet(work / "studies.parquet")
    store = WorklistStore(work)
    machines = sorted(coverage["machine"].unique())
    import json

    for (day,), part in planned.group_by("date"):
        meta = {"day": str(day), "machines": machines, "snapshots": 1}
        atomic_write_parquet(store.planned_path(day), part, {META_KEY: json.dumps(meta)})
    shell = []
    for _ in range(3):
        t0 = time.perf_counter()
        update_matches(settings)
        shell.append(time.perf_counter() - t0)
    return {
        "studies": float(studies.height),
        "steps": float(planned.height),
        "days": float(planned["date"].n_unique()),
        "core_s": min(core),
        "shell_s": min(shell),
        **{f"n_{k}": float(v) for k, v in counts.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--years", type=int, default=10)
    args = ap.parse_args()
    os.environ.setdefault("PYSCHEDVISU_PSEUDONYM_KEY", os.urandom(32).hex())
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    snap = bench_snapshot(args.runs)
    print(
        f"snapshot of a 60-entry day on Orthanc 1.10.1 ({snap['queries']:.0f} C-FIND): "
        f"median {snap['median_s']:.3f} s, first {snap['first_s']:.3f} s, max {snap['max_s']:.3f} s "
        f"over {args.runs} snapshots"
    )
    m = bench_matching(args.years)
    print(
        f"matching {args.years} years: {m['studies']:.0f} studies, {m['steps']:.0f} planned steps, "
        f"{m['days']:.0f} days -> {m.get('n_performed', 0):.0f} performed, "
        f"{m.get('n_no_show', 0):.0f} no-shows, {m.get('n_unplanned', 0):.0f} unplanned; "
        f"core {m['core_s']:.3f} s, with the files (update_matches) {m['shell_s']:.3f} s"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
