"""The "Injection → scan" page of a PET machine (DOMAIN §8): uptake time per description
with its target window shaded, administered activity against its reference, the numbers of
:func:`uptake.uptake_table` and notes. It follows the machine's page for each period (the
weekly schedule's injection markers are drawn by :func:`figures.injection_traces`).

Pure: a plotly figure dict from the study table, like :mod:`pyschedvisu_core.figures`, whose
page geometry, table drawing and stamps it shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core import schedule as sch
from pyschedvisu_core import uptake as upt
from pyschedvisu_core.figures import (
    _FONT,
    _HEADER_FILL,
    _INK,
    _MUTED,
    _NO_TEMPLATE,
    _ROW_FILLS,
    _SUM_FILL,
    PAGE_HEIGHT,
    PAGE_WIDTH,
    PageSpec,
    TableDraw,
    Trace,
    _note,
    _scatter,
    table_traces,
    wrap,
)
from pyschedvisu_core.periods import week_header

#: Vertical domains of the panel page: uptake, activity, table.
UPTAKE_Y = (0.60, 0.885)
ACTIVITY_Y = (0.345, 0.54)
UPTAKE_TABLE_Y = (0.115, 0.29)
#: The i18n keys of the injection → scan table's columns, in order (the page and the HTML).
TABLE_KEYS: tuple[str, ...] = (
    "description",
    "n",
    "uptake_median",
    "uptake_spread",
    "window",
    "in_window",
    "activity_median",
    "activity_p90",
    "activity_ref",
    "flagged",
    "no_injection",
)
#: Above this many studies of one description its points are left out (the box stays).
UPTAKE_POINTS_MAX = 300
_WINDOW_FILL = "#d8eed4"
_WINDOW_LINE = "#2e7d32"
_REFERENCE = "#b03a2e"


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value / 60:.0f}"


def _mbq(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _uptake_labels(frame: pl.DataFrame, spec: PageSpec) -> list[str]:
    """Descriptions of the PET studies in the machine's order, OTHER (and unknown ones) last."""
    present = set(frame.get_column("description").to_list())
    known = [d for d in spec.description_order if d in present and d != sch.OTHER]
    rest = sorted(d for d in present if d not in known and d != sch.OTHER)
    return known + rest + ([sch.OTHER] if sch.OTHER in present else [])


def _strip_traces(
    rows: Sequence[tuple[str, pl.Series, pl.Series | None]],
    spec: PageSpec,
    axis: str,
    meta: str,
) -> list[Trace]:
    """One horizontal box per row (P25-P75 box, median, P10-P90 whiskers) and, up to
    :data:`UPTAKE_POINTS_MAX` studies, its points (jittered; ``inside`` False: outlined)."""
    traces: list[Trace] = []
    xa, ya = f"x{axis}", f"y{axis}"
    med_x: list[float | None] = []
    med_y: list[float | None] = []
    whisk_x: list[float | None] = []
    whisk_y: list[float | None] = []
    px: list[float] = []
    py: list[float] = []
    pc: list[str] = []
    pw: list[float] = []
    for i, (label, values, inside) in enumerate(rows):
        vals = values.drop_nulls()
        if vals.len() == 0:
            continue
        color = sch.color_of(label, spec.description_order, spec.colors)
        q = {
            p: float(vals.quantile(p, interpolation="linear") or 0.0)
            for p in (0.1, 0.25, 0.5, 0.75, 0.9)
        }
        h = 0.2
        traces.append(
            _scatter(
                x=[q[0.25], q[0.75], q[0.75], q[0.25], q[0.25]],
                y=[i - h, i - h, i + h, i + h, i - h],
                mode="lines",
                fill="toself",
                fillcolor=color,
                opacity=0.45,
                line={"color": color, "width": 1},
                hoverinfo="skip",
                showlegend=False,
                xaxis=xa,
                yaxis=ya,
                meta=meta + "-box",
            )
        )
        med_x += [q[0.5], q[0.5], None]
        med_y += [i - h - 0.05, i + h + 0.05, None]
        whisk_x += [q[0.1], q[0.25], None, q[0.75], q[0.9], None]
        whisk_x += [q[0.1], q[0.1], None, q[0.9], q[0.9], None]
        whisk_y += [i, i, None, i, i, None, i - 0.08, i + 0.08, None, i - 0.08, i + 0.08, None]
        if vals.len() <= UPTAKE_POINTS_MAX:
            flags = inside.to_list() if inside is not None else [None] * values.len()
            for k, (v, ok) in enumerate(zip(values.to_list(), flags, strict=True)):
                if v is None:
                    continue
                px.append(v)
                py.append(i + 0.32 * (((k * 7919) % 13) / 12 - 0.5))
                pc.append(color)
                pw.append(1.2 if ok is False else 0.0)
    traces.append(
        _scatter(
            x=whisk_x,
            y=whisk_y,
            mode="lines",
            line={"color": _INK, "width": 0.8},
            hoverinfo="skip",
            showlegend=False,
            xaxis=xa,
            yaxis=ya,
            meta=meta + "-whiskers",
        )
    )
    if px:
        traces.append(
            _scatter(
                x=px,
                y=py,
                mode="markers",
                marker={
                    "size": 5,
                    "color": pc,
                    "opacity": 0.85,
                    "line": {"color": _INK, "width": pw},
                },
                hoverinfo="skip",
                showlegend=False,
                xaxis=xa,
                yaxis=ya,
                meta=meta + "-points",
            )
        )
    traces.append(
        _scatter(
            x=med_x,
            y=med_y,
            mode="lines",
            line={"color": _INK, "width": 1.8},
            hoverinfo="skip",
            showlegend=False,
            xaxis=xa,
            yaxis=ya,
            meta=meta + "-medians",
        )
    )
    return traces


