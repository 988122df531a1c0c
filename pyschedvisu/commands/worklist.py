"""``pyschedvisu worklist snapshot [--date D]`` and ``pyschedvisu worklist match``.

``snapshot`` asks the Modality Worklist (``[worklist]``) for a day's steps once, keeps the
snapshot and folds the day's plan again (what the ``worklist-snapshot`` deployment runs every
30 minutes); ``match`` matches every stored plan to the study table
(``<data_dir>/plan_matches.parquet``, which the weekly report flow also does). Counts only
are printed: no patient data.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from pyschedvisu.commands._common import EXIT_CONFIG, fail_config, parse_day, settings_from
from pyschedvisu_core.errors import ConfigError, PseudonymKeyError, PySchedVisuError

app = typer.Typer(
    name="worklist",
    help="The Modality Worklist (RIS): snapshots of the plan, matched to the studies.",
    no_args_is_help=True,
)


@app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    date: Annotated[
        str | None,
        typer.Option("--date", help="Day whose steps are asked (YYYY-MM-DD). Default: today."),
    ] = None,
) -> None:
    """Snapshot the worklist of a day now; keep it and fold the day's plan again."""
    from pyschedvisu.worklist.snapshot import take_snapshot

    day = parse_day(date) or dt.date.today()
    settings = settings_from(ctx)
    try:
        result = take_snapshot(day, settings)
    except ConfigError as err:
        raise fail_config(err) from None
    except PseudonymKeyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=EXIT_CONFIG) from None
    except PySchedVisuError as exc:
        typer.echo(f"worklist snapshot failed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    s = result.summary()
    per = ", ".join(f"{k} {v}" for k, v in s["per_machine"].items())
    typer.echo(
        f"{s['day']}: {s['entries']} step(s) in the worklist at {s['taken_at']} ({per}); "
        f"plan of the day: {s['planned_steps']} step(s) from {s['snapshots_of_day']} snapshot(s)"
    )
    if s["other_days"] or s["unusable"]:
        typer.echo(
            f"left out: {s['other_days']} step(s) of another day, {s['unusable']} without a start"
        )


@app.command("match")
def match(ctx: typer.Context) -> None:
    """Match every stored plan to the study table -> <data_dir>/plan_matches.parquet."""
    from pyschedvisu.worklist.matches import update_matches

    settings = settings_from(ctx)
    try:
        result = update_matches(settings)
    except PySchedVisuError as exc:
        typer.echo(f"worklist match failed: {exc}", err=True)
        raise typer.Exit(code=1) from None
    counts = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in result.per_status.items())
    typer.echo(f"{result.plan_days} day(s) with a plan: {counts}")
    typer.echo(str(result.path))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="worklist")
