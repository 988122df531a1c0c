"""Prefect tasks of the report: one task per machine x period builds a page; one renders them.

Thin wrappers over :mod:`pyschedvisu.render`. Pages are cached on what they depend on (the
study table's identity, the drawing settings, machine, period, end date and the code of the
figure modules), so re-running a report after a failed render does not rebuild its pages.
The generation time is stamped at render time, which is what makes a page cacheable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from pyschedvisu import render
from pyschedvisu.config import Settings
from pyschedvisu.render import Page
from pyschedvisu.worklist.matches import PLAN_DAYS_FILE as PLAN_DAYS
from pyschedvisu_core import colors, figures, i18n, overview, periods, planmatch, schedule

#: Settings sections a page depends on.
PAGE_SECTIONS = ("draw", "descriptions", "report", "calendar", "machines")


@lru_cache(maxsize=1)
def _code_version() -> str:
    digest = hashlib.sha256()
    for module in (figures, schedule, periods, i18n, colors, overview, planmatch, render):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:12]


def _file_identity(path: str) -> str:
    try:
        st = Path(path).stat()
    except OSError:
        return "missing"
    return f"{st.st_size}-{st.st_mtime_ns}"


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


@task(name="report-inputs", cache_policy=NO_CACHE)
def report_inputs(
    settings: Settings, studies_path: str, start: dt.date, end: dt.date
) -> tuple[list[dt.date], dict[str, tuple[dt.date, dt.date]]]:
    """(days from ``start`` to ``end`` final in the series store, each machine's first and last
    day with studies): what the utilisation of every page depends on besides its studies."""
    retrieved = render.final_days(settings.paths.data_dir, start, end)
    windows = render.service_windows(studies_path)
    get_run_logger().info(
        "%d day(s) final in the store from %s to %s; %d machine(s) with studies",
        len(retrieved),
        start,
        end,
        len(windows),
    )
    return retrieved, windows


def page_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache key of a page: inputs that change its content, nothing else."""
    settings: Settings = parameters["settings"]
    parts = [
        _code_version(),
        settings.fingerprint(*PAGE_SECTIONS),
        str(Path(parameters["studies_path"]).resolve()),
        _file_identity(parameters["studies_path"]),
        str(parameters["machine"]),
        str(parameters["period"]),
        str(parameters["end"]),
        # which days are final in the store, and the machines' service windows
        _digest(sorted(d.isoformat() for d in parameters.get("retrieved") or ())),
        _digest(
            sorted((k, str(a), str(b)) for k, (a, b) in (parameters.get("windows") or {}).items())
        ),
    ]
    plan = parameters.get("plan_path")
    if plan:  # planned against performed: the matches and which days had a plan
        parts += [_file_identity(plan), _file_identity(str(Path(plan).parent / PLAN_DAYS))]
    return "page-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


@task(
    name="build-page",
    task_run_name="page-{machine}-{period}",
    cache_key_fn=page_cache_key,
    cache_expiration=dt.timedelta(days=14),
    persist_result=True,
    retries=1,
    retry_delay_seconds=2,
)
def build_page(
    settings: Settings,
    studies_path: str,
    machine: str,
    period: str,
    end: dt.date,
    retrieved: list[dt.date] | None = None,
    windows: dict[str, tuple[dt.date, dt.date]] | None = None,
    plan_path: str | None = None,
) -> Page | None:
    """The page of ``machine`` for ``period`` ending on ``end``; None when it has no data.

    ``retrieved``, ``windows``: see :func:`report_inputs`; ``plan_path``: the plan matches
    (:func:`tasks.worklist.plan_for_report`), None without a worklist.
    """
    page = render.build_page(
        settings, studies_path, machine, period, end, retrieved or (), windows, plan_path
    )
    logger = get_run_logger()
    if page is None:
        logger.info("no data for %s / %s: page skipped", machine, period)
    else:
        logger.info(
            "page %s: %d studies, %d kB of figure",
            page.title,
            page.n_studies,
            len(page.figure) // 1024,
        )
    return page


@task(
    name="render-report", tags=["kaleido"], retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE
)
def render_report(
    settings: Settings,
    pages: list[Page],
    end: dt.date,
    notes: list[str] | None = None,
    studies_path: str | None = None,
    retrieved: list[dt.date] | None = None,
    windows: dict[str, tuple[dt.date, dt.date]] | None = None,
    plan_path: str | None = None,
) -> dict[str, Any]:
    """Render the summary, trends and every page through one kaleido browser; write the
    PDF, HTML and Excel reports (``plan_path``: planned against performed, if any).

    Returns ``{"pdf", "html", "xlsx", "pages", "skipped", "identical"}`` (see
    :func:`pyschedvisu.render.render_report`).
    """
    result = render.render_report(
        settings,
        pages,
        end,
        notes,
        studies=studies_path,
        retrieved=retrieved or (),
        windows=windows,
        plan=plan_path,
    )
    logger = get_run_logger()
    logger.info("report: %s, %d pages, workbook %s", result["pdf"], result["pages"], result["xlsx"])
    for item in result["skipped"]:
        logger.info("skipped (no data): %s", item)
    for item in result["identical"]:
        logger.info("not repeated (identical to another period's page): %s", item)
    return result
