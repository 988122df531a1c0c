"""The synthetic department's appointment book and its truth (planned against performed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu.synth import generate
from pyschedvisu.synth.appointments import visible_at, worklist_at
from tests.test_synth import tree_digest

DAY = dt.date(2024, 3, 6)


def test_every_truth_study_is_performed_once_or_unplanned(synth_week: Path) -> None:
    truth = pl.read_parquet(synth_week / "truth" / "plan.parquet")
    studies = pl.read_parquet(synth_week / "truth" / "studies.parquet")
    firsts = studies.filter(pl.col("take") == 1).with_columns(study_key=pl.col("study_uid") + "_1")
    with_study = truth.filter(pl.col("study_key").is_not_null())
    assert sorted(with_study["study_key"]) == sorted(firsts["study_key"])
    assert set(with_study["status"]) == {"performed", "unplanned"}
    no_shows = truth.filter(pl.col("status") == "no_show")
    assert no_shows.height > 0 and no_shows["study_key"].null_count() == no_shows.height
    # the steps are the book's, once each
    book = pl.read_parquet(synth_week / "truth" / "book.parquet")
    assert truth.filter(pl.col("status") != "unplanned").height == book.height
    assert truth["step_key"].drop_nulls().n_unique() == book.height
    # every way to match is drawn, every delay is the study's start against the slot
    assert set(truth["match"].drop_nulls()) == {"uid", "accession", "patient"}
    performed = truth.filter(pl.col("status") == "performed")
    error = performed.select(
        (
            (pl.col("actual_start") - pl.col("scheduled_start")).dt.total_microseconds() / 1e6
            - pl.col("delay_s")
        )
        .abs()
        .max()
    ).item()
    assert error < 1e-6


def test_the_worklist_shows_what_the_ris_shows_at_each_time(synth_week: Path) -> None:
    book = pl.read_parquet(synth_week / "truth" / "book.parquet").filter(pl.col("date") == DAY)
    at = lambda hhmm: dt.datetime.combine(DAY, dt.time.fromisoformat(hhmm))  # noqa: E731
    dawn = visible_at(book, at("06:00"), forget_performed=True)
    assert dawn.height == book.filter(pl.col("booked_at") <= at("06:00")).height
    moved = book.filter(pl.col("rescheduled_at").is_not_null())
    assert moved.height > 0
    early = dawn.filter(pl.col("step_id").is_in(moved["step_id"].implode()))
    assert (early["shown_start"] == early["first_start"]).all()  # not moved yet
    evening = visible_at(book, at("18:00"), forget_performed=True)
    assert (evening["performed_at"].drop_nulls() > at("18:00")).all()  # performed: gone
    assert evening["cancelled_at"].null_count() == evening.height
    kept = visible_at(book, at("18:00"), forget_performed=False)
    assert kept.height == book.filter(pl.col("cancelled_at").is_null()).height
    later = kept.filter(pl.col("step_id").is_in(moved["step_id"].implode()))
    assert (later["shown_start"] == later["start"]).all()
    entries = worklist_at(book, at("09:00"))
    assert entries and all(len(ds.ScheduledProcedureStepSequence) == 1 for ds in entries)


def test_a_department_generated_before_books_gets_them_without_rewriting_files(
    tmp_path: Path,
) -> None:
    out = tmp_path / "dept"
    generate(out, DAY, DAY, 3, Settings(), workers=1)
    digest = tree_digest(out / "dicom")
    book = pl.read_parquet(out / "truth" / "book.parquet")
    day_dir = out / "truth" / "days" / DAY.strftime("%Y%m%d")
    for kind in ("book", "plan"):
        (day_dir / f"{kind}.parquet").unlink()
    (out / "truth" / "book.parquet").unlink(missing_ok=True)
    summary = generate(out, DAY, DAY, 3, Settings(), workers=1)
    assert summary.generated_days == 0  # the day itself was complete
    assert tree_digest(out / "dicom") == digest
    assert pl.read_parquet(out / "truth" / "book.parquet").equals(book)
