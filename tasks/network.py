"""Prefect tasks of the network view (thin wrappers over :mod:`pyschedvisu.network`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pyschedvisu import network
from pyschedvisu.config import Settings


@task(name="publish-site-aggregates", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def publish_site_aggregates(
    settings: Settings,
    studies_path: str,
    end: dt.date,
    retrieved: list[dt.date],
    windows: dict[str, tuple[dt.date, dt.date]],
    missing_days: int = 0,
) -> dict[str, Any]:
    """Publish this site's numbers of its report ending ``end`` for the network report: a
    table artifact ``network-<site>-<end>`` on the Prefect server (no patient data)."""
    frame = network.site_aggregates(settings, studies_path, end, retrieved, windows, missing_days)
    key = network.publish(settings, frame, end)
    get_run_logger().info(
        "network numbers of site %s published: artifact %s (%d rows)",
        settings.site,
        key,
        frame.height,
    )
    return {"key": key, "rows": frame.height}


@task(name="read-site-aggregates", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def read_site_aggregates(sites: list[str], end: dt.date) -> dict[str, pl.DataFrame]:
    """The numbers each site published for the week ending ``end`` (absent: none yet)."""
    found = network.read_aggregates(sites, end)
    logger = get_run_logger()
    for site in sites:
        if site in found:
            logger.info("site %s: %d rows of numbers for %s", site, found[site].height, end)
        else:
            logger.warning("site %s: no numbers for the week ending %s", site, end)
    return found


@task(
    name="render-network-report",
    tags=["kaleido"],
    retries=1,
    retry_delay_seconds=5,
    cache_policy=NO_CACHE,
)
def render_network_report(
    settings: Settings,
    aggregates: dict[str, pl.DataFrame],
    sites: list[str],
    end: dt.date,
    notes: list[str],
) -> dict[str, Any]:
    """The network report's PDF, HTML and workbook (see :mod:`pyschedvisu.network`), and
    links to them (artifacts ``network-report-pdf`` / ``-html``)."""
    from pathlib import Path

    from prefect.artifacts import create_link_artifact

    result = network.render_network_report(settings, aggregates, sites, end, notes)
    for fmt in ("pdf", "html"):
        path = Path(result[fmt]).resolve()
        create_link_artifact(
            path.as_uri(),
            link_text=path.name,
            key=f"network-report-{fmt}",
            description=f"Network report ({fmt.upper()})",
        )
    get_run_logger().info(
        "network report: %s (%d pages, sites %s)",
        result["pdf"],
        result["pages"],
        ", ".join(result["sites"]),
    )
    return result
