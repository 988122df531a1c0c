"""The pages of the network report (issue 20): the network table one period a page, then
the weekly trends per machine type, drawn from :func:`pyschedvisu_core.network.network_table`
and :func:`pyschedvisu_core.network.network_trend` as Plotly figure dicts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from pyschedvisu_core import figures as fig
from pyschedvisu_core import i18n, overview
from pyschedvisu_core.network import NETWORK

#: Rows of the network table printed on one page (the HTML and the workbook hold them all).
ROWS_PER_PAGE = 34


@dataclass(frozen=True)
class NetworkPage:
    """One page of the network report: its title, figure, and the period it shows (None: a
    trends page); ``first`` when it is the period's first page (a long table continues)."""

    title: str
    figure: dict[str, Any]
    period: str | None = None
    first: bool = True


def table_cells(table: pl.DataFrame, lang: str) -> tuple[list[str], list[list[str]]]:
    """Header and printed rows of one period's network table (also the HTML table)."""
    header = [
        i18n.text("machine_type", lang),
        i18n.text("site", lang),
        i18n.text("machine", lang),
        i18n.text("exams", lang),
        i18n.text("slots", lang),
        i18n.text("util", lang) + " (%)",
        i18n.text("gaps", lang),
        i18n.text("median_duration", lang),
        i18n.text("retakes", lang),
        i18n.text("network_no_shows", lang),
        i18n.text("change", lang),
    ]
    rows: list[list[str]] = []
    previous = None
    for r in table.iter_rows(named=True):
        total = r["row"] == NETWORK
        first = r["machine_type"] != previous
        previous = r["machine_type"]
        rows.append(
            [
                str(r["machine_type"]) if first else "",
                i18n.text("network_total", lang) if total else str(r["site"]),
                "" if total else str(r["machine"]),
                str(r["exams"]),
                str(r["slots"]),
                i18n.fmt_percent(r["utilisation_pct"]),
                str(r["gaps"] if r["gaps"] is not None else "-"),
                i18n.fmt_duration(r["median_duration_s"]),
                str(r["retakes"] if r["retakes"] is not None else "-"),
                str(r["no_shows"]) if r["no_shows"] is not None else "-",
                overview.fmt_change(r["change_pct"]),
            ]
        )
    return header, rows


def period_pages(
    table: pl.DataFrame,
    *,
    title: str,
    end: dt.date,
    lang: str = "fr",
    notes: Sequence[str] = (),
) -> list[NetworkPage]:
    """The pages of the network table: one period a page (continued on the next when it has
    more than :data:`ROWS_PER_PAGE` rows)."""
    pages: list[NetworkPage] = []
    for (period,), part in table.partition_by("period", as_dict=True, maintain_order=True).items():
        label = str(part["period_label"][0])
        first, last = part["first_day"].min(), part["last_day"].max()
        chunks = [part.slice(k, ROWS_PER_PAGE) for k in range(0, part.height, ROWS_PER_PAGE)]
        for k, chunk in enumerate(chunks):
            name = f"{i18n.text('network_title', lang)} – {label}"
            if len(chunks) > 1:
                name += f" ({k + 1}/{len(chunks)})"
            span = ""
            if isinstance(first, dt.date) and isinstance(last, dt.date):
                span = " " + i18n.text(
                    "from_to", lang, start=i18n.fmt_date(first), end=i18n.fmt_date(last)
                )
            subtitle = i18n.text("network_subtitle", lang, end=i18n.fmt_date(end)) + span
            figure = _table_page(chunk, name, subtitle, title, lang, notes)
            pages.append(NetworkPage(name, figure, str(period), k == 0))
    return pages


def _table_page(
    table: pl.DataFrame,
    name: str,
    subtitle: str,
    title: str,
    lang: str,
    notes: Sequence[str],
) -> dict[str, Any]:
    header, rows = table_cells(table, lang)
    fills: list[tuple[str, ...]] = []
    band = 0
    types = table["machine_type"].to_list()
    for i, (t, kind) in enumerate(zip(types, table["row"].to_list(), strict=True)):
        if i and t != types[i - 1]:
            band += 1
        fill = "#dde4ea" if kind == NETWORK else fig._ROW_FILLS[band % 2]
        fills.append((fill,) * len(header))
    height = min(0.82, 0.024 * (len(rows) + 1))
    top = 0.935
    draw = fig.TableDraw(
        header=tuple(header),
        rows=tuple(tuple(r) for r in rows),
        widths=(1.0, 1.2, 1.6, 0.7, 0.7, 0.75, 0.65, 1.0, 0.8, 0.8, 0.9),
        fills=tuple(fills),
        left=(True, True, True) + (False,) * (len(header) - 3),
        axis=1,
        domain_x=(0.0, 1.0),
        domain_y=(top - height, top),
        meta="network-table",
    )
    traces, axes = fig.table_traces(draw)
    lines = [i18n.text("network_note", lang), i18n.text("change_note", lang), *notes]
    annotations = overview._header(name, subtitle, title, lines, top - height - 0.012)
    return {"data": traces, "layout": overview._layout(annotations, **axes)}