def row_name(label: str, lang: str) -> str:
    if label == upt.TOTAL:
        return i18n.text("total", lang).upper()
    if label == upt.WINDOWED:
        return i18n.text("windowed_row", lang)
    return i18n.description_label(label, lang)


def table_draw(table: pl.DataFrame, spec: PageSpec) -> TableDraw:
    """The panel's table: per description, then TOTAL (``uptake.uptake_table``)."""
    lang = spec.language
    rows = []
    fills = []
    for i, rec in enumerate(table.iter_rows(named=True)):
        label = str(rec["label"])
        total = label in (upt.TOTAL, upt.WINDOWED)
        name = row_name(label, lang)
        swatch = _SUM_FILL if total else sch.color_of(label, spec.description_order, spec.colors)
        window = "-"
        if rec["min_s"] is not None and rec["max_s"] is not None:
            window = f"{_minutes(rec['min_s'])}–{_minutes(rec['max_s'])}"
            if rec["target_s"] is not None:
                window += f" ({_minutes(rec['target_s'])})"
        spread = f"{_minutes(rec['p10_s'])}–{_minutes(rec['p90_s'])}" if rec["n_uptake"] else "-"
        rows.append(
            (
                "",
                name,
                str(rec["n"]),
                _minutes(rec["median_s"]),
                spread,
                window if not total else "",
                i18n.fmt_percent(rec["in_window_pct"]),
                _mbq(rec["activity_median_mbq"]),
                _mbq(rec["activity_p90_mbq"]),
                _mbq(rec["activity_ref_mbq"]) if not total else "",
                str(rec["flagged"] or ""),
                str(rec["no_injection"] or ""),
            )
        )
        base = _SUM_FILL if total else _ROW_FILLS[i % 2]
        fills.append((swatch, *([base] * 11)))
    return TableDraw(
        header=("", *(i18n.text(k, lang) for k in TABLE_KEYS)),
        rows=tuple(rows),
        widths=(0.3, 2.0, 0.8, 1.15, 1.0, 1.2, 1.05, 1.05, 1.0, 0.8, 1.05, 1.05),
        fills=tuple(fills),
        left=(False, True, *(False,) * 10),
        axis=6,
        domain_x=(0.0, 1.0),
        domain_y=UPTAKE_TABLE_Y,
        min_rows=max(len(rows) + 1, 9),
        meta="uptake-table",
    )


