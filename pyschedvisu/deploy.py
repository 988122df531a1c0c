"""Deployments per site: ``prefect.yaml``'s deployments for every site, and the network report.

``prefect.yaml`` describes the deployments of one department (``weekly-report``,
``backfill``, and any other it lists). For a config with ``[sites.<id>]`` tables,
:func:`site_deployments` makes one set of them per site:

* named ``<deployment>-<site>`` (``weekly-report-lausanne``) on the site's own work pool
  ``pyschedvisu-<site>``, served by a worker on a host inside that site's network (the only
  place its PACS answers, and C-MOVEs back to);
* its runs get ``PYSCHEDVISU_SITE=<site>`` (a job variable of the pool's process worker):
  every flow loads that site's settings, whatever its parameters;
* schedules in the site's ``calendar.timezone``;
* a deployment named after a section that has an ``enabled`` switch (``worklist-snapshot``:
  ``[worklist] enabled``) only for the sites where it is enabled, its schedules active there;
* plus ``network-report`` on ``network.work_pool``, scheduled by ``network.cron``.

A one-department config gets ``prefect.yaml``'s deployments as they are (pool ``pyschedvisu``),
in its time zone. One site's runs never wait on another's: separate pools, workers and
deployments, and the network report reads what the sites published.

:func:`apply` writes the document (a ``prefect.yaml`` of its own), creates the work pools that
do not exist yet (type ``process``) and runs ``prefect deploy --all`` on it from the checkout,
exactly as an operator would.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from pyschedvisu.config import SITE_ENV, Network, Settings
from pyschedvisu_core.errors import ConfigError, DeployError
from pyschedvisu_core.schema import DEFAULT_SITE

#: The checkout (or installed tree) holding ``flows/``, ``tasks/`` and ``prefect.yaml``.
ROOT = Path(__file__).resolve().parents[1]
#: The deployments of one department.
TEMPLATE = ROOT / "prefect.yaml"
#: Work pool of a one-department config, and first part of a site's (``pyschedvisu-<site>``).
POOL = "pyschedvisu"
#: The network report's deployment.
NETWORK_DEPLOYMENT = "network-report"
NETWORK_ENTRYPOINT = "flows/network.py:network_report"


def site_pool(site: str) -> str:
    """The work pool of ``site``: ``pyschedvisu-<site>`` (``pyschedvisu`` for ``default``)."""
    return POOL if site == DEFAULT_SITE else f"{POOL}-{site}"


def read_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """``prefect.yaml`` as data (its anchors resolved)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DeployError(f"{path}: cannot read the deployments ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), list):
        raise DeployError(f"{path}: no deployments list")
    return data


def switch_of(name: str, settings: Settings) -> bool | None:
    """Whether the deployment ``name`` is wanted: ``<section>-...`` named after a section with
    an ``enabled`` switch follows it; None for the others (always deployed)."""
    section = getattr(settings, name.split("-", 1)[0], None)
    if isinstance(section, BaseModel) and "enabled" in type(section).model_fields:
        return bool(section.enabled)
    return None


def _deployment(
    template: Mapping[str, Any], site: str, settings: Settings, named: bool
) -> dict[str, Any] | None:
    switch = switch_of(str(template["name"]), settings)
    if switch is False and named:
        return None  # a site gets it only where it is on (one department: as prefect.yaml has it)
    dep = copy.deepcopy(dict(template))
    if named:
        dep["name"] = f"{template['name']}-{site}"
        dep["description"] = f"Site {site}: {template.get('description', '')}".strip()
    pool = dict(dep.get("work_pool") or {})
    pool["name"] = site_pool(site)
    pool.setdefault("work_queue_name", "default")
    variables = dict(pool.get("job_variables") or {})
    if named:
        variables["env"] = {**dict(variables.get("env") or {}), SITE_ENV: site}
    pool["job_variables"] = variables
    dep["work_pool"] = pool
    dep["tags"] = [*(dep.get("tags") or []), *([f"site-{site}"] if named else [])]
    schedules = []
    for schedule in dep.get("schedules") or []:
        schedule = dict(schedule)
        schedule["timezone"] = settings.calendar.timezone
        if switch is True:
            schedule["active"] = True
        schedules.append(schedule)
    dep["schedules"] = schedules
    return dep


def site_deployments(
    network: Network, template: Mapping[str, Any], sites: Iterable[str] | None = None
) -> dict[str, Any]:
    """The ``prefect.yaml`` document of every site's deployments (``sites``: only those)."""
    wanted = list(network.sites) if sites is None else list(sites)
    unknown = [s for s in wanted if s not in network.sites]
    if unknown:
        raise ConfigError(
            [f"site {unknown[0]!r}: no such site; known sites: {', '.join(network.sites)}"]
        )
    named = network.has_sites
    deployments: list[dict[str, Any]] = []
    for site in wanted:
        settings = network.sites[site].settings
        for tpl in template["deployments"]:
            dep = _deployment(tpl, site, settings, named)
            if dep is not None:
                deployments.append(dep)
    if named and sites is None:
        top = network.top.settings
        deployments.append(
            {
                "name": NETWORK_DEPLOYMENT,
                "description": (
                    "The network report: every site's numbers of the week, per machine type "
                    "(PDF, HTML, workbook). Scheduled after the sites' weekly runs; retry it "
                    "once a site that was missing has completed its own."
                ),
                "entrypoint": NETWORK_ENTRYPOINT,
                "tags": [POOL, "network"],
                "parameters": {"send_email": True},
                "schedules": [
                    {
                        "cron": top.network.cron,
                        "timezone": top.calendar.timezone,
                        "active": True,
                    }
                ],
                "concurrency_limit": 1,
                "work_pool": {
                    "name": top.network.work_pool,
                    "work_queue_name": "default",
                    "job_variables": {},
                },
            }
        )
    document = {k: copy.deepcopy(v) for k, v in template.items() if k != "definitions"}
    document["deployments"] = deployments
    return document


def render_document(document: Mapping[str, Any]) -> str:
    """The document as YAML, with a header saying where it comes from."""
    header = (
        "# Generated by `pyschedvisu deploy` from prefect.yaml and the [sites.<id>] tables of\n"
        "# the config: edit those, not this file. Apply it again with `pyschedvisu deploy`.\n"
    )
    return header + yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)


