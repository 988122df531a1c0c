"""The report's first two pages: a summary of every machine and period, then trends.

Both come from the study table only (plus the configuration and the days retrieved), with the
rules of the machine pages (:mod:`pyschedvisu_core.schedule`): the same utilisation, gaps and
take split, so a summary row and its page always agree. Machines come in configuration order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from pyschedvisu_core import figures as fig
from pyschedvisu_core import i18n
from pyschedvisu_core import planmatch as pm
from pyschedvisu_core import schedule as sch

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
}

#: Weeks of the trends page (and as many before them, for the year before).
TREND_WEEKS = 52
#: Line colours of the trends page: this year, the year before.
THIS_YEAR = "#1f6fb4"
YEAR_BEFORE = "#8a96a3"


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
            }
        )
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA)


def fmt_change(value: float | None) -> str:
    """``▲ 12 %``, ``▼ 5 %``, ``= 0 %``; ``-`` when there is nothing to compare with."""
    if value is None or value != value:
        return "-"
    rounded = round(value)
    arrow = "▲" if rounded > 0 else "▼" if rounded < 0 else "="
    return f"{arrow} {abs(rounded)} %"


def _header(
    title: str, subtitle: str, right: str, notes: Sequence[str], notes_y: float
) -> list[dict[str, Any]]:
    return [
        fig._note(0, 1.0, f"<b>{title}</b>", size=22, name="title"),
        fig._note(0, 0.972, subtitle, size=12, color=fig._MUTED, name="subtitle"),
        fig._note(1, 1.0, f"<b>{right}</b>", size=22, xanchor="right", name="machine"),
        fig._note(1, 0.972, "", size=10, color=fig._MUTED, xanchor="right", name="generated"),
        fig._note(0, notes_y, "<br>".join(notes), size=8, color=fig._MUTED, name="notes"),
        fig._note(0, -0.008, "", size=8, color=fig._MUTED, yanchor="top", name="footer"),
    ]


def _layout(annotations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "template": fig._NO_TEMPLATE,
        "width": fig.PAGE_WIDTH,
        "height": fig.PAGE_HEIGHT,
        "margin": {"l": 50, "r": 25, "t": 25, "b": 28},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"family": fig._FONT, "color": fig._INK, "size": 10},
        "showlegend": False,
        "hovermode": "closest",
        "shapes": [
            {
                "type": "line",
                "xref": "paper",
                "yref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": 0.952,
                "y1": 0.952,
                "line": {"color": fig._HEADER_FILL, "width": 2},
            }
        ],
        "annotations": annotations,
        **extra,
    }


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
            ]
        )
    return header, rows


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
        header=tuple(header),
        rows=tuple(tuple(r) for r in rows),
        widths=(1.5, 1.9, 0.75, 0.75, 0.8, 0.7, 1.05, 0.85, 1.15, 1.2, 1.0),
        fills=tuple(fills),
        left=(True, True) + (False,) * (len(header) - 2),
        axis=1,
        domain_x=(0.0, 1.0),
        domain_y=(top - height, top),
        meta="summary-table",
    )
    traces, axes = fig.table_traces(draw)
    lines = [i18n.text("summary_note", lang), i18n.text("change_note", lang), *notes]
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


# -- trends --------------------------------------------------------------------------------


def weekly_trend(studies: pl.DataFrame, spec: fig.PageSpec, end: dt.date) -> pl.DataFrame:
    """Exams, slots and utilisation per ISO week over the business days of ``spec``.

    Returns ``weeks_back`` (0 = the week of ``end``), ``monday``, ``exams``, ``slots``,
    ``util`` (null without slots) for every week with business days.
    """
    days = list(spec.days)
    f = studies.filter(pl.col("date").is_in(days))
    daily = sch.daily_counts(
        f,
        sch.find_gaps(f, spec.gap_minutes),
        days,
        spec.slots_per_weekday,
        spec.retrieved,
        (spec.service_from, spec.service_until),
    )
    last_monday = end - dt.timedelta(days=end.weekday())
    monday = pl.col("date") - pl.duration(days=pl.col("date").dt.weekday() - 1)
    return (
        daily.with_columns(monday=monday)
        .group_by("monday")
        .agg(exams=pl.col("exams").sum(), slots=pl.col("slots").sum())
        .with_columns(
            weeks_back=((pl.lit(last_monday) - pl.col("monday")).dt.total_days() // 7).cast(
                pl.Int64
            ),
            util=sch.utilisation(pl.col("exams"), pl.col("slots")),
        )
        .sort("monday")
        .select("weeks_back", "monday", "exams", "slots", "util")
    )


def monthly_descriptions(studies: pl.DataFrame, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Studies per calendar month and description from ``start`` to ``end``:
    ``month`` (its first day), ``description``, ``n``."""
    return (
        studies.filter(pl.col("date").is_between(start, end))
        .group_by(month=pl.col("date").dt.truncate("1mo"), description=pl.col("description"))
        .agg(n=pl.len().cast(pl.Int64))
        .sort("month", "description")
    )