def notes_lines(frame: pl.DataFrame, table: pl.DataFrame, spec: PageSpec) -> list[str]:
    """The panel's notes: what is measured, the windows and where they come from, the
    activity reference, the studies left out (flagged, no injection time, with why)."""
    lang = spec.language
    lines = [i18n.text("note_uptake", lang)]
    used = set(table.get_column("window").drop_nulls().to_list())
    windows = [w for w in spec.uptake_windows if w.name in used and w.has_window]
    if windows:
        parts = []
        for w in windows:
            text = f"{w.name} {_minutes(w.min_s)}–{_minutes(w.max_s)} min"
            if w.target_s is not None:
                text += " " + i18n.text("target_of", lang, minutes=_minutes(w.target_s))
            if w.source:
                text += f" ({w.source})"
            parts.append(text)
        lines.append(i18n.text("note_windows", lang, windows="; ".join(parts)))
    else:
        lines.append(i18n.text("note_no_window", lang))
    refs = [w for w in spec.uptake_windows if w.name in used and w.activity_ref_mbq is not None]
    lines.append(
        i18n.text(
            "note_activity",
            lang,
            refs="; ".join(f"{w.name} {_mbq(w.activity_ref_mbq)} MBq" for w in refs)
            or i18n.text("none", lang),
        )
    )
    after = frame.filter(pl.col("uptake_flag") == upt.FLAG_AFTER_SCAN).height
    older = frame.filter(pl.col("uptake_flag") == upt.FLAG_OVER_24H).height
    out = [wrap(x) for x in lines]
    flagged = [i18n.text("flag_after", lang, n=after)] if after else []
    flagged += [i18n.text("flag_older", lang, n=older)] if older else []
    if flagged:
        text = "⚠ " + i18n.text("note_flagged", lang, flagged=", ".join(flagged))
        out.append("<b>" + wrap(text) + "</b>")
    unread = frame.filter(pl.col("injected_at").is_null())
    if unread.height:
        codes = (
            unread.select(
                pl.col("radiopharm_issue")
                .fill_null("no_pet_series")
                .str.split(":")
                .list.first()
                .alias("code")
            )
            .group_by("code")
            .len()
            .sort("len", "code", descending=[True, False])
        )
        why = ", ".join(f"{c} {n}" for c, n in codes.iter_rows())
        out.append(wrap(i18n.text("note_unread", lang, n=unread.height, why=why)))
    return out


