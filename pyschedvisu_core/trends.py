"""The report's trends page: per machine, its weekly utilisation and exams over the last 52
weeks against the 52 before, and its studies per month and description; from the study
table only, with the rules of the machine pages (:mod:`pyschedvisu_core.schedule`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from pyschedvisu_core import figures as fig
from pyschedvisu_core import i18n
from pyschedvisu_core import schedule as sch
from pyschedvisu_core.frontpage import _header, _layout

#: Weeks of the trends page (and as many before them, for the year before).
TREND_WEEKS = 52
#: Line colours of the trends page: this year, the year before.
THIS_YEAR = "#1f6fb4"
YEAR_BEFORE = "#8a96a3"


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
