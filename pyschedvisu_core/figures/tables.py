"""Tables drawn in figures, as one text trace + filled rectangles (plotly's Table trace is
slow): the count, duration and planned / performed tables of a page; :class:`TableDraw` and
:func:`table_traces` also draw the summary pages' tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core import planmatch as pm
from pyschedvisu_core import schedule as sch
from pyschedvisu_core.figures.spec import PageSpec
from pyschedvisu_core.figures.style import (
    _FONT,
    _HEADER_FILL,
    _INK,
    _ROW_FILLS,
    _SUM_FILL,
    Trace,
    _scatter,
)


@dataclass(frozen=True)
class TableDraw:
    """A small table drawn on its own hidden axes ``xaxis{n}``/``yaxis{n}``."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]
    fills: tuple[tuple[str, ...], ...]  # per row, per column
    left: tuple[bool, ...]  # per column: left-aligned
    axis: int
    domain_x: tuple[float, float]
    domain_y: tuple[float, float]
    min_rows: int = 0  # rows reserved, so that short tables keep their row height
    meta: str = "table"


def table_traces(t: TableDraw) -> tuple[list[Trace], dict[str, Any]]:
    """Traces and axes (layout entries) drawing table ``t``."""
    edges = [0.0]
    for w in t.widths:
        edges.append(edges[-1] + w)
    n_rows = len(t.rows) + 1
    pad = 0.04
    by_fill: dict[str, tuple[list[float | None], list[float | None]]] = {}

    def rect(fill: str, r: int, c: int) -> None:
        xs, ys = by_fill.setdefault(fill, ([], []))
        x0, x1, y0, y1 = edges[c] + pad / 2, edges[c + 1] - pad / 2, r + pad, r + 1 - pad
        xs += [x0, x1, x1, x0, x0, None]
        ys += [y0, y0, y1, y1, y0, None]

    tx: list[float] = []
    ty: list[float] = []
    texts: list[str] = []
    colors: list[str] = []
    positions: list[str] = []
    for c in range(len(t.header)):
        rect(_HEADER_FILL, 0, c)
    for r, fills in enumerate(t.fills, start=1):
        for c, fill in enumerate(fills):
            rect(fill, r, c)
    for r, row in enumerate([t.header, *t.rows]):
        for c, value in enumerate(row):
            if not value:
                continue
            left = t.left[c]
            tx.append(edges[c] + 0.12 if left else (edges[c] + edges[c + 1]) / 2)
            ty.append(r + 0.5)
            texts.append(f"<b>{value}</b>" if r == 0 else value)
            colors.append("white" if r == 0 else _INK)
            positions.append("middle right" if left else "middle center")
    xa, ya = f"x{t.axis}", f"y{t.axis}"
    traces = [
        _scatter(
            x=xs,
            y=ys,
            mode="lines",
            fill="toself",
            fillcolor=fill,
            line={"width": 0, "color": fill},
            hoverinfo="skip",
            showlegend=False,
            xaxis=xa,
            yaxis=ya,
            meta=t.meta,
        )
        for fill, (xs, ys) in by_fill.items()
    ]
    traces.append(
        _scatter(
            x=tx,
            y=ty,
            mode="text",
            text=texts,
            textposition=positions,
            textfont={"size": 9, "color": colors, "family": _FONT},
            hoverinfo="skip",
            showlegend=False,
            xaxis=xa,
            yaxis=ya,
            meta=t.meta + "-text",
        )
    )
    hidden = {"visible": False, "fixedrange": True}
    axes = {
        f"xaxis{t.axis}": {
            "domain": list(t.domain_x),
            "range": [0, edges[-1]],
            "anchor": ya,
            **hidden,
        },
        f"yaxis{t.axis}": {
            "domain": list(t.domain_y),
            "range": [max(n_rows, t.min_rows), 0],
            "anchor": xa,
            **hidden,
        },
    }
    return traces, axes


def table_cells(fig: go.Figure | dict[str, Any], meta: str) -> list[str]:
    """Texts of the table drawn with ``meta`` (header first, row by row): for tests and checks."""
    data = fig["data"] if isinstance(fig, dict) else [t.to_plotly_json() for t in fig.data]
    for trace in data:
        if trace.get("meta") == meta + "-text":
            return [str(v).replace("<b>", "").replace("</b>", "") for v in trace["text"]]
    return []


def _fmt_count(value: float | None, row: str) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.1f}" if row == "mean" else f"{value:.0f}"


#: Row label keys (i18n) of the count table rows.
_COUNT_ROW_TEXT = {"no_activity": "no_activity_row", "no_data": "no_data_row"}


