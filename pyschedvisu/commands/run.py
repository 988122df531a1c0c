"""``pyschedvisu run weekly | backfill``: run the Prefect flows here, in Prefect's local mode.

Without ``PREFECT_API_URL`` Prefect starts a temporary local API for the run; with it, the
run is recorded on that server (but still executed in this process).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from pyschedvisu.commands._common import fail_config, parse_day
from pyschedvisu.config import config_path, load_settings
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


def _config_arg(ctx: typer.Context) -> str | None:
    """The config file for the flow (validated first: exit 2 on a bad one)."""
    obj = ctx.find_root().obj or {}
    path = config_path(obj.get("config"))
    try:
        settings = load_settings(path)
    except ConfigError as err:
        raise fail_config(err) from None
    # Prefect's console handler (on the root logger) prints our records: no second handler.
    logging.getLogger("pyschedvisu").setLevel(
        (obj.get("log_level") or settings.logging.level).upper()
    )
    return str(Path(path).resolve()) if path else None


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
    cfg = _config_arg(ctx)
    local_mode_env()
    from flows.weekly import weekly_report

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
    cfg = _config_arg(ctx)
    first, last = parse_day(start), parse_day(end)
    assert first is not None and last is not None
    local_mode_env()
    from flows.backfill import backfill

    state = backfill(start=first, end=last, config_path=cfg, force=force, return_state=True)
    result = finish(state)
    typer.echo(
        f"{result.get('days')} day(s), {result.get('fetched')} fetched; studies: {result.get('studies')}"
    )
    for line in result.get("dropped") or []:
        typer.echo(f"WARNING: {line}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(run_app, name="run")
