"""The report's first two pages: a summary of every machine and period, then trends.

Both come from the study table only (plus the configuration and the days retrieved), with the
rules of the machine pages (:mod:`pyschedvisu_core.schedule`): the same utilisation, gaps and
take split, so a summary row and its page always agree. Machines come in configuration order.

The trends page is drawn by :mod:`pyschedvisu_core.trends` and the frame both share by
:mod:`pyschedvisu_core.frontpage`; their names used elsewhere are re-exported here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from pyschedvisu_core import figures as fig
from pyschedvisu_core import i18n
from pyschedvisu_core import planmatch as pm
from pyschedvisu_core import schedule as sch
from pyschedvisu_core import uptake as upt
from pyschedvisu_core.frontpage import _header as _header
from pyschedvisu_core.frontpage import _layout as _layout
from pyschedvisu_core.trends import THIS_YEAR as THIS_YEAR
from pyschedvisu_core.trends import TREND_WEEKS as TREND_WEEKS
from pyschedvisu_core.trends import YEAR_BEFORE as YEAR_BEFORE
from pyschedvisu_core.trends import monthly_descriptions as monthly_descriptions
from pyschedvisu_core.trends import trends_dict as trends_dict
from pyschedvisu_core.trends import weekly_trend as weekly_trend

#: Columns of :func:`summary_table` (also the workbook's ``summary`` sheet).
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "period": pl.String(),
    "period_label": pl.String(),
    "machine": pl.String(),
    "first_day": pl.Date(),
    "last_day": pl.Date(),
    "exams": pl.Int64(),
    "slots": pl.Int64(),
    "utilisation_pct": pl.Float64(),
    "gaps": pl.Int64(),
    "median_duration_s": pl.Float64(),
    "retakes": pl.Int64(),
    "no_activity_days": pl.Int64(),
    "no_data_days": pl.Int64(),
    "previous_first_day": pl.Date(),
    "previous_last_day": pl.Date(),
    "previous_exams": pl.Int64(),
    "change_pct": pl.Float64(),
    # injection to scan (DOMAIN §8): the "with a window" row of the machine's "Injection →
    # scan" page (its TOTAL row when no study has a window); null without PET studies
    "uptake_n": pl.Int64(),
    "uptake_median_s": pl.Float64(),
    "uptake_in_window_pct": pl.Float64(),
    "activity_median_mbq": pl.Float64(),
    "activity_p90_mbq": pl.Float64(),
    "activity_ref_mbq": pl.Float64(),  # the reference of those studies, when they share one
}


@dataclass(frozen=True)
class SummaryItem:
    """One row of the summary: a machine's page spec for a period, and the period before."""

    period: str  # period name, e.g. "hebdomadaire"
    spec: fig.PageSpec
    previous: fig.PageSpec | None = None


@dataclass(frozen=True)
class Totals:
    """What a summary row says about one machine over some business days."""

    exams: int
    slots: int
    gaps: int
    median_duration_s: float | None
    retakes: int
    no_activity_days: int
    no_data_days: int

    @property
    def utilisation_pct(self) -> float | None:
        return 100 * self.exams / self.slots if self.slots else None


def totals(studies: pl.DataFrame, spec: fig.PageSpec) -> Totals:
    """Totals of one machine's ``studies`` on the business days of ``spec`` (its rules)."""
    days = list(spec.days)
    f = studies.filter(pl.col("date").is_in(days))
    gaps = sch.find_gaps(f, spec.gap_minutes)
    daily = sch.daily_counts(
        f,
        gaps,
        days,
        spec.slots_per_weekday,
        spec.retrieved,
        (spec.service_from, spec.service_until),
    )
    sums = daily.select(
        slots=pl.col("slots").sum(),
        no_activity=(pl.col("status") == sch.NO_ACTIVITY).sum(),
        no_data=(pl.col("status") == sch.NO_DATA).sum(),
    ).row(0, named=True)
    median = f.select((pl.col("end") - pl.col("start")).dt.total_microseconds().median() / 1e6)
    value = median.item() if f.height else None
    return Totals(
        exams=f.height,
        slots=int(sums["slots"] or 0),
        gaps=gaps.height,
        median_duration_s=float(value) if value is not None else None,
        retakes=f.filter(pl.col("take") > 1).height,
        no_activity_days=int(sums["no_activity"] or 0),
        no_data_days=int(sums["no_data"] or 0),
    )


