"""The summary and trends pages: their rows (machine x period, each against the period
before) and the trend specs, from the study table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu.render.pages import (
    PlanData,
    figure_json,
    load_plan,
    load_studies,
    page_spec,
    report_periods,
    service_window,
    service_windows,
)
from pyschedvisu_core import figures, i18n, overview
from pyschedvisu_core.periods import Period, previous_bounds


@dataclass(frozen=True)
class Overview:
    """The summary and trends pages (figure JSON) and the summary table (workbook)."""

    summary_figure: str
    trends_figure: str
    summary: pl.DataFrame
    overlap_notes: tuple[str, ...] = ()  # data-quality lines of the report's week
    #: planned / performed summary page and its table (with a worklist)
    plan_summary_figure: str | None = None
    plan_summary: pl.DataFrame | None = None


def summary_periods(settings: Settings, end: dt.date) -> list[Period]:
    """The report's week, then every configured period (the week once if it is one of them)."""
    periods = report_periods(settings, end)
    defs = settings.report.period_defs
    if not any(defs[p.name].weeks == 1 for p in periods):
        weekly = [n for n, d in defs.items() if d.weeks == 1]
        if weekly:
            periods = report_periods(settings, end, weekly[:1]) + periods
        else:
            monday = end - dt.timedelta(days=end.weekday())
            label = "weekly" if settings.report.language == "en" else "hebdomadaire"
            periods = [Period("week", label, monday, end), *periods]
    return periods


def overview_start(settings: Settings, end: dt.date) -> dt.date:
    """First day the summary and trends pages of a report ending on ``end`` read studies of."""
    periods = summary_periods(settings, end)
    first = min(p.start for p in periods)
    earliest = min(first, trend_period(end).start)
    return earliest - dt.timedelta(days=370)  # the periods before


def trend_period(end: dt.date) -> Period:
    """The trends page's span: the 52 weeks up to ``end`` and the 52 before."""
    start = end - dt.timedelta(days=end.weekday(), weeks=2 * overview.TREND_WEEKS - 1)
    return Period("trends", "trends", start, end)


def summary_items(
    settings: Settings,
    end: dt.date,
    retrieved: Collection[dt.date],
    windows: dict[str, tuple[dt.date, dt.date]],
) -> list[overview.SummaryItem]:
    """The summary page's rows: every machine x the report's week and each period, each
    against the period before (``retrieved``, ``windows``: see :func:`build_page`)."""
    items: list[overview.SummaryItem] = []
    for per in summary_periods(settings, end):
        d = settings.report.period_defs.get(per.name)
        prev = (
            previous_bounds(per.start, per.end, weeks=d.weeks, anchor=d.anchor)
            if d is not None
            else previous_bounds(per.start, per.end, weeks=1)
        )
        for key in settings.display_machines():
            window = service_window(settings, key, windows)
            data = windows.get(settings.machine_names()[key], (None, None))[0]
            spec = page_spec(
                settings, key, per, retrieved=retrieved, window=window, first_data=data
            )
            before = None
            if prev is not None:
                shifted = Period(per.name, per.label, prev[0], prev[1])
                before = page_spec(
                    settings, key, shifted, retrieved=retrieved, window=window, first_data=data
                )
            items.append(overview.SummaryItem(per.name, spec, before))
    return items


def trend_specs(
    settings: Settings,
    end: dt.date,
    retrieved: Collection[dt.date],
    windows: dict[str, tuple[dt.date, dt.date]],
) -> list[figures.PageSpec]:
    """One page spec per machine (config order) over :func:`trend_period`: the trends page's."""
    trend = trend_period(end)
    return [
        page_spec(
            settings,
            key,
            trend,
            retrieved=retrieved,
            window=service_window(settings, key, windows),
        )
        for key in settings.display_machines()
    ]


def build_overview(
    settings: Settings,
    studies: pl.DataFrame | str | Path,
    end: dt.date,
    retrieved: Collection[dt.date] = (),
    windows: dict[str, tuple[dt.date, dt.date]] | None = None,
    plan: PlanData | str | Path | None = None,
) -> Overview:
    """The summary page (every machine x the report's week and each period, against the period
    before) and the trends page (last 52 weeks against the 52 before), from the study table;
    with a worklist, the planned / performed summary page too."""
    lang = settings.report.language
    if windows is None:
        windows = service_windows(studies)
    earliest = overview_start(settings, end)
    frame = (
        load_studies(studies, start=earliest, end=end)
        if isinstance(studies, str | Path)
        else studies.filter(pl.col("date").is_between(earliest, end))
    )
    items = summary_items(settings, end, retrieved, windows)
    table = overview.summary_table(frame, items)
    specs = trend_specs(settings, end, retrieved, windows)
    # the report's week: which machines had studies overlapped by another patient's series
    monday = end - dt.timedelta(days=end.weekday())
    notes: list[str] = []
    week = frame.filter(pl.col("date") >= monday)
    for key in settings.display_machines():
        name = settings.machine_names()[key]
        days = figures.overlap_days(week.filter(pl.col("machine") == name))
        if days:
            listed = ", ".join(i18n.fmt_date(d) for d in days)
            notes.append(f"{name} – " + i18n.text("overlaps_note", lang, days=listed))
    title = settings.report.title
    summary = overview.summary_dict(table, title=title, end=end, lang=lang)
    trends = overview.trends_dict(frame, specs, title=title, end=end, lang=lang)
    plan_data = load_plan(settings, plan) if plan is not None else None
    plan_figure, plan_table = None, None
    if plan_data is not None:
        plan_table = overview.plan_summary_table(plan_data.matches, plan_data.coverage, items)
        plan_figure = figure_json(
            overview.plan_summary_dict(plan_table, title=title, end=end, lang=lang)
        )
    return Overview(
        figure_json(summary),
        figure_json(trends),
        table,
        tuple(notes),
        plan_figure,
        plan_table,
    )
