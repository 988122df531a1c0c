"""``pyschedvisu extract [--start D --end D] [--force]``: series store -> study table."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from pyschedvisu.commands._common import parse_day, settings_from
from pyschedvisu_core.errors import PySchedVisuError


def extract_cmd(
    ctx: typer.Context,
    start: Annotated[
        str | None,
        typer.Option("--start", help="First day (YYYY-MM-DD); default: every stored day."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Last day (YYYY-MM-DD); default: today.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Recompute the days even if their series did not change."),
    ] = False,
) -> None:
    """Turn the stored series into studies (only the days that changed); print counts per
    machine, then what the rules left out and why (institutions, mixed cases, OTHER labels,
    days with no study kept), with the values that did not match. Exit 0 (1 on failure)."""
    from pyschedvisu.extraction import dropped_studies, extract

    settings = settings_from(ctx)
    first, last = parse_day(start), parse_day(end)
    days = None
    if first is not None or last is not None:
        first = first or dt.date(settings.report.year_start, 1, 1)
        last = last or dt.date.today()
        if last < first:
            raise typer.BadParameter(f"--end {last} is before --start {first}")
        days = settings.business_days(first, last)
    try:
        result = extract(settings, days, force=force)
        dropped = dropped_studies(settings, days)
    except PySchedVisuError as exc:
        typer.echo(f"extract failed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if result.written:
        typer.echo(
            f"{len(result.days_recomputed)} day(s) recomputed, {len(result.days_removed)} removed "
            f"({result.seconds:.2f} s)"
        )
    else:
        typer.echo("nothing new: study table unchanged")
    width = max([len(m) for m in result.per_machine] + [5])
    for machine, count in result.per_machine.items():
        typer.echo(f"  {machine:<{width}}  {count:>7}")
    typer.echo(
        f"  {'total':<{width}}  {result.n_studies:>7}  (+{result.n_mixed} mixed cases left out)"
    )
    typer.echo(str(result.path))
    for line in dropped.lines():
        typer.echo(f"WARNING: {line}", err=True)


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_cmd)
