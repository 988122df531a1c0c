"""``pyschedvisu report --end D [--periods a,b] [--studies PATH]``: build and render the report.

Runs the report shell directly (no Prefect server needed); the weekly flow runs the same
code through the Prefect tasks of :mod:`tasks.report`.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer

from pyschedvisu.commands._common import settings_from
from pyschedvisu_core.calendar import auto_report_end
from pyschedvisu_core.errors import PySchedVisuError


def _parse_end(value: str | None, cutoff_hour: int) -> dt.date:
    if not value:
        return auto_report_end(dt.datetime.now(), cutoff_hour)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--end"
        ) from None


def report(
    ctx: typer.Context,
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            help="Last day of the report (YYYY-MM-DD, a Friday). Default: automatic end date.",
        ),
    ] = None,
    periods: Annotated[
        str | None,
        typer.Option(
            "--periods", help="Comma-separated periods (default: report.periods of the config)."
        ),
    ] = None,
    studies: Annotated[
        Path | None,
        typer.Option("--studies", help="Study table (default: <data_dir>/studies.parquet)."),
    ] = None,
) -> None:
    """Build the summary, the trends and one page per machine x period; write the PDF, HTML
    and Excel reports."""
    from pyschedvisu import render

    settings = settings_from(ctx)
    day = _parse_end(end, settings.calendar.report_cutoff_hour)
    if periods:
        wanted = [p.strip() for p in periods.split(",") if p.strip()]
        unknown = [p for p in wanted if p not in settings.report.period_defs]
        if unknown:
            raise typer.BadParameter(
                f"unknown period(s) {unknown}; known: {sorted(settings.report.period_defs)}",
                param_hint="--periods",
            )
        settings.report.periods = wanted
    path = studies or settings.paths.data_dir / "studies.parquet"
    if not path.exists():
        typer.echo(
            f"{path}: no study table (run `pyschedvisu extract` first, or pass --studies)", err=True
        )
        raise typer.Exit(code=1)
    t0 = time.perf_counter()
    try:
        first = min(p.start for p in render.summary_periods(settings, day))
        # the periods before (summary) and two years of weeks (trends) reach further back
        retrieved = render.final_days(settings.paths.data_dir, dt.date(first.year - 2, 1, 1), day)
        windows = render.service_windows(path)
        # the workbook's study sheet is written by a process of its own while the pages build
        with render.WorkbookJob(settings, path, day) as workbook:
            plan = None
            if settings.worklist.enabled:  # planned against performed, matched again first
                from pyschedvisu.worklist.matches import update_matches

                update_matches(settings)
                plan = render.load_plan(settings)
            pages = [
                render.build_page(settings, path, machine, period, day, retrieved, windows, plan)
                for machine in settings.display_machines()
                for period in settings.report.periods
            ]
            result = render.render_report(
                settings,
                pages,
                day,
                studies=path,
                retrieved=retrieved,
                windows=windows,
                plan=plan,
                workbook=workbook,
            )
    except PySchedVisuError as exc:
        typer.echo(f"report failed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(result["pdf"])
    if result["html"]:
        typer.echo(result["html"])
    typer.echo(result["xlsx"])
    typer.echo(f"{result['pages']} page(s) in {time.perf_counter() - t0:.1f} s")
    for item in result["skipped"]:
        typer.echo(f"skipped (no data): {item}")
    for item in result["identical"]:
        typer.echo(f"not repeated (same as another period's page): {item}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
