"""The report's workbook written by a process of its own, started before the pages."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pyschedvisu import render
from pyschedvisu import workbook as wbk
from pyschedvisu.config import Settings
from pyschedvisu_core import overview, schema
from tests.report_data import END, known_week


def settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.paths.output_dir = tmp_path / "reports"
    return s


def page_sheets() -> dict[str, pl.DataFrame]:
    counts = pl.DataFrame(
        {
            "machine": ["PET GE"],
            "period": ["hebdomadaire"],
            "bin_label": ["Lu 18/11"],
            "first_day": [dt.date(2019, 11, 18)],
            "last_day": [dt.date(2019, 11, 18)],
            "days": [1],
            "slots": [15],
            "exams": [3],
            "gaps": [2],
            "utilisation_pct": [20.0],
            "no_activity_days": [0],
            "no_data_days": [0],
        },
        schema=wbk.COUNTS_SCHEMA,
    )
    return {
        "counts": counts,
        "durations": schema.empty(wbk.DURATIONS_SCHEMA),
        "summary": schema.empty(overview.SUMMARY_SCHEMA),
        "uptake": schema.empty(wbk.UPTAKE_SCHEMA),
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_study_sheet_is_written_first_and_the_page_sheets_when_handed_over(
    tmp_path: Path,
) -> None:
    s = settings(tmp_path)
    studies = tmp_path / "studies.parquet"
    known_week().write_parquet(studies)
    with render.WorkbookJob(s, studies, END) as job:
        out = job.folder / "report.xlsx"
        job.finish(out, page_sheets())
    assert job.folder == tmp_path / "reports" / "2019"
    assert leftovers(job.folder) == ["report.xlsx"]
    assert list(pl.read_excel(out, sheet_id=0)) == [
        "studies",
        "counts",
        "durations",
        "summary",
        "uptake",
    ]
    sheet = pl.read_excel(out, sheet_name="studies")
    assert sheet["study_key"].to_list() == known_week().sort("start")["study_key"].to_list()
    assert "patient_key" not in sheet.columns
    assert_frame_equal(
        pl.read_excel(out, sheet_name="counts").select("bin_label", "slots", "exams"),
        pl.DataFrame({"bin_label": ["Lu 18/11"], "slots": [15], "exams": [3]}),
        check_dtypes=False,
    )


def test_an_abandoned_workbook_leaves_nothing(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with render.WorkbookJob(s, known_week(), END) as job:
        pass  # the report failed before its pages were done
    assert leftovers(job.folder) == []
    with pytest.raises(OSError, match="already"):
        job.wait()


def test_a_workbook_abandoned_while_writing_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The report failed while the workbook process was writing: it is stopped, and removes
    its temporary file."""
    s = settings(tmp_path)
    week = known_week()
    big = pl.concat(  # seconds of writing: time to stop it in the middle
        week.with_columns(study_key=pl.col("study_key") + f"-{i}") for i in range(4000)
    )
    with render.WorkbookJob(s, big, END) as job:
        job.hand_over(job.folder / "report.xlsx", page_sheets())
        deadline = time.monotonic() + 60
        while not [n for n in leftovers(job.folder) if n.endswith(".tmp")]:
            assert time.monotonic() < deadline, "the workbook process never started writing"
            time.sleep(0.05)
    assert leftovers(job.folder) == []


def test_a_workbook_that_cannot_be_written_says_why(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with (
        render.WorkbookJob(s, tmp_path / "no-such-table.parquet", END) as job,
        pytest.raises(OSError, match=r"the workbook could not be written: .*no-such-table"),
    ):
        job.finish(job.folder / "report.xlsx", page_sheets())
    assert leftovers(job.folder) == []


def test_render_report_refuses_a_workbook_started_for_another_end(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with (
        render.WorkbookJob(s, known_week(), END) as job,
        pytest.raises(ValueError, match="2019-11-22"),
    ):
        render.render_report(s, [], END + dt.timedelta(days=7), workbook=job)
