"""Accuracy of a study table against the truth of the synthetic department.

Studies are matched on (date, machine, study_uid, take). Precision = matched / found, recall =
matched / truth, label accuracy = matched with the same description / matched, and the start /
end errors (seconds, absolute) over the matched studies. Examples of misses and false positives
carry no patient identifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pyschedvisu_core.studies import MIXED

KEYS = ["date", "machine", "study_uid", "take"]
#: Columns shown for misses / false positives (never patient ids).
EXAMPLE_COLUMNS = [*KEYS, "description", "start", "end"]


@dataclass(frozen=True)
class Evaluation:
    """Scores of one comparison; the frames hold every miss / false positive / label error."""

    n_truth: int
    n_found: int
    n_matched: int
    precision: float
    recall: float
    label_accuracy: float
    start_error_max_s: float
    start_error_p99_s: float
    end_error_max_s: float
    end_error_p99_s: float
    misses: pl.DataFrame
    false_positives: pl.DataFrame
    label_errors: pl.DataFrame

    @property
    def time_error_max_s(self) -> float:
        """The larger of the start and end maximum errors."""
        return max(self.start_error_max_s, self.end_error_max_s)


def _ratio(num: int, den: int, empty: float) -> float:
    return num / den if den else empty


def evaluate(
    studies: pl.LazyFrame | pl.DataFrame, truth: pl.LazyFrame | pl.DataFrame
) -> Evaluation:
    """Compare ``studies`` (``STUDY_SCHEMA``) with ``truth`` (``TRUTH_STUDY_SCHEMA``)."""
    found = (
        studies.lazy()
        .filter(pl.col("machine_group").fill_null("") != MIXED)
        .select(EXAMPLE_COLUMNS)
        .with_columns(pl.col("take").cast(pl.Int32))
        .collect()
    )
    expected = (
        truth.lazy().select(EXAMPLE_COLUMNS).with_columns(pl.col("take").cast(pl.Int32)).collect()
    )
    matched = expected.join(found, on=KEYS, how="inner", suffix="_found", nulls_equal=False)
    misses = expected.join(found, on=KEYS, how="anti").sort(KEYS)
    false_positives = found.join(expected, on=KEYS, how="anti").sort(KEYS)

    def errors(col: str) -> pl.Series:
        diff = (pl.col(f"{col}_found") - pl.col(col)).dt.total_microseconds().abs().cast(
            pl.Float64
        ) / 1e6
        return matched.select(diff.fill_null(float("inf")).alias("e")).to_series()

    def stat(series: pl.Series, p: float | None) -> float:
        if series.is_empty():
            return 0.0
        value = series.max() if p is None else series.quantile(p, interpolation="higher")
        return float(value)  # type: ignore[arg-type]

    start_err, end_err = errors("start"), errors("end")
    same_label = matched.filter(pl.col("description") == pl.col("description_found")).height
    label_errors = matched.filter(pl.col("description") != pl.col("description_found")).select(
        [*KEYS, pl.col("description").alias("expected"), pl.col("description_found").alias("found")]
    )
    n_truth, n_found, n_matched = expected.height, found.height, matched.height
    return Evaluation(
        n_truth=n_truth,
        n_found=n_found,
        n_matched=n_matched,
        precision=_ratio(n_matched, n_found, 1.0 if n_truth == 0 else 0.0),
        recall=_ratio(n_matched, n_truth, 1.0),
        label_accuracy=_ratio(same_label, n_matched, 1.0 if n_truth == 0 else 0.0),
        start_error_max_s=stat(start_err, None),
        start_error_p99_s=stat(start_err, 0.99),
        end_error_max_s=stat(end_err, None),
        end_error_p99_s=stat(end_err, 0.99),
        misses=misses,
        false_positives=false_positives,
        label_errors=label_errors.sort(KEYS),
    )


def failures(
    result: Evaluation,
    *,
    min_precision: float = 1.0,
    min_recall: float = 1.0,
    min_label_accuracy: float = 1.0,
    max_time_error_s: float = 0.0,
) -> list[str]:
    """One line per threshold that ``result`` does not meet (empty list: all met)."""
    out = []
    if result.precision < min_precision:
        out.append(f"precision {result.precision:.4f} < {min_precision}")
    if result.recall < min_recall:
        out.append(f"recall {result.recall:.4f} < {min_recall}")
    if result.label_accuracy < min_label_accuracy:
        out.append(f"label accuracy {result.label_accuracy:.4f} < {min_label_accuracy}")
    if result.time_error_max_s > max_time_error_s:
        out.append(f"time error {result.time_error_max_s:g} s > {max_time_error_s:g} s")
    return out


#: The injection columns of a study take (``STUDY_SCHEMA``, ``TRUTH_UPTAKE_SCHEMA``).
UPTAKE_COLUMNS = (
    "tracer",
    "radionuclide",
    "injected_at",
    "activity_mbq",
    "uptake_s",
    "uptake_flag",
    "radiopharm_issue",
)


def _issue_codes(col: str) -> pl.Expr:
    """A stored issue (``"code: detail; code: detail"``) as its codes (``"code; code"``)."""
    return (
        pl.col(col)
        .str.split("; ")
        .list.eval(pl.element().str.split(":").list.first().str.strip_chars())
        .list.join("; ")
    )


def uptake_mismatches(
    studies: pl.LazyFrame | pl.DataFrame,
    truth: pl.LazyFrame | pl.DataFrame,
    *,
    activity_tol_mbq: float = 0.1,
    uptake_tol_s: float = 0.0,
) -> pl.DataFrame:
    """Study takes of ``truth`` (``TRUTH_UPTAKE_SCHEMA``) whose injection columns the study
    table gives otherwise (a missing take included): ``KEYS``, the column, both values.

    Activity within ``activity_tol_mbq`` and uptake within ``uptake_tol_s`` are equal;
    issues are compared by their codes (the store's details are not in the truth).
    """
    found = (
        studies.lazy()
        .filter(pl.col("machine_group").fill_null("") != MIXED)
        .select(*KEYS, *UPTAKE_COLUMNS)
        .with_columns(pl.col("take").cast(pl.Int32), _issue_codes("radiopharm_issue"))
        .collect()
    )
    expected = truth.lazy().select(*KEYS, *UPTAKE_COLUMNS).collect()
    joined = expected.join(found, on=KEYS, how="left", suffix="_found", nulls_equal=False)
    rows = []
    for col in UPTAKE_COLUMNS:
        a, b = pl.col(col), pl.col(f"{col}_found")
        if col in ("activity_mbq", "uptake_s"):
            tol = activity_tol_mbq if col == "activity_mbq" else uptake_tol_s
            same = (a.is_null() & b.is_null()) | ((a - b).abs() <= tol).fill_null(False)
        else:
            same = a.eq_missing(b)
        rows.append(
            joined.filter(~same).select(
                *KEYS,
                pl.lit(col).alias("column"),
                a.cast(pl.String).alias("expected"),
                b.cast(pl.String).alias("found"),
            )
        )
    return pl.concat(rows).sort([*KEYS, "column"])
