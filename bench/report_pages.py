"""The example pages of ``docs/report-pages/``: a real report of the synthetic department.

Plans the synthetic department from 2024-01-01 to the report end (no DICOM files: the plan and
its truth), runs the study rules on its kept series, stores every business day as retrieved
(final) except the Wednesday of the report week, and leaves PET GE idle on its Tuesday (its
series of that day removed): the weekly page then shows a day "sans activité" and one "sans
données". The long-term page (from 2016) is trimmed to the data. Then renders the report and
writes small PNGs (pdftoppm, 800 px high) of the summary, the trends, PET GE's weekly page,
PET Siemens' long-term page and PET Siemens' weekly "Injection → scan" page (with an example
activity reference of 300 MBq for FDG: the reference config sets none, see reference.UPTAKE).

    .venv/bin/python bench/report_pages.py [--out docs/report-pages] [--end 2025-11-21]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import tempfile
from pathlib import Path

import polars as pl
from pypdf import PdfReader

from pyschedvisu import render
from pyschedvisu.config import Settings
from pyschedvisu.extraction import core_arguments
from pyschedvisu.privacy import pseudonymise_column
from pyschedvisu.store import SeriesStore
from pyschedvisu.synth.generate import Dept
from pyschedvisu.synth.plan import plan_day
from pyschedvisu.synth.truth import day_truth
from pyschedvisu_core import schema
from pyschedvisu_core.studies import build_studies, split_mixed

#: Pages shown in the docs: file name -> outline entry (machine, period) or front title.
PAGES = {
    "summary.png": ("Synthèse", None),
    "trends.png": ("Tendances", None),
    "weekly-pet-ge.png": ("PET GE", "hebdomadaire"),
    "long-term-pet-siemens.png": ("PET Siemens", "longue durée"),
    "uptake-weekly-pet-siemens.png": ("PET Siemens", "hebdomadaire / Injection → acquisition"),
}


def page_numbers(pdf: Path) -> dict[tuple[str, str | None], int]:
    """Outline of the report: (front title, None) or (machine, period) -> page (0-based)."""
    reader = PdfReader(pdf)
    out: dict[tuple[str, str | None], int] = {}
    machine = ""
    for item in reader.outline[1]:
        if isinstance(item, list):
            period = ""
            for sub in item:
                if isinstance(sub, list):  # a period's own pages: "period / title"
                    for page in sub:
                        key = (machine, f"{period} / {page.title}")
                        out[key] = reader.get_destination_page_number(page)
                    continue
                period = sub.title
                out[(machine, period)] = reader.get_destination_page_number(sub)
        else:
            machine = item.title
            out[(machine, None)] = reader.get_destination_page_number(item)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/report-pages")
    ap.add_argument("--end", default="2025-11-21", help="report end date (a Friday)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    end = dt.date.fromisoformat(args.end)
    work = Path(tempfile.mkdtemp(prefix="report-pages-"))
    settings = Settings()
    settings.paths.data_dir = work / "data"
    settings.paths.output_dir = work / "reports"
    settings.uptake["FDG"].activity_ref_mbq = 300.0  # an example department reference
    dept = Dept.from_settings(settings)
    days = settings.business_days(dt.date(2024, 1, 1), end)
    monday = end - dt.timedelta(days=end.weekday())
    idle, missing = monday + dt.timedelta(days=1), monday + dt.timedelta(days=2)
    kept = []
    for day in days:
        if day == missing:
            continue  # not retrieved: no manifest, no series
        kept.append(
            day_truth(plan_day(day, args.seed, dept.slots, dept.machine_keys), dept.rules)[
                "kept_series"
            ]
        )
    series = pseudonymise_column(pl.concat(kept), b"report-pages")
    series = series.filter(~((pl.col("date") == idle) & (pl.col("machine") == "Discovery 690")))
    store = SeriesStore(settings.paths.data_dir)
    empty = {
        k: schema.empty(v)
        for k, v in (("failed", schema.FAILED_SCHEMA), ("excluded", schema.EXCLUDED_SCHEMA))
    }
    for day in days:
        if day != missing:
            store.write_day(
                day,
                schema.empty(schema.SERIES_SCHEMA),
                empty["failed"],
                empty["excluded"],
                {"fingerprint": "report-pages", "final": True},
            )
    studies, _ = split_mixed(build_studies(series, **core_arguments(settings)).collect())
    path = work / "studies.parquet"
    studies.collect().write_parquet(path)

    first = min(p.start for p in render.summary_periods(settings, end))
    retrieved = render.final_days(settings.paths.data_dir, dt.date(first.year - 2, 1, 1), end)
    windows = render.service_windows(path)
    pages = [
        render.build_page(settings, path, m, p, end, retrieved, windows)
        for m in settings.display_machines()
        for p in settings.report.periods
    ]
    result = render.render_report(
        settings, pages, end, studies=path, retrieved=retrieved, windows=windows
    )
    numbers = page_numbers(Path(result["pdf"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, key in PAGES.items():
        n = numbers[key] + 1
        stem = work / name.removesuffix(".png")
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-scale-to",
                "800",
                "-singlefile",
                "-f",
                str(n),
                "-l",
                str(n),
                result["pdf"],
                str(stem),
            ],
            check=True,
        )
        shutil.copy(f"{stem}.png", out / name)
        print(out / name, f"page {n}")
    print(result["pdf"], result["xlsx"], f"{result['pages']} pages", result["identical"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
