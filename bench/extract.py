"""Benchmark of the extraction: ten years of a department, full and incremental (+1 week).

    .venv/bin/python bench/extract.py [--years 10] [--data DIR] [--keep]

Builds the series rows directly (no DICOM, no PACS): every business day, each display machine
of the reference config does its weekday slots of studies of 3-10 series each, back to back with
small pauses (about 300 series a day, 750,000 over ten years). They are written through the real
series store, then ``extract`` runs in a fresh process per measure (wall time of ``extract`` and
the process' peak RSS):

- full:        no study table yet, every day computed; the store is as retrieval wrote it (one
               file per day), so this first run also packs it into yearly files;
- incremental: one more week stored, only it is computed and merged into the table;
- no-op:       nothing new, nothing written;
- rebuild:     the study table removed again (as after a config or rules change): every day
               computed, read from the yearly packs the first run wrote.

Targets (2 cores): full and rebuild <= 5 s, incremental <= 1 s, peak RSS <= 2 GB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu.store import SeriesStore
from pyschedvisu_core import schema

TARGETS = {"full": 5.0, "incremental": 1.0, "noop": 1.0, "rebuild": 5.0}
STUDY_FILES = ("studies.parquet", "studies_mixed.parquet", "studies.state.json")
RSS_TARGET_MB = 2048


def synthetic_series(days: list[dt.date], settings: Settings, seed: int = 7) -> pl.DataFrame:
    """Series rows (``SERIES_SCHEMA``) of the reference machines on ``days``, built vectorised."""
    rng = random.Random(seed)

    def ints(lo: int, hi: int, n: int) -> list[int]:
        return [rng.randrange(lo, hi) for _ in range(n)]

    names = settings.machine_names()
    # The full group (with CT) of each display machine, its models and a few real descriptions.
    groups = {key: next(g for g in settings.machines if g == names[key]) for key in names}
    machines = []
    for key, group in groups.items():
        models = settings.machines[group]
        descriptions = [p[0] for p in settings.descriptions[key].values() if p] + ["autre examen"]
        machines.append((key, models, descriptions, settings.draw.machine[key].slots_per_weekday))
    per_day = []
    for m_idx, (_key, _models, _desc, slots) in enumerate(machines):
        counts = [slots[d.weekday()] for d in days]
        per_day.append(pl.DataFrame({"day_idx": list(range(len(days))), "m": m_idx, "n": counts}))
    studies = (
        pl.concat(per_day)
        .with_columns(pl.int_ranges(0, pl.col("n")).alias("i"))
        .explode("i")
        .drop("n")
    )
    n_st = studies.height
    studies = studies.with_columns(
        pl.Series("n_series", ints(3, 11, n_st)),
        pl.Series("pause_s", ints(0, 900, n_st)),
        pl.Series("desc_pick", ints(0, 1000, n_st)),
    )
    series = studies.with_columns(pl.int_ranges(0, pl.col("n_series")).alias("j")).explode("j")
    n = series.height
    series = series.with_columns(
        pl.Series("dur_s", ints(30, 600, n)),
        pl.Series("gap_s", ints(0, 90, n)),
    ).with_columns(
        # a study's first series waits its pause; then series follow each other on the machine
        (pl.col("gap_s") + pl.when(pl.col("j") == 0).then(pl.col("pause_s")).otherwise(0)).alias(
            "wait_s"
        )
    )
    series = series.with_columns(
        (
            (pl.col("wait_s") + pl.col("dur_s")).cum_sum().over("day_idx", "m") - pl.col("dur_s")
        ).alias("off_s")
    )
    day_table = pl.DataFrame(
        {"day_idx": list(range(len(days))), "date": days},
        schema={"day_idx": pl.Int64(), "date": pl.Date()},
    )
    model_table = pl.DataFrame(
        [
            (m, j, models[j % len(models)])
            for m, (_, models, _, _) in enumerate(machines)
            for j in range(9)
        ],
        schema={"m": pl.Int32(), "j": pl.Int64(), "machine": pl.String()},
        orient="row",
    )
    desc_table = pl.DataFrame(
        [(m, k, d) for m, (_, _, descs, _) in enumerate(machines) for k, d in enumerate(descs)],
        schema={"m": pl.Int32(), "k": pl.Int64(), "study_description": pl.String()},
        orient="row",
    )
    n_desc = pl.DataFrame(
        {"m": list(range(len(machines))), "nd": [len(x[2]) for x in machines]},
        schema={"m": pl.Int32(), "nd": pl.Int64()},
    )
    out = (
        series.with_columns(pl.col("m").cast(pl.Int32), pl.col("j").cast(pl.Int64))
        .join(n_desc, on="m")
        .with_columns((pl.col("desc_pick") % pl.col("nd")).alias("k"))
        .join(model_table, on=["m", "j"])
        .join(desc_table, on=["m", "k"])
        .join(day_table, on="day_idx")
    )
    base = pl.col("date").cast(pl.Datetime("us")) + pl.duration(hours=7, minutes=30)
    uid = pl.concat_str(
        [
            pl.lit("1.2.826.0.1.3680043.10."),
            pl.col("day_idx"),
            pl.lit("."),
            pl.col("m"),
            pl.lit("."),
            pl.col("i"),
        ]
    )
    return out.select(
        pl.col("date"),
        pl.concat_str(
            [pl.lit("p"), pl.col("day_idx"), pl.lit("-"), pl.col("m"), pl.lit("-"), pl.col("i")]
        ).alias("patient_key"),
        uid.alias("study_uid"),
        pl.concat_str([uid, pl.lit("."), pl.col("j")]).alias("series_uid"),
        pl.col("study_description"),
        pl.lit("acquisition").alias("series_description"),
        pl.lit(None, dtype=pl.String()).alias("protocol_name"),
        pl.lit("chuv").alias("institution"),
        pl.lit("NM").alias("modality"),
        pl.lit(1, dtype=pl.Int32()).alias("n_instances"),
        pl.col("machine"),
        (base + pl.duration(seconds=pl.col("off_s"))).alias("start"),
        (base + pl.duration(seconds=pl.col("off_s") + pl.col("dur_s"))).alias("end"),
        pl.lit(None, dtype=pl.String()).alias("station_name"),
        pl.lit(None, dtype=pl.String()).alias("device_serial_number"),
    ).cast(schema.SERIES_SCHEMA)  # type: ignore[arg-type]


def write_days(store: SeriesStore, series: pl.DataFrame) -> None:
    failed, excluded = schema.empty(schema.FAILED_SCHEMA), schema.empty(schema.EXCLUDED_SCHEMA)
    for (day,), frame in series.partition_by("date", as_dict=True, maintain_order=True).items():
        store.write_day(day, frame, failed, excluded, {"fingerprint": "bench", "final": True})


def measure(data: Path) -> None:
    """Child process: one ``extract`` run, JSON on stdout."""
    from pyschedvisu.extraction import extract

    settings = Settings()
    settings.paths.data_dir = data
    start_usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = start_usage.ru_utime + start_usage.ru_stime
    t0 = time.perf_counter()
    result = extract(settings)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_mb = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    print(
        json.dumps(
            {
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "peak_rss_mb": round(rss_mb),
                "written": result.written,
                "days_recomputed": len(result.days_recomputed),
                "studies": result.n_studies,
            }
        )
    )


def run_child(data: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--data", type=Path, help="Data dir to use (default: a temporary one).")
    parser.add_argument("--keep", action="store_true", help="Keep the data dir.")
    parser.add_argument("--reuse", action="store_true", help="Reuse the series already in --data.")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return 0

    settings = Settings()
    first = dt.date(2016, 1, 1)
    last = dt.date(2016 + args.years - 1, 12, 31)
    days = settings.business_days(first, last)
    extra = settings.business_days(last + dt.timedelta(days=1), last + dt.timedelta(days=14))[:5]
    data = args.data or Path(tempfile.mkdtemp(prefix="bench_extract_"))
    store = SeriesStore(data)
    t0 = time.perf_counter()
    series = synthetic_series(days + extra, settings)
    main_series = series.filter(pl.col("date") <= last)
    for day in extra:  # with a reused data dir the extra week must be new again
        store.path(day, "manifest").unlink(missing_ok=True)
    if not (args.reuse and store.days()):
        write_days(store, main_series)
    elapsed = time.perf_counter() - t0
    print(f"setup: {len(days)} days, {main_series.height} series in {elapsed:.1f} s", flush=True)

    for name in STUDY_FILES:
        (data / name).unlink(missing_ok=True)
    for pack in store.root.glob("*.series.pack.parquet"):  # a store as retrieval leaves it
        pack.unlink()
    results = {"full": run_child(data)}
    write_days(store, series.filter(pl.col("date") > last))
    results["incremental"] = run_child(data)
    results["noop"] = run_child(data)
    for name in STUDY_FILES:
        (data / name).unlink(missing_ok=True)
    results["rebuild"] = run_child(data)
    ok = True
    print(f"load average during the runs: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"{'run':<12} {'wall s':>7} {'cpu s':>7} {'target':>7} {'peak RSS MB':>12} {'days':>6} {'studies':>8}"
    )
    for name, r in results.items():
        good = float(r["wall_s"]) <= TARGETS[name] and float(r["peak_rss_mb"]) <= RSS_TARGET_MB  # type: ignore[arg-type]
        ok &= good
        print(
            f"{name:<12} {r['wall_s']:>7} {r['cpu_s']:>7} {TARGETS[name]:>7} {r['peak_rss_mb']:>12} {r['days_recomputed']:>6} {r['studies']:>8} {'ok' if good else 'OVER'}"
        )
    if not args.keep and not args.data:
        shutil.rmtree(data, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