def change_pct(now: int, before: int | None) -> float | None:
    """Relative change of a count in %; None without a previous value or from zero."""
    if before is None or before == 0:
        return None
    return 100 * (now - before) / before


def summary_table(studies: pl.DataFrame, items: Sequence[SummaryItem]) -> pl.DataFrame:
    """One row per item (machine x period, in the order given): ``SUMMARY_SCHEMA``."""
    by_machine = {str(k[0]): v for k, v in studies.partition_by("machine", as_dict=True).items()}
    rows: list[dict[str, Any]] = []
    for item in items:
        spec = item.spec
        mine = by_machine.get(spec.machine, studies.clear())
        now = totals(mine, spec)
        before = totals(mine, item.previous) if item.previous is not None else None
        prev_days = item.previous.days if item.previous is not None else ()
        injected = upt.uptake_totals(
            mine.filter(pl.col("date").is_in(list(spec.days))), spec.uptake_windows
        )
        rows.append(
            {
                "period": item.period,
                "period_label": spec.period_label,
                "machine": spec.machine,
                "first_day": spec.start,
                "last_day": spec.end,
                "exams": now.exams,
                "slots": now.slots,
                "utilisation_pct": now.utilisation_pct,
                "gaps": now.gaps,
                "median_duration_s": now.median_duration_s,
                "retakes": now.retakes,
                "no_activity_days": now.no_activity_days,
                "no_data_days": now.no_data_days,
                "previous_first_day": prev_days[0] if prev_days else None,
                "previous_last_day": prev_days[-1] if prev_days else None,
                "previous_exams": before.exams if before is not None else None,
                "change_pct": change_pct(now.exams, before.exams if before else None)
                if before is not None and before.slots
                else None,
                **_uptake_columns(injected),
            }
        )
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA)


