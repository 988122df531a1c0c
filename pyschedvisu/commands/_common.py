"""Helpers shared by the sub-commands: settings loading, errors to exit codes, logging."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import typer

from pyschedvisu.config import Settings, load_settings
from pyschedvisu_core.errors import ConfigError

EXIT_CONFIG = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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


def settings_from(ctx: typer.Context, path: Path | None = None) -> Settings:
    """Settings for a command: ``path`` or the root ``--config``; exit 2 on a bad config."""
    obj: dict[str, Any] = ctx.find_root().obj or {}
    try:
        settings = load_settings(path or obj.get("config"))
    except ConfigError as err:
        raise fail_config(err) from None
    setup_logging(log_level(ctx, settings))
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
