"""The whole A4 page of one machine and period: its layout, header and notes around the
drawings of the sibling modules."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core import schedule as sch
from pyschedvisu_core.figures.axes import _hours, day_positions, hour_range, tick_marks
from pyschedvisu_core.figures.distributions import distribution_traces, violin_traces
from pyschedvisu_core.figures.planned_slots import plan_hours, plan_outline_traces
from pyschedvisu_core.figures.schedule_grid import (
    injection_marks,
    injection_traces,
    schedule_traces,
    status_traces,
)
from pyschedvisu_core.figures.spec import (
    DISTRIBUTION_MIN_DAYS,
    EDGE_ONLY_DAYS,
    NOTE_MAX_DAYS,
    PAGE_HEIGHT,
    PAGE_WIDTH,
    PLAN_OUTLINE_DAYS,
    PLAN_ROW_H,
    SCHEDULE_Y,
    SEGMENT_DAYS,
    WEEK_SPACER,
    PageNumbers,
    PagePlan,
    PageSpec,
    page_numbers,
    page_plan_table,
)
from pyschedvisu_core.figures.style import (
    _FONT,
    _HEADER_FILL,
    _INK,
    _MUTED,
    _NO_TEMPLATE,
    _note,
    wrap,
)
from pyschedvisu_core.figures.tables import (
    TableDraw,
    count_table_draw,
    duration_table_draw,
    plan_table_draw,
    table_traces,
)
from pyschedvisu_core.periods import bin_kind, week_header


def notes_lines(spec: PageSpec, n_days: int, overlap_days: Sequence[dt.date] = ()) -> list[str]:
    """The explanatory notes printed under the count table (and the data-quality findings)."""
    lang = spec.language
    window = ""
    if spec.service_from is not None and spec.service_until is not None:
        window = i18n.text(
            "service_window",
            lang,
            start=i18n.fmt_date(spec.service_from),
            end=i18n.fmt_date(spec.service_until),
        )
    lines = [
        i18n.text("note_slots", lang, window=window),
        i18n.text("note_util", lang),
        i18n.text("note_gaps", lang, gap=spec.gap_minutes, prep=spec.prep_minutes),
        i18n.text("note_durations", lang),
    ]
    if spec.retake_descriptions:
        lines.append(i18n.text("note_takes", lang, labels=", ".join(spec.retake_descriptions)))
    if n_days > SEGMENT_DAYS:
        lines.append(i18n.text("note_occupancy", lang))
    elif n_days > EDGE_ONLY_DAYS:
        lines.append(i18n.text("note_edges", lang, days=EDGE_ONLY_DAYS))
    else:
        lines.append(i18n.text("note_boxes", lang))
    if overlap_days:
        listed = ", ".join(i18n.fmt_date(d) for d in overlap_days[:NOTE_MAX_DAYS])
        if len(overlap_days) > NOTE_MAX_DAYS:
            listed += f" (+{len(overlap_days) - NOTE_MAX_DAYS})"
        text = "⚠ " + i18n.text("overlaps_note", lang, days=listed)
        return [*(wrap(x) for x in lines), "<b>" + wrap(text) + "</b>"]
    return [wrap(x) for x in lines]


def overlap_days(studies: pl.DataFrame) -> list[dt.date]:
    """Days with a study that another patient's series overlaps (``foreign_overlaps``)."""
    if "foreign_overlaps" not in studies.columns:
        return []
    found = studies.filter(pl.col("foreign_overlaps").fill_null(0) > 0)
    return sorted(found["date"].unique().to_list())


def page_figure(studies: pl.DataFrame, spec: PageSpec) -> go.Figure:
    """The whole A4 page of one machine and period, as a validated plotly figure.

    ``studies``: rows of ``schema.STUDY_SCHEMA`` for this machine; only those on the business
    days of ``spec.days`` are drawn and counted. Same content as :func:`page_dict`.
    """
    return go.Figure(page_dict(studies, spec))


