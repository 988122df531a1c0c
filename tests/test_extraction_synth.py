"""End to end without network: 8 synthetic weeks, series as retrieval stores them, exact studies.

The series come from the synthetic truth (``truth/kept_series.parquet``: what a perfect retrieval
keeps), pseudonymised with the real shell function, written day by
day into a real series store; then ``extract`` and ``pyschedvisu evaluate`` must find every
study, with its take, label and exact times.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import Settings
from pyschedvisu.extraction import MIXED_FILE, extract
from pyschedvisu.privacy import pseudonymise_column
from pyschedvisu.store import SeriesStore
from pyschedvisu_core import schema
from pyschedvisu_core.evaluation import evaluate, uptake_mismatches

START, END, SEED = dt.date(2024, 3, 4), dt.date(2024, 4, 26), 7
KEY = b"test-key-not-secret"
#: Cases of the synthetic department that the extraction rules must handle.
EXTRACTION_CASES = {
    "retake",
    "interleaved",
    "vent_perf",
    "duplicate_series",
    "mixed_cases",
    "partial_institution",
    "overlapped",
    "overlapping_other",
}


def store_as_retrieval_would(synth: Path, settings: Settings) -> SeriesStore:
    kept = pl.read_parquet(synth / "truth" / "kept_series.parquet")
    # As retrieval stores it: the study's resolved name, null for a series without its own
    # (which §3.1 leaves out of the studies)
    cases = pl.read_parquet(synth / "truth" / "cases.parquet")
    partial = cases.filter(pl.col("case") == "partial_institution")["series_uid"]
    nameless = kept.filter(pl.col("institution").is_null() | (pl.col("institution") == ""))
    assert sorted(nameless["series_uid"]) == sorted(partial)
    series = pseudonymise_column(kept, KEY)
    store = SeriesStore(settings.paths.data_dir)
    for (day,), frame in series.partition_by("date", as_dict=True, maintain_order=True).items():
        store.write_day(
            day,
            frame,
            schema.empty(schema.FAILED_SCHEMA),
            schema.empty(schema.EXCLUDED_SCHEMA),
            {"fingerprint": "synth", "final": True},
        )
    return store


@pytest.mark.slow
def test_eight_synthetic_weeks_are_extracted_exactly(
    synth_factory: Callable[[dt.date, dt.date, int], Path], tmp_path: Path
) -> None:
    synth = synth_factory(START, END, SEED)
    cases = set(pl.read_parquet(synth / "truth" / "cases.parquet")["case"].unique())
    assert cases >= EXTRACTION_CASES
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    store = store_as_retrieval_would(synth, settings)
    assert len(store.days()) == len(settings.business_days(START, END))

    result = extract(settings)
    truth_path = synth / "truth" / "studies.parquet"
    truth = pl.read_parquet(truth_path)
    assert result.n_studies == truth.height
    scores = evaluate(pl.read_parquet(result.path), truth)
    assert (scores.precision, scores.recall, scores.label_accuracy) == (1.0, 1.0, 1.0)
    assert scores.time_error_max_s == 0.0
    assert truth.filter(pl.col("take") > 1).height > 0
    assert truth.filter(pl.col("description") == "VENT PERF.").height > 0
    assert not pl.read_parquet(Path(settings.paths.data_dir) / MIXED_FILE).is_empty()
    # the injection of every study take: uptake to the second, activity to 0.1 MBq, flags and
    # reasons (broken sequences keep their study)
    uptake = pl.read_parquet(synth / "truth" / "uptake.parquet")
    assert uptake_mismatches(pl.read_parquet(result.path), uptake).is_empty()
    assert uptake["uptake_flag"].drop_nulls().n_unique() == 2
    assert uptake["radiopharm_issue"].drop_nulls().len() >= 40
    # another patient's series overlapping a study: no cut (same takes as the truth, above),
    # a data-quality finding on exactly the overlapped studies
    overlapped = pl.read_parquet(synth / "truth" / "cases.parquet").filter(
        pl.col("case") == "overlapped"
    )["study_uid"]
    found = pl.read_parquet(result.path).filter(pl.col("foreign_overlaps") > 0)
    assert sorted(found["study_uid"].unique()) == sorted(overlapped.unique())

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{settings.paths.data_dir}"\n')
    out = CliRunner().invoke(app, ["--config", str(cfg), "evaluate", "--truth", str(truth_path)])
    assert out.exit_code == 0, out.output
    assert "precision       100.0000%" in out.output and "recall          100.0000%" in out.output
    assert "start error     max 0 s" in out.output and "end error       max 0 s" in out.output