def pools_of(document: Mapping[str, Any]) -> list[str]:
    """The work pools the document's deployments run on, in order."""
    return list(dict.fromkeys(str(d["work_pool"]["name"]) for d in document["deployments"]))


def ensure_pools(pools: Iterable[str]) -> list[str]:
    """Create the process work pools that do not exist on the Prefect server; those created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    created = []
    with get_client(sync_client=True) as client:
        for pool in pools:
            try:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            except ObjectAlreadyExists:
                continue
            created.append(pool)
    return created


def apply(document: Mapping[str, Any], path: Path, *, timeout_s: float = 900) -> list[str]:
    """Write ``document`` to ``path``, create its work pools, then ``prefect deploy --all`` it
    from the checkout; returns the pools created. Raises :class:`DeployError` with the end of
    Prefect's output when it fails."""
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise DeployError(
            "PREFECT_API_URL is not set: point it at the Prefect server "
            "(e.g. http://prefect-host:4200/api) to deploy there"
        )
    write(document, path)
    created = ensure_pools(pools_of(document))
    env = {**os.environ}
    env.setdefault("PYSCHEDVISU_HOME", str(ROOT))  # the pull step's folder, on the workers
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    proc = subprocess.run(
        [*command, "--prefect-file", str(path.resolve())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise DeployError(f"prefect deploy failed ({proc.returncode}): {tail}")
    return created


def write(document: Mapping[str, Any], path: Path) -> None:
    """Write the document to ``path`` (its folder created)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_document(document), encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"{path}: cannot write the deployments ({exc})") from exc


__all__ = [
    "POOL",
    "DeployError",
    "apply",
    "ensure_pools",
    "pools_of",
    "read_template",
    "render_document",
    "site_deployments",
    "site_pool",
    "switch_of",
    "write",
]