def page_dict(
    studies: pl.DataFrame, spec: PageSpec, table: pl.DataFrame | None = None
) -> dict[str, Any]:
    """The "Injection → scan" page of one PET machine and period (DOMAIN §8).

    Uptake (first PET acquisition start − injection) per description, with the target
    window shaded; the administered activity per description against its reference; the
    numbers (``uptake.uptake_table``, given as ``table`` when the caller has it), and notes.
    Flagged injections (after the scan, more than 24 h before) are left out of the figures
    and counted. Like the machine page: ``generated``, ``footer`` and ``notes`` annotations
    for :func:`stamp`; no patient data.
    """
    lang = spec.language
    frame = upt.with_windows(
        studies.filter(pl.col("date").is_in(list(spec.days))), spec.uptake_windows
    )
    if table is None:
        table = upt.uptake_table(frame, spec.description_order, spec.uptake_windows)
    labels = _uptake_labels(frame, spec)
    by_name = {w.name: w for w in spec.uptake_windows}
    rows_up: list[tuple[str, pl.Series, pl.Series | None]] = []
    rows_act: list[tuple[str, pl.Series, pl.Series | None]] = []
    shapes: list[dict[str, Any]] = [
        {
            "type": "line",
            "xref": "paper",
            "yref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": 0.952,
            "y1": 0.952,
            "line": {"color": _HEADER_FILL, "width": 2},
        }
    ]
    info = {r["label"]: r for r in table.iter_rows(named=True)}
    for i, label in enumerate(labels):
        part = frame.filter(pl.col("description") == label)
        ok = part.filter(pl.col("_ok"))
        rows_up.append((label, ok.get_column("uptake_s") / 60, ok.get_column("_in")))
        rows_act.append((label, part.get_column("activity_mbq"), None))
        rec = info.get(label)
        w = by_name.get(str(rec["window"])) if rec is not None and rec["window"] else None
        if w is not None and w.min_s is not None and w.max_s is not None:
            shapes.append(
                {
                    "type": "rect",
                    "xref": "x7",
                    "yref": "y7",
                    "x0": w.min_s / 60,
                    "x1": w.max_s / 60,
                    "y0": i - 0.42,
                    "y1": i + 0.42,
                    "fillcolor": _WINDOW_FILL,
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
            if w.target_s is not None:
                shapes.append(
                    {
                        "type": "line",
                        "xref": "x7",
                        "yref": "y7",
                        "x0": w.target_s / 60,
                        "x1": w.target_s / 60,
                        "y0": i - 0.42,
                        "y1": i + 0.42,
                        "line": {"color": _WINDOW_LINE, "width": 1.5, "dash": "dot"},
                        "layer": "above",
                    }
                )
        if w is not None and w.activity_ref_mbq is not None:
            shapes.append(
                {
                    "type": "line",
                    "xref": "x8",
                    "yref": "y8",
                    "x0": w.activity_ref_mbq,
                    "x1": w.activity_ref_mbq,
                    "y0": i - 0.42,
                    "y1": i + 0.42,
                    "line": {"color": _REFERENCE, "width": 2, "dash": "dash"},
                    "layer": "above",
                }
            )
    traces = _strip_traces(rows_up, spec, "7", "uptake")
    traces += _strip_traces(rows_act, spec, "8", "activity")
    # legend entries: what the shading, the lines and the outlined points mean
    legend_items = [
        ("legend_window", {"symbol": "square", "size": 10, "color": _WINDOW_FILL}, None),
        ("legend_target", None, {"color": _WINDOW_LINE, "width": 1.5, "dash": "dot"}),
        (
            "legend_outside",
            {"size": 6, "color": "white", "line": {"color": _INK, "width": 1}},
            None,
        ),
        ("legend_reference", None, {"color": _REFERENCE, "width": 2, "dash": "dash"}),
        ("legend_box", {"symbol": "square", "size": 10, "color": "#c8d0d8"}, None),
    ]
    for key, marker, line in legend_items:
        traces.append(
            _scatter(
                x=[None],
                y=[None],
                mode="markers" if marker else "lines",
                name=i18n.text(key, lang),
                showlegend=True,
                hoverinfo="skip",
                xaxis="x7",
                yaxis="y7",
                meta="uptake-legend",
                **({"marker": marker} if marker else {"line": line}),
            )
        )
    tr, table_axes = table_traces(table_draw(table, spec))
    traces += tr

    def values(rows: Sequence[tuple[str, pl.Series, pl.Series | None]]) -> list[float]:
        return [float(v) for _, s, _ in rows for v in s.drop_nulls().to_list()]

    ups = values(rows_up) + [w.max_s / 60 for w in spec.uptake_windows if w.max_s is not None]
    up_range = [min(0.0, min(ups, default=0.0)), max(ups, default=1.0) * 1.06 + 1]
    acts = values(rows_act)
    acts += [w.activity_ref_mbq for w in spec.uptake_windows if w.activity_ref_mbq]
    low, high = min(acts, default=1.0), max(acts, default=1.0)
    # tracers an order of magnitude apart (Rb-82 GBq, FDG MBq): a log axis keeps both readable
    act_log = high > 4 * low > 0
    act_range = (
        [math.log10(low / 1.25), math.log10(high * 1.25)] if act_log else [0.0, high * 1.06 + 1]
    )
    # plain numbers at 1, 2, 5 x 10^k on a log axis (plotly's minor labels read "2" for 200)
    act_ticks = [
        m * 10**k
        for k in range(-1, 6)
        for m in (1, 2, 5)
        if act_log and low / 1.25 <= m * 10**k <= high * 1.25
    ]
    n = max(len(labels), 1)
    names = [i18n.description_label(lab, lang) for lab in labels]
    axis_font = {"size": 9, "color": _INK, "family": _FONT}

    def axes(
        x_title: str, x_range: list[float], domain: tuple[float, float], k: str, log: bool = False
    ) -> dict[str, Any]:
        return {
            f"xaxis{k}": {
                "domain": [0.14, 1.0],
                "anchor": f"y{k}",
                "type": "log" if log else "linear",
                "range": x_range,
                "title": {"text": x_title, "font": {"size": 9}, "standoff": 4},
                "tickfont": axis_font,
                "ticklabeloverflow": "allow",
                "showgrid": True,
                "gridcolor": "#e3e8ed",
                "zeroline": True,
                "zerolinecolor": "#c8d0d8",
                "showline": True,
                "linecolor": "#8a96a3",
                "mirror": True,
            },
            f"yaxis{k}": {
                "domain": list(domain),
                "anchor": f"x{k}",
                "range": [n - 0.5, -0.5],
                "tickvals": list(range(len(labels))),
                "ticktext": names,
                "tickfont": axis_font,
                "ticklabeloverflow": "allow",
                "showgrid": False,
                "zeroline": False,
                "showline": True,
                "linecolor": "#8a96a3",
                "mirror": True,
            },
        }

    parts = [
        week_header(spec.start, spec.end, lang),
        i18n.text("from_to", lang, start=i18n.fmt_date(spec.start), end=i18n.fmt_date(spec.end)),
    ]
    if spec.period_start is not None and spec.period_start < spec.start:
        parts.append(i18n.text("trimmed", lang, start=i18n.fmt_date(spec.start)))
    report = i18n.text("report", lang, period=spec.period_label).capitalize()
    annotations = [
        _note(0, 1.0, f"<b>{i18n.text('uptake_bookmark', lang)}</b>", size=22, name="title"),
        _note(0, 0.972, " — ".join([report, *parts]), size=12, color=_MUTED, name="subtitle"),
        _note(1, 1.0, f"<b>{spec.machine}</b>", size=22, xanchor="right", name="machine"),
        _note(1, 0.972, "", size=10, color=_MUTED, xanchor="right", name="generated"),
        _note(
            0,
            UPTAKE_Y[1] + 0.026,
            f"<b>{i18n.text('uptake_panel', lang)}</b>",
            size=11,
            name="uptake-title",
        ),
        _note(
            0,
            ACTIVITY_Y[1] + 0.026,
            f"<b>{i18n.text('activity_panel', lang)}</b>",
            size=11,
            name="activity-title",
        ),
        _note(
            0,
            UPTAKE_TABLE_Y[0] - 0.008,
            "<br>".join(notes_lines(frame, table, spec)),
            size=8,
            color=_MUTED,
            name="notes",
        ),
        _note(0, -0.008, "", size=8, color=_MUTED, yanchor="top", name="footer"),
    ]
    if not any(s.drop_nulls().len() for _, s, _ in rows_up):  # no uptake time to show
        annotations.append(
            _note(
                0.5,
                sum(UPTAKE_Y) / 2,
                i18n.text("no_injection_data", lang),
                size=11,
                xanchor="center",
                color=_MUTED,
            )
        )
    layout: dict[str, Any] = {
        "template": _NO_TEMPLATE,
        "width": PAGE_WIDTH,
        "height": PAGE_HEIGHT,
        "margin": {"l": 50, "r": 25, "t": 25, "b": 28},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"family": _FONT, "color": _INK, "size": 10},
        "showlegend": True,
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 0.944,
            "xanchor": "left",
            "yanchor": "top",
            "font": {"size": 9},
            "itemsizing": "trace",
            "bgcolor": "rgba(0,0,0,0)",
        },
        "hovermode": "closest",
        **axes(i18n.text("uptake_axis", lang), up_range, UPTAKE_Y, "7"),
        **axes(i18n.text("activity_axis", lang), act_range, ACTIVITY_Y, "8", act_log),
        **table_axes,
        "shapes": shapes,
        "annotations": annotations,
    }
    if act_ticks:
        layout["xaxis8"].update(tickvals=act_ticks, ticktext=[f"{v:g}" for v in act_ticks])
    return {"data": traces, "layout": layout}
