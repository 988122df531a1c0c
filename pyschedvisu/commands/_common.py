"""Helpers shared by the sub-commands: settings loading, errors to exit codes, logging."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any, overload

import typer

from pyschedvisu.config import Settings, load_settings
from pyschedvisu_core.errors import ConfigError

EXIT_CONFIG = 2


def fail_config(err: ConfigError) -> typer.Exit:
    for line in err.problems:
        typer.echo(line, err=True)
    return typer.Exit(code=EXIT_CONFIG)


def settings_from(ctx: typer.Context, path: Path | None = None) -> Settings:
    """Settings for a command: ``path`` or the root ``--config``; exit 2 on a bad config."""
    obj: dict[str, Any] = ctx.find_root().obj or {}
    try:
        settings = load_settings(path or obj.get("config"))
    except ConfigError as err:
        raise fail_config(err) from None
    if obj.get("log_level"):
        settings.logging.level = obj["log_level"].upper()
    setup_logging(settings.logging.level)
    return settings


def setup_logging(level: str) -> None:
    """Log to stderr at ``level``; patient data never reach INFO by construction."""
    root = logging.getLogger("pyschedvisu")
    if not any(getattr(h, "_pyschedvisu", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._pyschedvisu = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


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
