"""Benchmark of the take rule (DOMAIN §3.3): fragments in one year of the synthetic department.

Plans one year of the synthetic department (the plan and its truth only: no DICOM files are
written), pseudonymises its kept series as retrieval stores them, runs the study rules and
counts the studies shorter than 2 minutes, the studies cut into several takes and the
data-quality findings (another patient's series overlapping a study, ``foreign_overlaps``).
Run it with ``PYTHONPATH`` pointing at an older ``pyschedvisu_core`` to count with its rules.

    .venv/bin/python bench/takes.py [--year 2024] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import time

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu.extraction import core_arguments
from pyschedvisu.privacy import pseudonymise_column
from pyschedvisu.synth.generate import Dept
from pyschedvisu.synth.plan import plan_day
from pyschedvisu.synth.truth import day_truth
from pyschedvisu_core import studies as rules


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--year", type=int, default=2024)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    settings = Settings()
    dept = Dept.from_settings(settings)
    days = settings.business_days(dt.date(args.year, 1, 1), dt.date(args.year, 12, 31))
    kept, truth = [], []
    for day in days:
        frames = day_truth(plan_day(day, args.seed, dept.slots, dept.machine_keys), dept.rules)
        kept.append(frames["kept_series"])
        truth.append(frames["studies"])
    series = pseudonymise_column(pl.concat(kept), b"bench-key")
    wanted = inspect.signature(rules.build_studies).parameters
    kwargs = {k: v for k, v in core_arguments(settings).items() if k in wanted}
    t0 = time.perf_counter()
    out = rules.build_studies(series, **kwargs).collect()
    seconds = time.perf_counter() - t0
    studies = out.filter(pl.col("machine") != rules.MIXED)
    short = studies.filter((pl.col("end") - pl.col("start")).dt.total_seconds() < 120)
    truth_studies = pl.concat(truth)
    res = {
        "rules_version": rules.RULES_VERSION,
        "year": args.year,
        "business_days": len(days),
        "series": series.height,
        "studies": studies.height,
        "truth_studies": truth_studies.height,
        "under_2_min": short.height,
        "under_2_min_later_takes": short.filter(pl.col("take") > 1).height,
        "under_2_min_by_machine": dict(short.group_by("machine").len().sort("machine").iter_rows()),
        "later_takes": studies.filter(pl.col("take") > 1).height,
        "studies_with_foreign_overlaps": (
            studies.filter(pl.col("foreign_overlaps") > 0).height
            if "foreign_overlaps" in studies.columns
            else None
        ),
        "rules_s": round(seconds, 2),
    }
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