#: Line colours of the sites on the trends page (the network's line is black and thicker).
SITE_COLORS = (
    "#1f6fb4",
    "#d9480f",
    "#2b8a3e",
    "#862e9c",
    "#c2255c",
    "#0b7285",
    "#e67700",
    "#5c940d",
    "#364fc7",
    "#a61e4d",
)


def trends_pages(
    trend: pl.DataFrame, *, title: str, end: dt.date, lang: str = "fr", per_page: int = 3
) -> list[NetworkPage]:
    """The trend pages: per machine type, the weekly utilisation of each site and of the
    network, then the network's exams per week (``per_page`` types a page)."""
    types = list(dict.fromkeys(trend["machine_type"].to_list()))
    pages: list[NetworkPage] = []
    for k in range(0, len(types), per_page):
        chunk = types[k : k + per_page]
        name = i18n.text("network_trends_title", lang)
        if len(types) > per_page:
            name += f" ({k // per_page + 1}/{math.ceil(len(types) / per_page)})"
        pages.append(NetworkPage(name, _trend_page(trend, chunk, name, title, end, lang)))
    return pages


def _trend_page(
    trend: pl.DataFrame,
    types: Sequence[str],
    name: str,
    title: str,
    end: dt.date,
    lang: str,
) -> dict[str, Any]:
    n = max(len(types), 1)
    top, bottom, gap = 0.885, 0.03, 0.05
    row_h = (top - bottom - gap * (n - 1)) / n
    panels = ((0.0, 0.6), (0.7, 1.0))
    traces: list[Any] = []
    axes: dict[str, Any] = {}
    notes: list[dict[str, Any]] = []
    sites = [s for s in dict.fromkeys(trend["site"].to_list()) if s != NETWORK]
    mondays = trend["monday"].drop_nulls()
    first: dt.date = mondays.min() if mondays.len() else end  # type: ignore[assignment]
    last_week = (end - dt.timedelta(days=end.weekday()) - first).days // 7
    ticks = list(range(last_week % 13, last_week + 1, 13))
    tick_text = [
        i18n.week_abbrev((first + dt.timedelta(weeks=t)).isocalendar().week, lang) for t in ticks
    ]
    colour = {s: SITE_COLORS[i % len(SITE_COLORS)] for i, s in enumerate(sites)}
    axis_font = {"size": 8, "color": fig._INK, "family": fig._FONT}
    for i, mtype in enumerate(types):
        y1 = top - i * (row_h + gap)
        y0 = y1 - row_h
        mine = trend.filter(pl.col("machine_type") == mtype)
        notes.append(fig._note(0, y1 + 0.03, f"<b>{mtype}</b>", size=11, name="type-title"))
        for j, (key, what) in enumerate((("utilisation_pct", "weekly_util"), ("exams", "x"))):
            k = 2 * i + j + 1
            xa, ya = f"x{k}", f"y{k}"
            shown = [*sites, NETWORK] if j == 0 else [NETWORK]
            for site in shown:
                part = mine.filter(pl.col("site") == site).sort("monday")
                total = site == NETWORK
                label = i18n.text("network_total", lang) if total else site
                weeks = [(d - first).days // 7 for d in part["monday"].to_list()]
                traces.append(
                    fig._scatter(
                        x=weeks,
                        y=part[key].to_list(),
                        mode="lines",
                        line={
                            "color": fig._INK if total else colour[site],
                            "width": 2.2 if total else 1.2,
                        },
                        name=label,
                        legendgroup=label,
                        showlegend=i == 0 and j == 0,
                        connectgaps=False,
                        hovertemplate=f"{mtype} – {label}<br>%{{y:.0f}}<extra></extra>",
                        xaxis=xa,
                        yaxis=ya,
                        meta=f"network-trend-{key}",
                    )
                )
            axes[f"xaxis{k}"] = {
                "domain": list(panels[j]),
                "anchor": ya,
                "range": [-0.5, last_week + 0.5],
                "tickvals": ticks,
                "ticktext": tick_text,
                "tickfont": axis_font,
                "showgrid": False,
                "showline": True,
                "linecolor": "#8a96a3",
            }
            ytitle = i18n.text(what, lang) if j == 0 else i18n.text("network_exams", lang)
            axes[f"yaxis{k}"] = {
                "domain": [y0, y1],
                "anchor": xa,
                "rangemode": "tozero",
                "tickfont": axis_font,
                "title": {"text": ytitle, "font": {"size": 8}},
                "showgrid": True,
                "gridcolor": "#e3e8ed",
                "zeroline": False,
                "showline": True,
                "linecolor": "#8a96a3",
            }
    subtitle = i18n.text("network_trends_subtitle", lang, end=i18n.fmt_date(end))
    annotations = [*overview._header(name, subtitle, title, (), 0.0), *notes]
    layout = overview._layout(annotations, **axes)
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


__all__ = [
    "NetworkPage",
    "period_pages",
    "table_cells",
    "trends_pages",
]