def _uptake_columns(injected: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's injection columns from :func:`uptake.uptake_totals` (null without PET)."""
    if not injected["n"]:
        return {}
    return {
        "uptake_n": injected["n_uptake"],
        "uptake_median_s": injected["median_s"],
        "uptake_in_window_pct": injected["in_window_pct"],
        "activity_median_mbq": injected["activity_median_mbq"],
        "activity_p90_mbq": injected["activity_p90_mbq"],
        "activity_ref_mbq": injected["activity_ref_mbq"],
    }


def _activity(median: float | None, p90: float | None, ref: float | None = None) -> str:
    """``245 / 310``: median / P90 of the administered activities (MBq), ``(300)`` after them
    when they have a reference."""
    if median is None:
        return ""
    text = f"{median:.0f} / {p90:.0f}" if p90 is not None else f"{median:.0f}"
    return f"{text} ({ref:.0f})" if ref is not None else text


def fmt_change(value: float | None) -> str:
    """``▲ 12 %``, ``▼ 5 %``, ``= 0 %``; ``-`` when there is nothing to compare with."""
    if value is None or value != value:
        return "-"
    rounded = round(value)
    arrow = "▲" if rounded > 0 else "▼" if rounded < 0 else "="
    return f"{arrow} {abs(rounded)} %"


def summary_cells(table: pl.DataFrame, lang: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table as printed (also the HTML table)."""
    header = [
        i18n.text("period", lang),
        i18n.text("machine", lang),
        i18n.text("exams", lang),
        i18n.text("slots", lang),
        i18n.text("util", lang) + " (%)",
        i18n.text("gaps", lang),
        i18n.text("median_duration", lang),
        i18n.text("retakes", lang),
        i18n.text("no_activity_row", lang),
        i18n.text("no_data_row", lang),
        i18n.text("change", lang),
        i18n.text("uptake_summary", lang),
        i18n.text("in_window_summary", lang),
        i18n.text("activity_summary", lang),
    ]
    rows: list[list[str]] = []
    previous_period = None
    for r in table.iter_rows(named=True):
        first = r["period"] != previous_period
        previous_period = r["period"]
        rows.append(
            [
                str(r["period_label"]) if first else "",
                str(r["machine"]),
                str(r["exams"]),
                str(r["slots"]),
                i18n.fmt_percent(r["utilisation_pct"]),
                str(r["gaps"]),
                i18n.fmt_duration(r["median_duration_s"]),
                str(r["retakes"]),
                str(r["no_activity_days"] or ""),
                str(r["no_data_days"] or ""),
                fmt_change(r["change_pct"]),
                "" if r["uptake_median_s"] is None else f"{r['uptake_median_s'] / 60:.0f} min",
                ""
                if r["uptake_in_window_pct"] is None
                else i18n.fmt_percent(r["uptake_in_window_pct"]),
                _activity(r["activity_median_mbq"], r["activity_p90_mbq"], r["activity_ref_mbq"]),
            ]
        )
    return header, rows


def _two_lines(header: str) -> str:
    """A long header on two lines (at its last space): the summary has fourteen columns."""
    if len(header) <= 8 or " " not in header:
        return header
    head, _, tail = header.rpartition(" ")
    return f"{head}<br>{tail}"


def summary_dict(
    table: pl.DataFrame,
    *,
    title: str,
    end: dt.date,
    lang: str = "fr",
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The summary page (the report's cover): one table of every machine and period.

    ``notes``: extra lines under the table (identical pages, data-quality findings).
    """
    header, rows = summary_cells(table, lang)
    periods = table["period"].to_list()
    band = 0
    fills: list[tuple[str, ...]] = []
    for i, p in enumerate(periods):
        if i and p != periods[i - 1]:
            band += 1
        fills.append((fig._ROW_FILLS[band % 2],) * len(header))
    n_rows = len(rows) + 1
    # Rows of ~24 px use the page; the notes follow right under the table.
    height = min(0.82, 0.024 * n_rows)
    top = 0.935
    draw = fig.TableDraw(
        header=tuple(_two_lines(h) for h in header),
        rows=tuple(tuple(r) for r in rows),
        widths=(1.45, 1.95, 0.72, 0.8, 0.72, 0.68, 0.82, 1.0, 0.9, 0.92, 0.95, 1.15, 0.9, 1.1),
        fills=tuple(fills),
        left=(True, True) + (False,) * (len(header) - 2),
        axis=1,
        domain_x=(0.0, 1.0),
        domain_y=(top - height, top),
        meta="summary-table",
    )
    traces, axes = fig.table_traces(draw)
    lines = [
        i18n.text("summary_note", lang),
        i18n.text("change_note", lang),
        fig.wrap(i18n.text("summary_uptake_note", lang)),
        *notes,
    ]
    subtitle = i18n.text("summary_subtitle", lang, end=i18n.fmt_date(end))
    annotations = _header(
        i18n.text("summary_title", lang), subtitle, title, lines, top - height - 0.012
    )
    return {"data": traces, "layout": _layout(annotations, **axes)}


# -- planned / performed ------------------------------------------------------------------

#: Columns of :func:`plan_summary_table` (also the workbook's ``plan_summary`` sheet).
PLAN_SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "period": pl.String(),
    "period_label": pl.String(),
    "machine": pl.String(),
    "first_day": pl.Date(),
    "last_day": pl.Date(),
    "business_days": pl.Int64(),
    "plan_days": pl.Int64(),  # business days with a plan (a worklist snapshot)
    "planned": pl.Int64(),
    "performed": pl.Int64(),
    "no_shows": pl.Int64(),
    "unplanned": pl.Int64(),
    "added_same_day": pl.Int64(),
    "realised_pct": pl.Float64(),
    "util_plan_pct": pl.Float64(),
    "delay_median_s": pl.Float64(),
    "delay_p90_s": pl.Float64(),
}


def plan_summary_table(
    matches: pl.DataFrame, coverage: pl.DataFrame, items: Sequence[SummaryItem]
) -> pl.DataFrame:
    """One row per item (machine x period): the total row of its page's planned / performed
    table (:func:`planmatch.plan_table` on the machine's plan days of the period), so a
    summary row and its page always agree. Rows of days without a plan are all zero."""
    by_machine = {str(k[0]): v for k, v in matches.partition_by("machine", as_dict=True).items()}
    rows: list[dict[str, Any]] = []
    for item in items:
        spec = item.spec
        days = pm.plan_days(coverage, spec.machine, spec.days)
        mine = by_machine.get(spec.machine, matches.clear())
        table = pm.plan_table(mine, spec.description_order, days)
        total = table.filter(pl.col("label") == pm.TOTAL)
        values: dict[str, Any] = (
            total.drop("label").row(0, named=True)
            if total.height
            else {k: (0 if v == pl.Int64() else None) for k, v in pm.PLAN_TABLE_SCHEMA.items()}
        )
        rows.append(
            {
                "period": item.period,
                "period_label": spec.period_label,
                "machine": spec.machine,
                "first_day": spec.start,
                "last_day": spec.end,
                "business_days": len(spec.days),
                "plan_days": len(days),
                **{k: values[k] for k in list(PLAN_SUMMARY_SCHEMA)[7:]},
            }
        )
    return pl.DataFrame(rows, schema=PLAN_SUMMARY_SCHEMA)


def plan_summary_cells(table: pl.DataFrame, lang: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the planned / performed summary as printed (also the HTML)."""
    header = [
        i18n.text("period", lang),
        i18n.text("machine", lang),
        i18n.text("plan_days_col", lang),
        i18n.text("planned", lang),
        i18n.text("performed", lang),
        i18n.text("no_shows", lang),
        i18n.text("unplanned", lang),
        i18n.text("added_same_day", lang),
        i18n.text("realised_pct", lang),
        i18n.text("util_plan", lang),
        i18n.text("delay_median", lang),
        i18n.text("delay_p90", lang),
    ]
    rows: list[list[str]] = []
    previous_period = None
    for r in table.iter_rows(named=True):
        first = r["period"] != previous_period
        previous_period = r["period"]
        plan_days = r["plan_days"]
        rows.append(
            [
                str(r["period_label"]) if first else "",
                str(r["machine"]),
                f"{plan_days}/{r['business_days']}" if plan_days else i18n.text("no_plan", lang),
                str(r["planned"]) if plan_days else "-",
                str(r["performed"]) if plan_days else "-",
                str(r["no_shows"] or "") if plan_days else "-",
                str(r["unplanned"] or "") if plan_days else "-",
                str(r["added_same_day"] or "") if plan_days else "-",
                i18n.fmt_percent(r["realised_pct"]),
                i18n.fmt_percent(r["util_plan_pct"]),
                i18n.fmt_delay(r["delay_median_s"]),
                i18n.fmt_delay(r["delay_p90_s"]),
            ]
        )
    return header, rows


def plan_summary_dict(
    table: pl.DataFrame, *, title: str, end: dt.date, lang: str = "fr"
) -> dict[str, Any]:
    """The planned / performed summary page: every machine and period, on its plan days."""
    header, rows = plan_summary_cells(table, lang)
    periods = table["period"].to_list()
    band = 0
    fills: list[tuple[str, ...]] = []
    for i, p in enumerate(periods):
        if i and p != periods[i - 1]:
            band += 1
        fills.append((fig._ROW_FILLS[band % 2],) * len(header))
    height = min(0.82, 0.024 * (len(rows) + 1))
    top = 0.935
    draw = fig.TableDraw(
        header=tuple(header),
        rows=tuple(tuple(r) for r in rows),
        widths=(1.3, 1.65, 1.05, 0.8, 0.75, 0.85, 1.1, 0.8, 0.85, 1.0, 1.2, 1.15),
        fills=tuple(fills),
        left=(True, True) + (False,) * (len(header) - 2),
        axis=1,
        domain_x=(0.0, 1.0),
        domain_y=(top - height, top),
        meta="plan-summary-table",
    )
    traces, axes = fig.table_traces(draw)
    lines = [fig.wrap(i18n.text("plan_summary_note", lang))]
    subtitle = i18n.text("plan_summary_subtitle", lang, end=i18n.fmt_date(end))
    annotations = _header(
        i18n.text("plan_summary_title", lang), subtitle, title, lines, top - height - 0.012
    )
    return {"data": traces, "layout": _layout(annotations, **axes)}
