"""Durations and times of day: a violin of durations per label, and the time-of-day curves
beside the schedule of long periods."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core import schedule as sch
from pyschedvisu_core.figures.spec import PageSpec
from pyschedvisu_core.figures.style import _INK, Trace, _scatter, typed_array


def violin_traces(labeled: pl.DataFrame, labels: Sequence[str], spec: PageSpec) -> list[Trace]:
    """A violin of durations (minutes) per label, in its colour, with its mean (black line).

    Drawn from a kernel density computed here (:func:`schedule.duration_density`) as filled
    shapes: plotly's own violins recompute it in the browser, which is slow on long periods.
    """
    dens = sch.duration_density(labeled, labels)
    half = 0.4
    traces: list[Trace] = []
    mean_x: list[float | None] = []
    mean_y: list[float | None] = []
    pts_x: list[float] = []
    pts_y: list[float] = []
    for i, label in enumerate(labels):
        part = dens.filter(pl.col("label") == label)
        if part.height == 0:
            continue
        minutes = part["minutes"].to_list()
        widths = [max(d * half, 0.02) for d in part["density"].to_list()]
        xs = [i - w for w in widths] + [i + w for w in reversed(widths)] + [i - widths[0]]
        ys = minutes + list(reversed(minutes)) + [minutes[0]]
        color = sch.color_of(label, spec.description_order, spec.colors)
        durations = labeled.filter(pl.col("label") == label)["duration_s"].drop_nulls() / 60
        mean = float(durations.mean())  # type: ignore[arg-type]
        name = i18n.description_label(label, spec.language)
        traces.append(
            _scatter(
                x=xs,
                y=ys,
                mode="lines",
                fill="toself",
                fillcolor=color,
                opacity=0.75,
                line={"color": color, "width": 1},
                name=name,
                hoveron="fills",
                hoverinfo="text",
                text=f"{name}: n={durations.len()}, "
                f"{i18n.text('moy', spec.language)} {i18n.fmt_mmss(mean * 60)}",
                showlegend=False,
                xaxis="x2",
                yaxis="y2",
                meta="violin",
            )
        )
        w = widths[min(range(len(minutes)), key=lambda k: abs(minutes[k] - mean))]
        mean_x += [i - max(w, 0.12), i + max(w, 0.12), None]
        mean_y += [mean, mean, None]
        if durations.len() <= 60:  # few studies: show them
            vals = durations.to_list()
            pts_x += [i + 0.25 * half * (((k * 7919) % 13) / 6 - 1) for k in range(len(vals))]
            pts_y += vals
    if pts_x:
        traces.append(
            _scatter(
                x=pts_x,
                y=pts_y,
                mode="markers",
                marker={"size": 3, "color": _INK, "opacity": 0.55},
                hoverinfo="skip",
                showlegend=False,
                xaxis="x2",
                yaxis="y2",
                meta="violin-points",
            )
        )
    traces.append(
        _scatter(
            x=mean_x,
            y=mean_y,
            mode="lines",
            line={"color": _INK, "width": 1.5},
            hoverinfo="skip",
            showlegend=False,
            xaxis="x2",
            yaxis="y2",
            meta="means",
        )
    )
    return traces


def distribution_traces(dist: pl.DataFrame, spec: PageSpec, labels: Sequence[str]) -> list[Trace]:
    """Time-of-day curves beside the schedule (shares 0-1 against the schedule's hours)."""
    out = []
    for label in labels:
        part = dist.filter(pl.col("label") == label)
        if part.height == 0:
            continue
        color = sch.color_of(label, spec.description_order, spec.colors)
        out.append(
            _scatter(
                x=typed_array(part["share"].to_list()),
                y=typed_array(part["hour"].to_list()),
                mode="lines",
                line={"color": color, "width": 1.6},
                name=i18n.description_label(label, spec.language),
                legendgroup="dist-" + label,
                # its own legend, in the panel: the schedule's legend names box colours
                legend="legend2",
                showlegend=True,
                hoverinfo="skip",
                xaxis="x3",
                yaxis="y3",
                meta="distribution",
            )
        )
    return out
