"""``pyschedvisu config init | show | validate``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pyschedvisu.commands._common import fail_config, settings_from
from pyschedvisu.config import CONFIG_ENV, config_warnings, default_toml, load_config
from pyschedvisu.privacy import key_problem
from pyschedvisu_core.errors import ConfigError

config_app = typer.Typer(help="Write, show and check the configuration file.", no_args_is_help=True)


@config_app.command("init")
def init(
    path: Annotated[
        Path, typer.Argument(help="Where to write the commented default config.")
    ] = Path("pyschedvisu.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a fully commented default configuration (the reference department)."""
    if path.exists() and not force:
        typer.echo(f"{path}: exists already (use --force to overwrite)", err=True)
        raise typer.Exit(code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(default_toml(), encoding="utf-8")
    tmp.replace(path)
    typer.echo(str(path))


@config_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective configuration (file + environment overrides) as TOML."""
    typer.echo(default_toml(settings_from(ctx, log_file=False)), nl=False)


@config_app.command("validate")
def validate(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="File to check (default: the --config file).")
    ] = None,
) -> None:
    """Check the configuration (file + environment); exit 2 with one line per problem.

    Says which configuration it checked, and warns about what is still the demo PACS or
    the reference department's (a new department changes them).
    """
    target = path or (ctx.find_root().obj or {}).get("config")
    try:
        loaded = load_config(target)
    except ConfigError as err:
        raise fail_config(err) from None
    privacy = loaded.settings.privacy
    key = os.environ.get(privacy.key_env, "")
    problem = key_problem(key) if key else None
    if problem is not None:
        raise fail_config(
            ConfigError([f"{privacy.key_env} (environment): privacy.key_env: {problem}"])
        )
    what = (
        str(loaded.file) if loaded.file else f"built-in defaults (no --config, {CONFIG_ENV} unset)"
    )
    env = ", ".join(o.variable for o in loaded.overrides)
    typer.echo(f"{what}{' + environment ' + env if env else ''}: OK")
    for line in config_warnings(loaded):
        typer.echo(f"warning: {line}", err=True)
    if not (key or privacy.key_secret_block or privacy.allow_demo_key):
        typer.echo(
            f"warning: {privacy.key_env} (environment): not set, and no privacy.key_secret_block:"
            " retrieval will refuse to run without a pseudonymisation key",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
