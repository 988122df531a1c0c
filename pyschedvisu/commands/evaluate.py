"""``pyschedvisu evaluate --truth DIR/truth/studies.parquet``: accuracy of the study table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from pyschedvisu.commands._common import settings_from

#: Examples printed per kind of error (never patient ids: the example columns have none).
N_EXAMPLES = 5


def _read(path: Path, what: str) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        typer.echo(f"{path}: cannot read the {what} ({exc})", err=True)
        raise typer.Exit(code=2) from None


def _show(title: str, frame: pl.DataFrame) -> None:
    if frame.is_empty():
        return
    typer.echo(f"{title}: {frame.height} (first {min(N_EXAMPLES, frame.height)})")
    for row in frame.head(N_EXAMPLES).iter_rows(named=True):
        typer.echo("  " + "  ".join(str(v) for v in row.values()))


def evaluate_cmd(
    ctx: typer.Context,
    truth: Annotated[
        Path,
        typer.Option(
            "--truth", help="Truth table (DIR/truth/studies.parquet of `pyschedvisu synth`)."
        ),
    ],
    studies: Annotated[
        Path | None,
        typer.Option("--studies", help="Study table; default <data_dir>/studies.parquet."),
    ] = None,
    min_precision: Annotated[float, typer.Option("--min-precision", min=0.0, max=1.0)] = 1.0,
    min_recall: Annotated[float, typer.Option("--min-recall", min=0.0, max=1.0)] = 1.0,
    min_label_accuracy: Annotated[
        float, typer.Option("--min-label-accuracy", min=0.0, max=1.0)
    ] = 1.0,
    max_time_error_s: Annotated[float, typer.Option("--max-time-error-s", min=0.0)] = 0.0,
) -> None:
    """Compare the study table with a truth table; exit 1 when a threshold is not met."""
    from pyschedvisu.extraction import STUDIES_FILE
    from pyschedvisu_core.evaluation import evaluate, failures

    if studies is None:
        studies = Path(settings_from(ctx).paths.data_dir) / STUDIES_FILE
    result = evaluate(_read(studies, "study table"), _read(truth, "truth"))
    typer.echo(
        f"studies  found {result.n_found}  truth {result.n_truth}  matched {result.n_matched}"
    )
    typer.echo(f"precision       {result.precision:.4%}")
    typer.echo(f"recall          {result.recall:.4%}")
    typer.echo(f"label accuracy  {result.label_accuracy:.4%}")
    typer.echo(
        f"start error     max {result.start_error_max_s:g} s  p99 {result.start_error_p99_s:g} s"
    )
    typer.echo(
        f"end error       max {result.end_error_max_s:g} s  p99 {result.end_error_p99_s:g} s"
    )
    _show("missed", result.misses)
    _show("false positives", result.false_positives)
    _show("wrong labels", result.label_errors)
    problems = failures(
        result,
        min_precision=min_precision,
        min_recall=min_recall,
        min_label_accuracy=min_label_accuracy,
        max_time_error_s=max_time_error_s,
    )
    for line in problems:
        typer.echo(f"FAIL: {line}", err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo("OK")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