def trends_dict(
    studies: pl.DataFrame,
    specs: Sequence[fig.PageSpec],
    *,
    title: str,
    end: dt.date,
    lang: str = "fr",
) -> dict[str, Any]:
    """The trends page: per machine (one row each, config order) its weekly utilisation and
    exams over the last 52 weeks against the 52 before, and its studies per month and
    description over the last 52 weeks.

    ``specs``: one per machine, whose ``days`` span both years (the rules of its pages apply).
    """
    by_machine = {str(k[0]): v for k, v in studies.partition_by("machine", as_dict=True).items()}
    n = max(len(specs), 1)
    top, bottom, gap = 0.885, 0.03, 0.04
    row_h = (top - bottom - gap * (n - 1)) / n
    panels = ((0.0, 0.29), (0.355, 0.645), (0.71, 0.87))
    traces: list[Any] = []
    layout_extra: dict[str, Any] = {}
    annotations: list[dict[str, Any]] = []
    first_monday = end - dt.timedelta(days=end.weekday(), weeks=TREND_WEEKS - 1)
    axis_font = {"size": 8, "color": fig._INK, "family": fig._FONT}
    for i, spec in enumerate(specs):
        y1 = top - i * (row_h + gap)
        y0 = y1 - row_h
        mine = by_machine.get(spec.machine, studies.clear())
        weekly = weekly_trend(mine, spec, end)
        months = monthly_descriptions(mine, first_monday, end)
        annotations.append(
            fig._note(0, y1 + 0.03, f"<b>{spec.machine}</b>", size=11, name="machine-title")
        )
        for j, (what, key) in enumerate((("weekly_util", "util"), ("weekly_exams", "exams"))):
            k = 3 * i + j + 1
            xa, ya = f"x{k}", f"y{k}"
            for back, color, dash, name in (
                (0, THIS_YEAR, "solid", i18n.text("this_year", lang)),
                (TREND_WEEKS, YEAR_BEFORE, "dot", i18n.text("last_year", lang)),
            ):
                part = weekly.filter(
                    pl.col("weeks_back").is_between(back, back + TREND_WEEKS - 1)
                ).with_columns(x=TREND_WEEKS - 1 - (pl.col("weeks_back") - back))
                traces.append(
                    fig._scatter(
                        x=part["x"].to_list(),
                        y=part[key].to_list(),
                        mode="lines",
                        line={"color": color, "width": 1.4 if back == 0 else 1.1, "dash": dash},
                        name=name,
                        legendgroup=name,
                        showlegend=i == 0 and j == 0,
                        connectgaps=False,
                        hovertemplate=f"{spec.machine} – {name}<br>%{{y:.0f}}<extra></extra>",
                        xaxis=xa,
                        yaxis=ya,
                        meta=f"trend-{key}",
                    )
                )
            ticks = [TREND_WEEKS - 1 - w for w in range(0, TREND_WEEKS, 13)][::-1]
            tick_text = [
                i18n.week_abbrev((first_monday + dt.timedelta(weeks=t)).isocalendar().week, lang)
                for t in ticks
            ]
            layout_extra[f"xaxis{k}"] = {
                "domain": list(panels[j]),
                "anchor": ya,
                "range": [-0.5, TREND_WEEKS - 0.5],
                "tickvals": ticks,
                "ticktext": tick_text,
                "tickfont": axis_font,
                "showgrid": False,
                "zeroline": False,
                "showline": True,
                "linecolor": "#8a96a3",
            }
            layout_extra[f"yaxis{k}"] = {
                "domain": [y0, y1],
                "anchor": xa,
                "rangemode": "tozero",
                "tickfont": axis_font,
                "title": {"text": i18n.text(what, lang), "font": {"size": 8}},
                "showgrid": True,
                "gridcolor": "#e3e8ed",
                "zeroline": False,
                "showline": True,
                "linecolor": "#8a96a3",
            }
        # studies per month, stacked by description, in the machine's colours and order
        k = 3 * i + 3
        xa, ya = f"x{k}", f"y{k}"
        present = months["description"].unique().to_list()
        labels = sch.label_order(spec.description_order, present)
        month_list = sorted(months["month"].unique().to_list())
        legend = f"legend{i + 2}"
        for label in labels:
            part = months.filter(pl.col("description") == label)
            counts = dict(zip(part["month"].to_list(), part["n"].to_list(), strict=True))
            traces.append(
                {
                    "type": "bar",
                    "x": [m.strftime("%Y-%m") for m in month_list],
                    "y": [counts.get(m, 0) for m in month_list],
                    "name": i18n.description_label(label, lang),
                    "marker": {
                        "color": sch.color_of(label, spec.description_order, spec.colors),
                        "line": {"width": 0},
                    },
                    "legend": legend,
                    "showlegend": True,
                    "hovertemplate": f"{i18n.description_label(label, lang)}: %{{y}}"
                    "<extra></extra>",
                    "xaxis": xa,
                    "yaxis": ya,
                    "meta": "trend-months",
                }
            )
        layout_extra[f"xaxis{k}"] = {
            "domain": list(panels[2]),
            "anchor": ya,
            "type": "category",
            "tickvals": [m.strftime("%Y-%m") for m in month_list][::3],
            "ticktext": [i18n.month_abbrev(m, lang) + m.strftime(" %y") for m in month_list[::3]],
            "tickfont": axis_font,
            "showline": True,
            "linecolor": "#8a96a3",
        }
        layout_extra[f"yaxis{k}"] = {
            "domain": [y0, y1],
            "anchor": xa,
            "tickfont": axis_font,
            "title": {"text": i18n.text("monthly_descriptions", lang), "font": {"size": 8}},
            "showgrid": True,
            "gridcolor": "#e3e8ed",
            "zeroline": False,
            "showline": True,
            "linecolor": "#8a96a3",
        }
        layout_extra[legend] = {
            "x": 0.88,
            "y": y1 + 0.025,
            "xanchor": "left",
            "yanchor": "top",
            "font": {"size": 7},
            "tracegroupgap": 0,
            "itemwidth": 30,
            "bgcolor": "rgba(0,0,0,0)",
        }
    subtitle = i18n.text("trends_subtitle", lang, end=i18n.fmt_date(end))
    annotations = [
        *_header(i18n.text("trends_title", lang), subtitle, title, (), 0.0),
        *annotations,
    ]
    layout = _layout(annotations, barmode="stack", **layout_extra)
    layout["showlegend"] = True
    layout["legend"] = {
        "orientation": "h",
        "x": 0,
        "y": 0.948,
        "xanchor": "left",
        "yanchor": "top",
        "font": {"size": 9},
        "bgcolor": "rgba(0,0,0,0)",
    }
    return {"data": traces, "layout": layout}
