"""``pyschedvisu config init | show | validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pyschedvisu.commands._common import fail_config, settings_from
from pyschedvisu.config import default_toml, load_settings
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
    typer.echo(default_toml(settings_from(ctx)), nl=False)


@config_app.command("validate")
def validate(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="File to check (default: the --config file).")
    ] = None,
) -> None:
    """Check a configuration file; exit 2 with one line per problem."""
    target = path or (ctx.find_root().obj or {}).get("config")
    try:
        load_settings(target)
    except ConfigError as err:
        raise fail_config(err) from None
    typer.echo(f"{target or '<defaults>'}: OK")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
