"""The ``pyschedvisu`` command line. Each sub-command lives in ``pyschedvisu.commands``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from pyschedvisu import __version__

app = typer.Typer(
    name="pyschedvisu",
    help="Rebuild the effective schedule of PET/CT and SPECT/CT scanners from PACS metadata and report it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Sub-command modules, in help order; each exposes ``register(app)``.
COMMAND_MODULES = [
    "config",
    "synth",
    "pacs",
    "discover",
    "retrieve",
    "worklist",
    "extract",
    "evaluate",
    "report",
    "run",
    "deploy",
    "demo",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pyschedvisu {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (TOML). Default: $PYSCHEDVISU_CONFIG, else built-in defaults.",
            envvar="PYSCHEDVISU_CONFIG",
        ),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(
            "--site",
            help="The site (department) of a config with [sites.<id>] tables; a one-department config is site 'default'.",
            envvar="PYSCHEDVISU_SITE",
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="Override logging.level (DEBUG, INFO, WARNING, ERROR)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    ctx.obj = {"config": config, "log_level": log_level, "site": site}
    if site is not None:
        _choose_site(ctx, site)


def _choose_site(ctx: typer.Context, site: str) -> None:
    """Every settings load of the command (its flows run here included) is for ``site``:
    ``PYSCHEDVISU_SITE`` holds it while the command runs, as it holds it on a worker."""
    from pyschedvisu.config import SITE_ENV

    previous = os.environ.get(SITE_ENV)
    os.environ[SITE_ENV] = site

    def restore() -> None:
        if previous is None:
            os.environ.pop(SITE_ENV, None)
        else:
            os.environ[SITE_ENV] = previous

    ctx.call_on_close(restore)


for _name in COMMAND_MODULES:
    _modname = f"pyschedvisu.commands.{_name}"
    if importlib.util.find_spec(_modname) is not None:
        importlib.import_module(_modname).register(app)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt.

    A command stopped by ``kill``, systemd or a container runtime then stops the way it
    stops on Ctrl-C: ``retrieve`` closes its PACS client, says how many days are done and
    kept, and exits non-zero without a traceback.
    """


#: Exit code of a command stopped by SIGTERM (128 + 15, as a shell reports it); Ctrl-C: 130.
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_INTERRUPTED = 130


_terminated: list[int] = []


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Once: the stop is under way; a second SIGTERM must not cut its clean-up short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _terminated.append(signum)
    raise Terminated()


def main() -> None:
    """Console-script entry point (SIGTERM handled like Ctrl-C)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app()
    except SystemExit as exc:
        # typer turns a KeyboardInterrupt into exit 130; say SIGTERM's own code
        if exc.code == EXIT_INTERRUPTED and _terminated:
            sys.exit(EXIT_TERMINATED)
        raise


if __name__ == "__main__":
    main()
