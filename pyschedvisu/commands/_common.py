"""Helpers shared by the sub-commands: settings loading, errors to exit codes, logging."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, overload

import typer

from pyschedvisu.config import Settings, load_settings
from pyschedvisu.runlog import open_command_log
from pyschedvisu_core.errors import ConfigError

EXIT_CONFIG = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def stop_processes(processes: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM ``processes`` (our own servers stop cleanly on it), then kill what is still
    running after 20 s."""
    for proc in processes:
        proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def fail_config(err: ConfigError) -> typer.Exit:
    for line in err.problems:
        typer.echo(line, err=True)
    return typer.Exit(code=EXIT_CONFIG)


def log_level(ctx: typer.Context, settings: Settings) -> str:
    """``--log-level`` or ``logging.level``; exit 2 (one line) on a level that does not exist."""
    obj: dict[str, Any] = ctx.find_root().obj or {}
    level = str(obj.get("log_level") or settings.logging.level).upper()
    if level not in LOG_LEVELS:
        typer.echo(
            f"--log-level: logging.level: one of {', '.join(LOG_LEVELS)} (got {level!r})", err=True
        )
        raise typer.Exit(code=EXIT_CONFIG)
    settings.logging.level = level  # type: ignore[assignment]
    return level


def command_name(ctx: typer.Context) -> str:
    """``pacs-check`` for ``pyschedvisu pacs check``: the name of the command's log file."""
    return "-".join(ctx.command_path.split()[1:]) or "pyschedvisu"


def settings_from(ctx: typer.Context, path: Path | None = None, log_file: bool = True) -> Settings:
    """Settings for a command: ``path`` or the root ``--config``; exit 2 on a bad config.

    Sets up logging (stderr at the configured level) and, unless ``log_file`` is false, the
    command's log file in ``paths.log_dir`` (closed when the command ends).
    """
    obj: dict[str, Any] = ctx.find_root().obj or {}
    try:
        settings = load_settings(path or obj.get("config"))
    except ConfigError as err:
        raise fail_config(err) from None
    setup_logging(log_level(ctx, settings))
    if log_file:
        start_command_log(ctx, settings)
    return settings


def obj_config(ctx: typer.Context) -> Any:
    """The root ``--config`` (or ``$PYSCHEDVISU_CONFIG``) of the command, if any."""
    return (ctx.find_root().obj or {}).get("config")


def start_command_log(ctx: typer.Context, settings: Settings) -> None:
    """Open this command's log file; it is closed when the command ends."""
    run_log = open_command_log(settings, command_name(ctx))
    if run_log is not None:
        ctx.call_on_close(run_log.close)
        # the command's options: dates, paths, flags (no patient data)
        options = [f"{k}={v}" for k, v in ctx.params.items() if v not in (None, False)]
        config = obj_config(ctx) or "built-in defaults"
        run_log.note(
            f"{' '.join([ctx.command_path, *options])}; config: {config}", name="pyschedvisu.cli"
        )


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on ``sys.stderr`` as it is when a record is written, not when it was made.

    (A command run inside another program, e.g. a test's CliRunner, gets a stderr that is
    closed afterwards: records of the same process must not be written there later.)
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(level: str) -> None:
    """Log to stderr at ``level``; patient data never reach INFO by construction.

    The ``pyschedvisu`` loggers pass INFO on whatever ``level`` is, for the log file
    (which never takes DEBUG); the terminal shows ``level`` and above.
    """
    root = logging.getLogger("pyschedvisu")
    handler = next((h for h in root.handlers if isinstance(h, _Stderr)), None)
    if handler is None:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    handler.setLevel(level)
    root.setLevel(min(logging.getLevelName(level), logging.INFO))


@overload
def parse_day(value: str) -> dt.date: ...
@overload
def parse_day(value: None) -> None: ...
def parse_day(value: str | None) -> dt.date | None:
    """A date option (``YYYY-MM-DD``) as a date; a usage error (exit 2) naming it otherwise."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None