def count_table_draw(table: pl.DataFrame, with_days: bool, lang: str) -> TableDraw:
    """The count table, transposed: one column per bin, then Total and Moyen.

    Rows: [Jours], Plages, Exam., Trous, Util. (%), days without activity, days without data
    (blank where zero, so that the exceptions stand out).
    """
    keys = ["days"] if with_days else []
    keys += ["slots", "exams", "gaps", "util", "no_activity", "no_data"]
    header = [i18n.text("date", lang)]
    columns: list[list[str]] = [
        [i18n.text(_COUNT_ROW_TEXT.get(k, k), lang) + (" (%)" if k == "util" else "") for k in keys]
    ]
    col_fill: list[str | None] = [_SUM_FILL]
    for rec in table.iter_rows(named=True):
        row = str(rec["row"])
        header.append(i18n.text(row, lang) if row in ("total", "mean") else str(rec["label"]))
        cells = []
        for k in keys:
            if k == "util":
                cells.append(i18n.fmt_percent(rec[k]))
            elif k in _COUNT_ROW_TEXT:
                cells.append("" if row == "mean" or not rec[k] else _fmt_count(rec[k], row))
            else:
                cells.append(_fmt_count(rec[k], row))
        columns.append(cells)
        col_fill.append(_SUM_FILL if row != "bin" else None)
    rows = tuple(tuple(col[i] for col in columns) for i in range(len(keys)))
    fills = tuple(tuple(cf or _ROW_FILLS[i % 2] for cf in col_fill) for i in range(len(keys)))
    return TableDraw(
        header=tuple(header),
        rows=rows,
        widths=(1.7,) + (1.0,) * (len(header) - 1),
        fills=fills,
        left=(True,) + (False,) * (len(header) - 1),
        axis=4,
        domain_x=(0.0, 1.0),
        domain_y=(0.388, 0.52),
        min_rows=8,
        meta="count-table",
    )


def duration_table_draw(table: pl.DataFrame, spec: PageSpec) -> TableDraw:
    """DESCRIPTION, N.EXA, MOY, MED, P90, MIN, MAX per label, then the TROUS row.

    Durations as mm:ss, or h:mm h from an hour on (gaps last hours: "265:18" read badly).
    """
    lang = spec.language
    rows = []
    fills = []
    stats = ("mean_s", "median_s", "p90_s", "min_s", "max_s")
    for i, rec in enumerate(table.iter_rows(named=True)):
        label = str(rec["label"])
        if label == sch.GAPS:
            name, swatch = i18n.text("gaps_row", lang), _SUM_FILL
        else:
            name = i18n.description_label(label, lang)
            swatch = sch.color_of(label, spec.description_order, spec.colors)
        rows.append(("", name, str(rec["n"]), *(i18n.fmt_duration(rec[k]) for k in stats)))
        base = _SUM_FILL if label == sch.GAPS else _ROW_FILLS[i % 2]
        fills.append((swatch, *([base] * (len(stats) + 2))))
    keys = ("description", "n", "moy", "median", "p90", "min", "max")
    return TableDraw(
        header=("", *(i18n.text(k, lang) for k in keys)),
        rows=tuple(rows),
        widths=(0.3, 2.9, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0),
        fills=tuple(fills),
        left=(False, True, False, False, False, False, False, False),
        axis=5,
        domain_x=(0.5, 1.0),
        domain_y=(0.0, 0.268),
        min_rows=max(len(rows) + 1, 11),
        meta="duration-table",
    )


def plan_table_draw(
    table: pl.DataFrame, spec: PageSpec, domain_y: tuple[float, float]
) -> TableDraw:
    """The planned / performed table: per description, then the total (see
    :func:`planmatch.plan_table`); delays signed (``-`` early), as mm:ss or h:mm h."""
    lang = spec.language
    rows = []
    fills = []
    for i, rec in enumerate(table.iter_rows(named=True)):
        label = str(rec["label"])
        if label == pm.TOTAL:
            name, swatch = i18n.text("total", lang), _SUM_FILL
        else:
            name = i18n.description_label(label, lang)
            swatch = sch.color_of(label, spec.description_order, spec.colors)
        cells = (
            str(rec["planned"]),
            str(rec["performed"]),
            str(rec["no_shows"] or ""),
            str(rec["unplanned"] or ""),
            str(rec["added_same_day"] or ""),
            i18n.fmt_percent(rec["realised_pct"]),
            i18n.fmt_percent(rec["util_plan_pct"]),
            i18n.fmt_delay(rec["delay_median_s"]),
            i18n.fmt_delay(rec["delay_p90_s"]),
        )
        rows.append(("", name, *cells))
        base = _SUM_FILL if label == pm.TOTAL else _ROW_FILLS[i % 2]
        fills.append((swatch, *([base] * (len(cells) + 1))))
    keys = (
        "description",
        "planned",
        "performed",
        "no_shows",
        "unplanned",
        "added_same_day",
        "realised_pct",
        "util_plan",
        "delay_median",
        "delay_p90",
    )
    return TableDraw(
        header=("", *(i18n.text(k, lang) for k in keys)),
        rows=tuple(rows),
        widths=(0.3, 2.6, 0.8, 0.8, 0.85, 0.95, 0.95, 0.9, 1.1, 1.05, 1.05),
        fills=tuple(fills),
        left=(False, True) + (False,) * 9,
        axis=6,
        domain_x=(0.0, 1.0),
        domain_y=domain_y,
        meta="plan-table",
    )
