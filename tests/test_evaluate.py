"""Evaluation of a study table against a truth table (core scores + CLI thresholds)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.store import conform
from pyschedvisu_core import schema
from pyschedvisu_core.evaluation import evaluate, failures

D = dt.date(2024, 3, 4)


def t(h: int, m: int = 0, s: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, 4, h, m, s)


def truth() -> pl.DataFrame:
    rows = [
        (D, "PET GE", "u1", 1, "FDG STAND.", t(8), t(8, 30), "123"),
        (D, "PET GE", "u2", 1, "OTHER", t(9), t(9, 30), "456"),
        (D, "Intevo", "u3", 1, "OS 3 PHASE", t(8), t(8, 10), "789"),
        (D, "Intevo", "u3", 2, "OS 3 PHASE", t(11), t(11, 20), "789"),
    ]
    return pl.DataFrame(rows, schema=schema.TRUTH_STUDY_SCHEMA, orient="row")


def as_studies(frame: pl.DataFrame) -> pl.DataFrame:
    """A STUDY_SCHEMA table holding exactly the truth rows (what a perfect extraction writes)."""
    with_group = frame.with_columns(
        pl.col("machine").alias("machine_group"), pl.lit("k").alias("patient_key")
    )
    return conform(with_group, schema.STUDY_SCHEMA)


def test_perfect_table_scores_one_everywhere() -> None:
    result = evaluate(as_studies(truth()), truth())
    assert (result.precision, result.recall, result.label_accuracy) == (1.0, 1.0, 1.0)
    assert result.time_error_max_s == 0.0
    assert failures(result) == []


def test_misses_false_positives_labels_and_time_errors_are_measured() -> None:
    found = as_studies(truth())
    found = found.filter(pl.col("study_uid") != "u2")  # a miss
    found = found.with_columns(
        pl.when(pl.col("take") == 2)
        .then(pl.lit(3))
        .otherwise(pl.col("take"))
        .cast(pl.Int32)
        .alias("take"),  # FP + miss
        pl.when(pl.col("study_uid") == "u1")
        .then(pl.lit("FDG CORPS"))
        .otherwise(pl.col("description"))
        .alias("description"),
        pl.when(pl.col("study_uid") == "u1")
        .then(pl.col("end") + dt.timedelta(seconds=90))
        .otherwise(pl.col("end"))
        .alias("end"),
    )
    result = evaluate(found, truth())
    assert (result.n_truth, result.n_found, result.n_matched) == (4, 3, 2)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 4)
    assert result.label_accuracy == pytest.approx(1 / 2)
    assert (result.start_error_max_s, result.end_error_max_s, result.end_error_p99_s) == (
        0.0,
        90.0,
        90.0,
    )
    assert_frame_equal(
        result.misses.select("study_uid", "take"),
        pl.DataFrame(
            {"study_uid": ["u3", "u2"], "take": [2, 1]}, schema_overrides={"take": pl.Int32()}
        ),
    )
    assert result.false_positives.select("study_uid", "take").rows() == [("u3", 3)]
    assert result.label_errors.rows() == [(D, "PET GE", "u1", 1, "FDG STAND.", "FDG CORPS")]
    assert (
        "patient_id" not in result.misses.columns
        and "patient_key" not in result.false_positives.columns
    )
    assert len(failures(result)) == 4
    assert (
        failures(
            result, min_precision=0.6, min_recall=0.5, min_label_accuracy=0.5, max_time_error_s=90
        )
        == []
    )


def test_mixed_cases_rows_are_never_counted() -> None:
    found = pl.concat(
        [
            as_studies(truth()),
            as_studies(truth().head(1)).with_columns(
                pl.lit("mixed cases").alias("machine_group"), pl.lit("X").alias("machine")
            ),
        ]
    )
    assert evaluate(found, truth()).precision == 1.0


def test_cli_exit_code_follows_thresholds(tmp_path: Path) -> None:
    truth_path, studies_path = tmp_path / "truth.parquet", tmp_path / "studies.parquet"
    truth().write_parquet(truth_path)
    as_studies(truth()).filter(pl.col("study_uid") != "u2").write_parquet(studies_path)
    runner = CliRunner()
    base = ["evaluate", "--truth", str(truth_path), "--studies", str(studies_path)]
    strict = runner.invoke(app, base)
    assert strict.exit_code == 1
    assert "recall          75.0000%" in strict.output and "missed: 1" in strict.output
    assert "456" not in strict.output  # the raw patient id of the miss never appears
    lenient = runner.invoke(app, [*base, "--min-recall", "0.75"])
    assert lenient.exit_code == 0 and "OK" in lenient.output
    missing = runner.invoke(
        app, ["evaluate", "--truth", str(tmp_path / "none.parquet"), "--studies", str(studies_path)]
    )
    assert missing.exit_code == 2
