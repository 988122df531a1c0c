"""``pyschedvisu deploy``: every site's deployments (and the network report's) on the server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pyschedvisu.commands._common import EXIT_CONFIG, fail_config, obj_config
from pyschedvisu.config import SITE_ENV, load_network
from pyschedvisu_core.errors import ConfigError, DeployError


def deploy(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option("--out", help="Where to write the generated prefect.yaml of the sites."),
    ] = Path("prefect.sites.yaml"),
    apply: Annotated[
        bool,
        typer.Option(
            "--apply/--no-apply",
            help="Create the work pools and register the deployments on the Prefect server "
            "($PREFECT_API_URL); --no-apply only writes the file.",
        ),
    ] = True,
) -> None:
    """Write and apply the deployments of every site: prefect.yaml's (weekly-report, backfill,
    and those a site enables) on its work pool pyschedvisu-<site> in its time zone, plus the
    network report. With --site, only that site's. A one-department config gets prefect.yaml's
    deployments on the pool pyschedvisu."""
    from pyschedvisu import deploy as dep

    site = os.environ.get(SITE_ENV) or None  # --site sets it for the command
    try:
        network = load_network(obj_config(ctx))
        document = dep.site_deployments(
            network, dep.read_template(), None if site is None else [site]
        )
    except ConfigError as err:
        raise fail_config(err) from None
    except DeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=EXIT_CONFIG) from None
    try:
        if apply:
            created = dep.apply(document, out)
        else:
            dep.write(document, out)
            created = []
    except DeployError as err:
        typer.echo(f"{out}: {err}", err=True)
        raise typer.Exit(code=1) from None
    for pool in created:
        typer.echo(f"work pool {pool} created (process)")
    for d in document["deployments"]:
        when = ", ".join(
            f"{s['cron']} {s['timezone']}{'' if s.get('active', True) else ' (paused)'}"
            for s in d.get("schedules") or []
        )
        typer.echo(f"{d['name']}: pool {d['work_pool']['name']}{'; ' + when if when else ''}")
    typer.echo(f"{'applied' if apply else 'written'}: {out}")
    pools = dep.pools_of(document)
    typer.echo(
        "start one worker per pool, on a host that reaches it: "
        + "; ".join(f"prefect worker start --pool {p}" for p in pools)
    )


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
