"""``pyschedvisu config init | show | validate``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pyschedvisu.commands._common import fail_config, settings_from
from pyschedvisu.config import (
    CONFIG_ENV,
    SITE_ENV,
    LoadedConfig,
    config_warnings,
    default_toml,
    load_config,
    load_network,
)
from pyschedvisu.privacy import key_problem
from pyschedvisu_core.errors import ConfigError
from pyschedvisu_core.schema import DEFAULT_SITE

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
    """Print the effective configuration (file + environment overrides) as TOML.

    With [sites.<id>] tables: the configuration of the site chosen with --site.
    """
    settings = settings_from(ctx, log_file=False)
    if settings.site != DEFAULT_SITE:
        typer.echo(f"# site {settings.site}: the top level merged with [sites.{settings.site}]")
    typer.echo(default_toml(settings), nl=False)


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
    site = os.environ.get(SITE_ENV) or None  # --site sets it for the command
    try:
        if site is None:
            network = load_network(target)
            if network.has_sites:
                for loaded in network.sites.values():
                    _checked(loaded, f"site {loaded.settings.site}: ")
                return
            loaded = network.sites[DEFAULT_SITE]
        else:
            loaded = load_config(target)
    except ConfigError as err:
        raise fail_config(err) from None
    _checked(loaded, "")


def _checked(loaded: LoadedConfig, prefix: str) -> None:
    """Say what was checked (OK), or exit 2 on a weak key; warn about what is left to change."""
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
    typer.echo(f"{prefix}{what}{' + environment ' + env if env else ''}: OK")
    for line in config_warnings(loaded):
        typer.echo(f"warning: {prefix}{line}", err=True)
    if not (key or privacy.key_secret_block or privacy.allow_demo_key):
        typer.echo(
            f"warning: {prefix}{privacy.key_env} (environment): not set, and no "
            "privacy.key_secret_block: retrieval will refuse to run without a pseudonymisation key",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