def page_dict(
    studies: pl.DataFrame,
    spec: PageSpec,
    numbers: PageNumbers | None = None,
    plan: PagePlan | None = None,
) -> dict[str, Any]:
    """The page as a plain figure dict (``data``, ``layout``), ready for JSON / plotly.js.

    What :func:`page_figure` validates; the report uses this one directly, since plotly.py's
    validation of tens of traces took longer than computing the page. ``numbers``: the page's
    :func:`page_numbers` when the caller already has them. ``plan`` (a worklist is
    configured): a planned / performed table between the schedule and the count table, the
    schedule shortened for it, and planned slots outlined in the schedule of weekly and
    2-weekly pages; without it the page is as it always was.
    """
    lang = spec.language
    day_set = list(spec.days)
    num = numbers or page_numbers(studies, spec, plan)
    labeled, labels, gaps, counts = num.labeled, num.labels, num.gaps, num.counts
    n_days = len(day_set)
    kind = bin_kind(n_days)
    show_dist = n_days >= DISTRIBUTION_MIN_DAYS

    spacer = WEEK_SPACER if n_days <= SEGMENT_DAYS else 0.0
    positions = day_positions(day_set, spacer)
    top, bottom = hour_range(labeled, spec.day_start_hour, spec.day_end_hour)
    marks = injection_marks(labeled) if kind == "day" else labeled.clear()
    if marks.height:  # the injection before each PET study shows too (DOMAIN §8)
        top = min(top, math.floor(marks.select(_hours("injected_at").min()).item()))
    outlines = plan is not None and n_days <= PLAN_OUTLINE_DAYS
    if plan is not None and outlines and (span := plan_hours(plan, spec)) is not None:
        top, bottom = min(top, math.floor(span[0])), max(bottom, math.ceil(span[1]))
    sched_y = SCHEDULE_Y
    plan_draw: TableDraw | None = None
    plan_top = 0.0
    if plan is not None:
        table = num.plan if num.plan is not None else page_plan_table(plan, spec)
        plan_bottom = 0.552
        plan_top = plan_bottom + (PLAN_ROW_H * (table.height + 1) if table.height else 0.0)
        if table.height:
            plan_draw = plan_table_draw(table, spec, (plan_bottom, plan_top))
        sched_y = (plan_top + 0.036, SCHEDULE_Y[1])
    sched_x = [0.0, 0.80] if show_dist else [0.0, 1.0]
    xmax = positions[-1] if positions else 0.0
    # Pixels of the schedule, to draw the hatching at 45° on the page.
    px_w = (PAGE_WIDTH - 75) * (sched_x[1] - sched_x[0]) / (xmax + 1.4)
    px_h = (PAGE_HEIGHT - 53) * (sched_y[1] - sched_y[0]) / max(bottom - top, 1)
    bands, status_notes = status_traces(num.daily, spec, spacer, (top, bottom))
    traces: list[Any] = bands
    plan_notes: list[dict[str, Any]] = []
    if plan is not None and outlines:
        slot_traces, plan_notes = plan_outline_traces(plan, spec, spacer, top)
        traces += slot_traces
    traces += schedule_traces(labeled, spec, labels, gaps, px_w / px_h, 1 / px_h)
    if marks.height:
        traces += injection_traces(labeled, spec, spacer)
    if show_dist:
        firsts = [lab for lab in labels if sch.base_description(lab) != sch.OTHER][:3]
        dist = sch.time_of_day_distribution(
            labeled, firsts, spec.distribution_sample_s, spec.distribution_smooth_s
        )
        traces += distribution_traces(dist, spec, firsts)
    table_axes: dict[str, Any] = {}
    for draw in (
        count_table_draw(counts, with_days=kind != "day", lang=lang),
        duration_table_draw(num.durations, spec),
        *((plan_draw,) if plan_draw is not None else ()),
    ):
        tr, ax = table_traces(draw)
        traces += tr
        table_axes.update(ax)
    violins = violin_traces(labeled, labels, spec)
    traces += violins
    # An explicit duration range from the data, not plotly's autorange (the print form draws
    # the violins as shapes): every study, point and violin vertex inside, with headroom.
    longest = labeled["duration_s"].drop_nulls().max() if labeled.height else None
    longest_min = float(longest) / 60 if isinstance(longest, int | float) else None

    tickvals, ticktext, bounds = tick_marks(day_set, positions, lang)
    total = counts.filter(pl.col("row") == "total")
    overall = total["util"][0] if total.height else None

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
        },
    ]
    shapes += [
        {
            "type": "line",
            "xref": "x",
            "yref": "y domain",
            "x0": b,
            "x1": b,
            "y0": 0,
            "y1": 1,
            "line": {"color": "#c8d0d8", "width": 0.8},
            "layer": "below",
        }
        for b in bounds
    ]
    parts = [
        week_header(spec.start, spec.end, lang),
        i18n.text("from_to", lang, start=i18n.fmt_date(spec.start), end=i18n.fmt_date(spec.end)),
    ]
    if spec.period_start is not None and spec.period_start < spec.start:
        parts.append(i18n.text("trimmed", lang, start=i18n.fmt_date(spec.start)))
    subtitle = " — ".join(parts)
    annotations: list[dict[str, Any]] = [
        _note(
            0,
            1.0,
            f"<b>{i18n.text('report', lang, period=spec.period_label).capitalize()}</b>",
            size=22,
            name="title",
        ),
        _note(0, 0.972, subtitle, size=12, color=_MUTED, name="subtitle"),
        _note(1, 1.0, f"<b>{spec.machine}</b>", size=22, xanchor="right", name="machine"),
        _note(1, 0.972, "", size=10, color=_MUTED, xanchor="right", name="generated"),
        _note(
            1,
            0.537,
            f"<b>{i18n.text('overall', lang, util=i18n.fmt_percent(overall))}</b>",
            size=10,
            xanchor="right",
            name="overall",
        ),
        _note(
            0,
            0.382,
            "<br>".join(notes_lines(spec, n_days, overlap_days(num.studies))),
            size=8,
            color=_MUTED,
            name="notes",
        ),
        _note(0, 0.284, f"<b>{i18n.text('durations', lang)}</b>", size=11, name="violin-title"),
        _note(0, -0.008, "", size=8, color=_MUTED, yanchor="top", name="footer"),
        *status_notes,
        *plan_notes,
    ]
    if plan is not None:
        n_plan = sum(1 for d in spec.days if d in plan.days)
        days_text = (
            i18n.text("plan_days", lang, n=n_plan, total=n_days)
            if n_plan
            else i18n.text("plan_days_none", lang)
        )
        # the panel's definitions on its title line: the notes under the count table are full
        annotations += [
            _note(
                0,
                plan_top + 0.017,
                f"<b>{i18n.text('plan_title', lang)}</b> — {days_text}",
                size=10,
                name="plan-title",
            ),
            _note(
                1,
                plan_top + 0.0155,
                i18n.text("plan_definitions", lang),
                size=8,
                color=_MUTED,
                xanchor="right",
                name="plan-definitions",
            ),
        ]
    images = [
        {
            "source": src,
            "xref": "paper",
            "yref": "paper",
            "x": 0.62 - 0.12 * i,
            "y": 1.0,
            "sizex": 0.11,
            "sizey": 0.04,
            "xanchor": "right",
            "yanchor": "top",
            "layer": "above",
        }
        for i, src in enumerate(spec.logos)
    ]
    # Tick labels are laid out inside the page margins: "allow" spares plotly.js measuring
    # every label to hide overflowing ones (a tenth of the drawing time of a page).
    axis_font = {"size": 9, "color": _INK, "family": _FONT}
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
            "itemsizing": "constant",
            "bgcolor": "rgba(0,0,0,0)",
            "tracegroupgap": 2,
        },
        "hovermode": "closest",
        "xaxis": {
            "domain": sched_x,
            "range": [-0.7, xmax + 0.7],
            "tickvals": tickvals,
            "ticktext": ticktext,
            "tickfont": axis_font,
            "ticklabeloverflow": "allow",
            "showgrid": False,
            "zeroline": False,
            "showline": True,
            "linecolor": "#8a96a3",
            "mirror": True,
            "ticks": "",
            "anchor": "y",
            "fixedrange": False,
        },
        "yaxis": {
            "domain": list(sched_y),
            "range": [bottom, top],
            "tickvals": list(range(top, bottom + 1)),
            "ticktext": [f"{h:02d}h" for h in range(top, bottom + 1)],
            "tickfont": axis_font,
            "ticklabeloverflow": "allow",
            "showgrid": True,
            "gridcolor": "#e3e8ed",
            "zeroline": False,
            "showline": True,
            "linecolor": "#8a96a3",
            "mirror": True,
            "anchor": "x",
        },
        "xaxis2": {
            "domain": [0.0, 0.47],
            "anchor": "y2",
            "tickfont": axis_font,
            "ticklabeloverflow": "allow",
            "range": [-0.6, max(len(labels), 1) - 0.4],
            "showgrid": False,
            "zeroline": False,
            "tickvals": list(range(len(labels))),
            "ticktext": [i18n.description_label(lab, lang) for lab in labels],
            "showline": True,
            "linecolor": "#8a96a3",
            "tickangle": -35 if len(labels) > 4 else 0,
        },
        "yaxis2": {
            "domain": [0.06, 0.262],
            "anchor": "x2",
            "tickfont": axis_font,
            "ticklabeloverflow": "allow",
            "title": {"text": i18n.text("duration_axis", lang), "font": {"size": 9}},
            "showgrid": True,
            "gridcolor": "#e3e8ed",
            "zeroline": False,
            "rangemode": "tozero",
            **({"range": [0, longest_min * 1.08 + 0.5]} if longest_min else {}),
            "showline": True,
            "linecolor": "#8a96a3",
        },
        **table_axes,
        "shapes": shapes,
        "annotations": annotations,
    }
    if images:  # plotly.py leaves an empty list out: so do we (same JSON either way)
        layout["images"] = images
    if show_dist:
        layout["xaxis3"] = {
            "domain": [0.83, 1.0],
            "anchor": "y3",
            "range": [0, 1.05],
            "tickvals": [0, 0.5, 1],
            "ticktext": ["0", "50 %", "100 %"],
            "title": {
                "text": i18n.text("distribution_axis", lang),
                "font": {"size": 8},
                "standoff": 2,
            },
            "tickfont": axis_font,
            "ticklabeloverflow": "allow",
            "showgrid": True,
            "gridcolor": "#e3e8ed",
            "zeroline": False,
            "showline": True,
            "linecolor": "#8a96a3",
            "mirror": True,
        }
        layout["legend2"] = {
            "title": {
                "text": "<b>" + i18n.text("distribution", lang) + "</b>",
                "font": {"size": 8},
            },
            "x": 0.835,
            "y": sched_y[0] + 0.004,
            "xanchor": "left",
            "yanchor": "bottom",
            "font": {"size": 8},
            "bgcolor": "rgba(255,255,255,0.85)",
            "bordercolor": "#c8d0d8",
            "borderwidth": 0.5,
        }
        layout["yaxis3"] = {
            "domain": list(sched_y),
            "anchor": "x3",
            "matches": "y",
            "range": [bottom, top],
            "showticklabels": False,
            "showgrid": True,
            "gridcolor": "#e3e8ed",
            "zeroline": False,
            "showline": True,
            "linecolor": "#8a96a3",
            "mirror": True,
        }
    return {"data": traces, "layout": layout}
