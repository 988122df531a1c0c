"""The weekly report flow: retrieve the needed days, extract, build pages, render, e-mail.

A day that still fails after its retries does not stop the others: the report is still
produced with a data-quality note naming the missing days, then the run ends Failed so
the dashboard shows it, its reason logged once at ERROR (no traceback: see
:mod:`flows.outcome`). Retrying the run re-fetches only those days (the others are
cached / stored) and re-renders.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.outcome import failed_state, run_logged
from pyschedvisu.config import ReportSettings, Settings, load_settings
from pyschedvisu.phases import PhaseClock, phase
from pyschedvisu_core import i18n, runs
from pyschedvisu_core.calendar import report_end
from pyschedvisu_core.periods import first_needed_day

#: Tasks in flight at once (days being retrieved, pages being built). The PACS itself is
#: protected by the retrieval task's own limits (pacs.max_concurrent, max_ops_per_s).
MAX_WORKERS = 4


def _scheduled_time() -> dt.datetime:
    from prefect.runtime import flow_run

    value = flow_run.scheduled_start_time
    # Prefect's DateTime is a datetime subclass; rebuild a plain aware stdlib datetime.
    return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.UTC)


def _run_name() -> str:
    from prefect.runtime import flow_run

    end = flow_run.parameters.get("end")
    return f"weekly-report-{end or 'auto-' + _scheduled_time().strftime('%Y%m%d')}"


def settings_for(config_path: str | None, periods: list[str] | None = None) -> Settings:
    """Settings of a run: the config file, with the run's ``periods`` if given (validated)."""
    settings = load_settings(config_path)
    if periods:
        data = settings.report.model_dump()
        data["periods"] = list(periods)
        settings.report = ReportSettings.model_validate(data)
    return settings


def resolve_end(end: dt.date | None, settings: Settings) -> dt.date:
    """``end`` or the automatic end date for the run's *scheduled* time (late runs report the
    right week), in the department's time zone (``calendar.timezone``)."""
    if end is not None:
        return end
    return report_end(
        _scheduled_time(), settings.calendar.report_cutoff_hour, settings.calendar.timezone
    )


def _periods_start(settings: Settings, end: dt.date) -> dt.date:
    defs = settings.report.period_defs
    pairs = [(defs[p].weeks, defs[p].anchor) for p in settings.report.periods]
    return first_needed_day(end, pairs, settings.report.year_start)


def needed_days(settings: Settings, end: dt.date) -> list[dt.date]:
    """Business days from Jan 1 of the first year the periods reach back to (not before
    ``retrieve.first_day``), up to ``end``."""
    first = _periods_start(settings, end)
    if settings.retrieve.first_day is not None:
        first = max(first, settings.retrieve.first_day)
    return settings.business_days(first, end)


def days_before_first_day(settings: Settings, end: dt.date) -> list[dt.date]:
    """Business days the periods reach back to that ``retrieve.first_day`` leaves unasked."""
    first_day = settings.retrieve.first_day
    if first_day is None:
        return []
    start = _periods_start(settings, end)
    return settings.business_days(start, min(end, first_day - dt.timedelta(days=1)))


@flow(
    name="weekly-report",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
    validate_parameters=True,
)
def weekly_report(
    end: dt.date | None = None,
    periods: list[str] | None = None,
    send_email: bool = True,
    config_path: str | None = None,
) -> Any:
    """Weekly schedule report: retrieve, extract, one page per machine x period, render, e-mail.

    Args:
        end: Last day of the report (a Friday). Empty: the Friday of the week before the
            run's scheduled time (in calendar.timezone), so a late or re-run reports the right week.
        periods: Periods to include (e.g. hebdomadaire, mensuel, longueduree). Empty: the config's.
        send_email: Send the report by e-mail (if enabled in the config).
        config_path: TOML configuration file. Empty: $PYSCHEDVISU_CONFIG, else built-in defaults.
    """
    return run_logged(
        "weekly report",
        lambda: settings_for(config_path, periods),
        lambda settings: _weekly_report(settings, end, send_email),
    )


