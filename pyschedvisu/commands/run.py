"""``pyschedvisu run weekly | backfill``: run the Prefect flows here, in Prefect's local mode.

Without ``PREFECT_API_URL`` Prefect starts a temporary local API for the run; with it, the
run is recorded on that server (but still executed in this process).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pyschedvisu import progress
from pyschedvisu.commands._common import fail_config, log_level, parse_day, start_command_log
from pyschedvisu.config import Settings, config_path, load_settings
from pyschedvisu_core.errors import ConfigError

run_app = typer.Typer(
    help="Run the Prefect flows in this process (local mode).", no_args_is_help=True
)

EXIT_RUN_FAILED = 1


def local_mode_env() -> None:
    """Environment for Prefect's local mode: a patient start-up timeout, no telemetry.

    The temporary API server takes 10-25 s to start on a busy 2-core machine; Prefect's
    default timeout (20 s) made `run` fail there. Values already set by the user win.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _config_arg(ctx: typer.Context) -> tuple[str | None, Settings]:
    """The config file for the flow (validated first: exit 2 on a bad one), and its settings.

    Opens the command's log file: the flow run logs into it.
    """
    obj = ctx.find_root().obj or {}
    path = config_path(obj.get("config"))
    try:
        settings = load_settings(path)
    except ConfigError as err:
        raise fail_config(err) from None
    # Prefect's console handler (on the root logger) prints our records: no second handler.
    logging.getLogger("pyschedvisu").setLevel(log_level(ctx, settings))
    # Prefect's logging first: it leaves a root logger that has handlers (our file) without
    # its console, and the flow run's lines would no longer be printed.
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()
    start_command_log(ctx, settings)
    return (str(Path(path).resolve()) if path else None), settings


@contextmanager
def days_kept_on_interrupt(settings: Settings, days: Callable[[], list[dt.date]]) -> Iterator[None]:
    """On Ctrl-C or SIGTERM: say how many of the run's ``days`` are stored (kept), then stop."""
    try:
        yield
    except KeyboardInterrupt:
        from pyschedvisu.store import SeriesStore

        wanted = days()
        stored = set(SeriesStore(settings.paths.data_dir).days())
        kept = sum(1 for d in wanted if d in stored)
        typer.echo(
            f"interrupted: {kept} of {len(wanted)} day(s) in the store and kept; "
            "run again to retrieve the others",
            err=True,
        )
        raise


def _progress_console() -> Console:
    """Where the flow's progress shows: one bar on a terminal (standard error, beside the
    flow's log lines), else its progress lines; per-day lines stay in the log file."""
    console = Console(stderr=True)
    return console if console.is_terminal else Console(stderr=True, width=120)


def finish(state: Any) -> dict[str, Any]:
    """Print the outcome of a flow run state; exit 1 when it failed."""
    if state.is_completed():
        result = state.result()
        return dict(result) if isinstance(result, dict) else {"result": result}
    typer.echo(f"run {state.name}: {state.message or ''}", err=True)
    raise typer.Exit(code=EXIT_RUN_FAILED)


@run_app.command("weekly")
def weekly(
    ctx: typer.Context,
    end: Annotated[
        str | None,
        typer.Option(
            "--end", help="Report end date (a Friday, YYYY-MM-DD). Default: the automatic rule."
        ),
    ] = None,
    periods: Annotated[
        list[str] | None,
        typer.Option(
            "--periods", "-p", help="Periods to include (repeat the option). Default: the config's."
        ),
    ] = None,
    email: Annotated[
        bool,
        typer.Option("--email/--no-email", help="E-mail the report (when enabled in the config)."),
    ] = True,
) -> None:
    """Run the weekly report flow: retrieve, extract, build, render, e-mail."""
    cfg, settings = _config_arg(ctx)
    local_mode_env()
    from flows.weekly import needed_days, weekly_report
    from pyschedvisu_core.calendar import auto_report_end

    last = parse_day(end) or auto_report_end(
        dt.datetime.now(), settings.calendar.report_cutoff_hour
    )
    with (
        days_kept_on_interrupt(settings, lambda: needed_days(settings, last)),
        progress.live_here(_progress_console()),
    ):
        state = weekly_report(
            end=parse_day(end),
            periods=periods or None,
            send_email=email,
            config_path=cfg,
            return_state=True,
        )
    result = finish(state)
    typer.echo(f"PDF:  {result.get('pdf')}")
    typer.echo(f"HTML: {result.get('html')}")
    for line in result.get("dropped") or []:
        typer.echo(f"WARNING: {line}", err=True)


@run_app.command("backfill")
def backfill_cmd(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="First day (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--end", help="Last day, included (YYYY-MM-DD).")],
    force: Annotated[
        bool, typer.Option("--force", help="Fetch days again even when stored.")
    ] = False,
) -> None:
    """Run the backfill flow: retrieve and extract a range of days (no report)."""
    first, last = parse_day(start), parse_day(end)
    assert first is not None and last is not None
    cfg, settings = _config_arg(ctx)
    local_mode_env()
    from flows.backfill import backfill

    with (
        days_kept_on_interrupt(settings, lambda: settings.business_days(first, last)),
        progress.live_here(_progress_console()),
    ):
        state = backfill(start=first, end=last, config_path=cfg, force=force, return_state=True)
    result = finish(state)
    typer.echo(
        f"{result.get('days')} day(s), {result.get('fetched')} fetched; studies: {result.get('studies')}"
    )
    for line in result.get("dropped") or []:
        typer.echo(f"WARNING: {line}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(run_app, name="run")