def _weekly_report(settings: Settings, end: dt.date | None, send_email: bool) -> Any:
    """The body of :func:`weekly_report`, once its settings are loaded."""
    from tasks.extract import extract_studies, summarise_dropped
    from tasks.network import publish_site_aggregates
    from tasks.notify import publish_artifacts, send_report
    from tasks.report import build_page, render_report, report_inputs
    from tasks.retrieve import retrieve_days
    from tasks.worklist import plan_for_report

    logger = get_run_logger()
    clock = PhaseClock()
    end = resolve_end(end, settings)
    days = needed_days(settings, end)
    logger.info(
        "report ending %s: %d business day(s) needed from %s",
        end,
        len(days),
        days[0] if days else "-",
    )
    unasked = days_before_first_day(settings, end)
    if unasked:
        logger.info(
            "%d business day(s) from %s are before retrieve.first_day (%s): not asked of the "
            "PACS; empty retrieve.first_day to ask them",
            len(unasked),
            unasked[0],
            settings.retrieve.first_day,
        )

    with clock("retrieval"):
        outcomes = retrieve_days(settings, days)
    missing = runs.missing_days(outcomes)
    fetched = sum(1 for o in outcomes if o.ok and not o.summary.get("from_cache", False))
    logger.info(
        "retrieval: %d day(s) fetched, %d from cache/store, %d failed",
        fetched,
        len(days) - fetched - len(missing),
        len(missing),
    )

    with clock("extraction"), phase(logger, "extracting the study table"):
        studies_path = extract_studies(settings, days)
        dropped = summarise_dropped(settings, days)
        # planned against performed, from the worklist snapshots kept (None: no worklist)
        plan_path = plan_for_report(settings)

    machines, periods = settings.display_machines(), settings.report.periods
    with clock("pages"), phase(logger, f"building {len(machines) * len(periods)} pages"):
        retrieved, windows = report_inputs(settings, studies_path, days[0] if days else end, end)
        page_futures = [
            build_page.submit(
                settings, studies_path, machine, period, end, retrieved, windows, plan_path
            )
            for machine in machines
            for period in periods
        ]
        pages = [p for p in (f.result() for f in page_futures) if p is not None]
    note = i18n.missing_days_note(missing, settings.report.language)
    notes = [note] if note else []
    notes += dropped.notes(settings.report.language)
    rendering = f"rendering {len(pages)} pages (Chromium), the HTML and the workbook"
    with clock("render"), phase(logger, rendering):
        report = render_report(
            settings, pages, end, notes, studies_path, retrieved, windows, plan_path
        )
    logger.info("report: %s (%s pages)", report.get("pdf"), report.get("pages"))

    week_start = end - dt.timedelta(days=end.weekday())
    week_days = [d for d in days if d >= week_start]
    rows = runs.rows_worth_showing(runs.quality_rows(outcomes), week_start)
    with clock("artifacts"):
        publish_artifacts(
            settings, end, week_days, rows, missing, studies_path, report, dropped=dropped
        )
        # the site's numbers for the network report (aggregates only: no patient key)
        publish_site_aggregates(settings, studies_path, end, retrieved, windows, len(missing))

    delivery: dict[str, Any] = {"sent": False, "reason": "send_email is false"}
    if send_email:
        with clock("email"):
            delivery = send_report(settings, report, end, notes)
    logger.info("phases (s): %s", clock.text())

    result = {
        "end": end.isoformat(),
        "days": len(days),
        "fetched": fetched,
        "missing": [d.isoformat() for d in missing],
        "pdf": report.get("pdf"),
        "html": report.get("html"),
        "xlsx": report.get("xlsx"),
        "pages": report.get("pages"),
        "dropped": dropped.lines(),
        "email": delivery,
        "phases_s": clock.seconds,
    }
    if missing:
        return failed_state("weekly report", missing, result)
    return result
