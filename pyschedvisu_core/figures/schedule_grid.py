"""The weekly schedule drawing: a box per study (prep and acquisition, hatched retakes), gap
lines, day statuses, the occupancy map of very long periods, the hover texts, and the
injection markers before PET studies (DOMAIN §8)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core import schedule as sch
from pyschedvisu_core import uptake as upt
from pyschedvisu_core.figures.axes import _hours, day_positions
from pyschedvisu_core.figures.spec import (
    BOX_HALF,
    BOX_SHIFT,
    EDGE_ONLY_DAYS,
    GAP_LINES_MAX_DAYS,
    HOVER_META,
    OCCUPANCY_COLUMNS,
    SEGMENT_DAYS,
    STATUS_FILLS,
    WEEK_SPACER,
    PageSpec,
)
from pyschedvisu_core.figures.style import _INK, _MUTED, Trace, _heatmap, _scatter, typed_array


def _geometry(labeled: pl.DataFrame, spec: PageSpec, spacer: float) -> pl.DataFrame:
    """Studies with their x centre (day + alternating shift) and y (hours) of both boxes."""
    positions = day_positions(spec.days, spacer)
    xmap = pl.DataFrame(
        {"date": list(spec.days), "xd": positions}, schema={"date": pl.Date(), "xd": pl.Float64()}
    )
    f = labeled.join(xmap, on="date", how="inner").sort("date", "s", "e")
    rank = pl.int_range(pl.len()).over("date")
    shift = pl.when(rank % 2 == 0).then(-BOX_SHIFT).otherwise(BOX_SHIFT)
    return f.with_columns(
        xc=pl.col("xd") + shift,
        ys=_hours("s"),
        ye=_hours("e"),
        ya=_hours("start"),
        yb=_hours("end"),
    )


def _rect_paths(f: pl.DataFrame, half: float, y0: str, y1: str) -> tuple[list[float], list[float]]:
    """NaN-separated closed rectangles (5 corners + a break) around ``xc``."""
    nan = pl.lit(math.nan)
    x0, x1 = pl.col("xc") - half, pl.col("xc") + half
    xs = f.select(pl.concat_list([x0, x1, x1, x0, x0, nan]).explode()).to_series().to_list()
    ys = (
        f.select(
            pl.concat_list(
                [pl.col(y0), pl.col(y0), pl.col(y1), pl.col(y1), pl.col(y0), nan]
            ).explode()
        )
        .to_series()
        .to_list()
    )
    return xs, ys


def hatch_lines(
    f: pl.DataFrame, half: float, rising: bool, hours_per_unit: float, spacing_h: float
) -> tuple[list[float], list[float]]:
    """Diagonal hatching at ~45° on the page inside each acquisition box, clipped to it.

    ``hours_per_unit``: hours that span as many pixels as one day unit (the page aspect);
    ``spacing_h``: vertical distance between lines. ``rising`` = "/" (bottom-left to
    top-right), else "\\".
    """
    xs: list[float] = []
    ys: list[float] = []
    rise = 2 * half * hours_per_unit  # vertical run of a 45° line across the box
    for xc, ya, yb in f.select("xc", "ya", "yb").iter_rows():
        x0 = xc - half
        # y grows downwards: "/" goes up (y decreases) from left to right.
        sign = -1.0 if rising else 1.0
        first = ya if rising else ya - rise
        last = yb + rise if rising else yb
        k = first
        while k <= last:
            # y(t) = k + sign * rise * t, t in [0, 1]; keep the part inside [ya, yb]
            t0, t1 = (k - yb) / rise, (k - ya) / rise
            if not rising:
                t0, t1 = (ya - k) / rise, (yb - k) / rise
            t0, t1 = max(0.0, t0), min(1.0, t1)
            if t1 - t0 > 1e-3:
                xs += [x0 + 2 * half * t0, x0 + 2 * half * t1, math.nan]
                ys += [k + sign * rise * t0, k + sign * rise * t1, math.nan]
            k += spacing_h
    return xs, ys


def _segments(f: pl.DataFrame, y0: str, y1: str) -> tuple[list[float], list[float]]:
    nan = pl.lit(math.nan)
    xs = f.select(pl.concat_list([pl.col("xd"), pl.col("xd"), nan]).explode()).to_series()
    ys = f.select(pl.concat_list([pl.col(y0), pl.col(y1), nan]).explode()).to_series()
    return xs.to_list(), ys.to_list()


def _fmt_hm(col: str) -> pl.Expr:
    return pl.col(col).dt.strftime("%H:%M")


def schedule_traces(
    labeled: pl.DataFrame,
    spec: PageSpec,
    labels: Sequence[str],
    gaps: pl.DataFrame,
    hours_per_unit: float = 1.0,
    hours_per_px: float = 0.03,
) -> list[Trace]:
    """Boxes (outer prep box, inner acquisition box, hatching), gap lines and hover points."""
    n_days = len(spec.days)
    spacer = WEEK_SPACER if n_days <= SEGMENT_DAYS else 0.0
    geo = _geometry(labeled, spec, spacer)
    lang = spec.language
    if n_days > SEGMENT_DAYS:
        return occupancy_traces(geo, spec, labels)
    traces: list[Trace] = []
    for label in labels:
        part = geo.filter(pl.col("label") == label)
        if part.height == 0:
            continue
        color = sch.color_of(label, spec.description_order, spec.colors)
        name = i18n.description_label(label, lang)
        common: dict[str, Any] = {
            "name": name,
            "legendgroup": label,
            "hoverinfo": "skip",
            "xaxis": "x",
            "yaxis": "y",
        }
        xs, ys = _rect_paths(part, BOX_HALF, "ys", "ye")
        if n_days > EDGE_ONLY_DAYS:
            traces.append(
                _scatter(
                    x=typed_array(xs),
                    y=typed_array(ys),
                    mode="lines",
                    line={"color": color, "width": 0.7},
                    showlegend=True,
                    meta="boxes",
                    **common,
                )
            )
            continue
        traces.append(
            _scatter(
                x=typed_array(xs),
                y=typed_array(ys),
                mode="lines",
                fill="toself",
                fillcolor=color,
                opacity=0.35,
                line={"color": color, "width": 1},
                showlegend=True,
                meta="boxes",
                **common,
            )
        )
        xs, ys = _rect_paths(part, BOX_HALF - 0.05, "ya", "yb")
        traces.append(
            _scatter(
                x=typed_array(xs),
                y=typed_array(ys),
                mode="lines",
                fill="toself",
                fillcolor=color,
                opacity=0.8,
                line={"color": color, "width": 0.5},
                showlegend=False,
                meta="acquisition",
                **common,
            )
        )
    if n_days <= EDGE_ONLY_DAYS:
        # Studies with retakes are hatched: later takes one way, their first take the
        # other way. Drawn as plain line segments: SVG fill patterns turn into bitmaps
        # in Chromium's PDF output.
        for meta, cond, rising in (
            ("hatch-first", pl.col("retaken") & (pl.col("take") <= 1), False),
            ("hatch-later", pl.col("retaken") & (pl.col("take") > 1), True),
        ):
            sub = geo.filter(cond)
            if sub.height == 0:
                continue
            xs, ys = hatch_lines(sub, BOX_HALF - 0.05, rising, hours_per_unit, 5 * hours_per_px)
            traces.append(
                _scatter(
                    x=typed_array(xs),
                    y=typed_array(ys),
                    mode="lines",
                    line={"color": _INK, "width": 0.7},
                    opacity=0.6,
                    hoverinfo="skip",
                    showlegend=False,
                    meta=meta,
                    name=meta,
                    xaxis="x",
                    yaxis="y",
                )
            )
    if n_days <= GAP_LINES_MAX_DAYS and gaps.height:
        gx = pl.DataFrame(
            {"date": list(spec.days), "xd": day_positions(spec.days, spacer)},
            schema={"date": pl.Date(), "xd": pl.Float64()},
        )
        g = gaps.join(gx, on="date", how="inner").with_columns(ys=_hours("start"), ye=_hours("end"))
        xs, ys = _segments(g, "ys", "ye")
        traces.append(
            _scatter(
                x=typed_array(xs),
                y=typed_array(ys),
                mode="lines",
                name="gaps",
                line={"color": "#444444", "width": 1, "dash": "dash"},
                hoverinfo="skip",
                showlegend=False,
                meta="gaps",
                xaxis="x",
                yaxis="y",
            )
        )
        traces.append(_gap_hover(g, lang))
    traces.append(_study_hover(geo, lang))
    return traces


def status_traces(
    daily: pl.DataFrame, spec: PageSpec, spacer: float, hours: tuple[int, int]
) -> tuple[list[Trace], list[dict[str, Any]]]:
    """Pale day columns for days without activity, without data or out of service, with a
    legend entry each, and (periods up to ``EDGE_ONLY_DAYS``) their status written upright in
    the column. Returns the traces and the annotations.

    Runs of consecutive days of one status are one rectangle, so ten years stay a few paths.
    """
    top, bottom = hours
    positions = dict(zip(spec.days, day_positions(spec.days, spacer), strict=True))
    lang = spec.language
    traces: list[Trace] = []
    notes: list[dict[str, Any]] = []
    rows = daily.select("date", "status").iter_rows()
    runs: list[tuple[str, float, float]] = []  # status, first x, last x
    prev_status, prev_index = None, -2
    for index, (day, status) in enumerate(rows):
        x = positions[day]
        if status in STATUS_FILLS and status == prev_status and index == prev_index + 1:
            runs[-1] = (status, runs[-1][1], x)
        elif status in STATUS_FILLS:
            runs.append((status, x, x))
        prev_status, prev_index = status, index
    for status, fill in STATUS_FILLS.items():
        mine = [(a, b) for st, a, b in runs if st == status]
        if not mine:
            continue
        xs: list[float | None] = []
        ys: list[float | None] = []
        for a, b in mine:
            xs += [a - 0.5, b + 0.5, b + 0.5, a - 0.5, a - 0.5, None]
            ys += [top, top, bottom, bottom, top, None]
        name = i18n.text(f"status_{status}", lang)
        traces.append(
            _scatter(
                x=typed_array(xs),
                y=typed_array(ys),
                mode="lines",
                fill="toself",
                fillcolor=fill,
                line={"color": fill, "width": 0},
                name=name,
                legendgroup=status,
                showlegend=True,
                hoverinfo="skip",
                xaxis="x",
                yaxis="y",
                meta="status-" + status,
            )
        )
        if len(spec.days) <= EDGE_ONLY_DAYS:
            for day, st in daily.select("date", "status").iter_rows():
                if st == status:
                    notes.append(
                        {
                            "xref": "x",
                            "yref": "y",
                            "x": positions[day],
                            "y": (top + bottom) / 2,
                            "text": name,
                            "textangle": -90,
                            "showarrow": False,
                            "font": {"size": 10, "color": _MUTED},
                            "name": "status",
                        }
                    )
    return traces, notes


def occupancy_traces(geo: pl.DataFrame, spec: PageSpec, labels: Sequence[str]) -> list[Any]:
    """Very long periods: one cell per column of days x 10 minutes, in the colour of the label
    most in progress there (a box per study would be far below one pixel wide).

    One heatmap instead of tens of thousands of paths keeps a ten-year page fast and small.
    """
    positions = day_positions(spec.days, 0.0)
    n_cols = min(len(spec.days), OCCUPANCY_COLUMNS)
    cols = pl.DataFrame(
        {
            "date": list(spec.days),
            "col": [i * n_cols // len(spec.days) for i in range(len(spec.days))],
            "x": positions,
        },
        schema={"date": pl.Date(), "col": pl.Int64(), "x": pl.Float64()},
    )
    centres = cols.group_by("col").agg(pl.col("x").mean()).sort("col")["x"].to_list()
    index = {lab: i for i, lab in enumerate(labels)}
    grid = sch.occupancy_grid(geo.join(cols.select("date", "col"), on="date"), n_cols, 1 / 6)
    traces: list[Any] = []
    if grid.height:
        r0, r1 = int(grid["row"].min()), int(grid["row"].max())  # type: ignore[arg-type]
        z: list[list[float | None]] = [[None] * n_cols for _ in range(r1 - r0 + 1)]
        for col, row, label in grid.iter_rows():
            z[row - r0][col] = float(index.get(label, len(labels) - 1))
        k = max(len(labels), 1)
        scale: list[list[Any]] = []
        for i, lab in enumerate(labels):
            color = sch.color_of(lab, spec.description_order, spec.colors)
            scale += [[i / k, color], [(i + 1) / k, color]]
        traces.append(
            _heatmap(
                x=centres,
                y=[(r + 0.5) / 6 for r in range(r0, r1 + 1)],
                z=z,
                zmin=-0.5,
                zmax=k - 0.5,
                colorscale=scale,
                showscale=False,
                hoverinfo="skip",
                xgap=0,
                ygap=0,
                zsmooth=False,
                xaxis="x",
                yaxis="y",
                meta="occupancy",
                name="",
            )
        )
    for lab in labels:  # legend entries
        traces.append(
            _scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=i18n.description_label(lab, spec.language),
                marker={
                    "symbol": "square",
                    "size": 9,
                    "color": sch.color_of(lab, spec.description_order, spec.colors),
                },
                legendgroup=lab,
                showlegend=True,
                hoverinfo="skip",
                xaxis="x",
                yaxis="y",
                meta="legend",
            )
        )
    return traces


def _hover_points(x: pl.Series, y: pl.Series, texts: list[str], *, size: int) -> Trace:
    """Invisible markers that carry the hover text of boxes / gaps (never a patient key)."""
    return _scatter(
        x=typed_array(x.to_list()),
        y=typed_array(y.to_list()),
        mode="markers",
        marker={"size": size, "opacity": 0},
        hovertext=texts,
        hoverinfo="text",
        showlegend=False,
        meta=HOVER_META,
        name="",
        xaxis="x",
        yaxis="y",
    )


def _study_hover(geo: pl.DataFrame, lang: str) -> Trace:
    minutes = ((pl.col("end") - pl.col("start")).dt.total_seconds() / 60).round(0).cast(pl.Int64)
    names = (
        geo["label"].map_elements(lambda s: i18n.description_label(s, lang), return_dtype=pl.String)
        if geo.height
        else pl.Series("label", [], dtype=pl.String)
    )
    texts = (
        geo.with_columns(name=names)
        .select(
            pl.format(
                i18n.text("hover", lang)
                .replace("{label}", "{}")
                .replace("{date}", "{}")
                .replace("{start}", "{}")
                .replace("{end}", "{}")
                .replace("{minutes}", "{}"),
                "name",
                pl.col("date").dt.strftime("%d/%m/%Y"),
                _fmt_hm("start"),
                _fmt_hm("end"),
                minutes,
            )
        )
        .to_series()
        .to_list()
    )
    return _hover_points(geo["xc"], (geo["ya"] + geo["yb"]) / 2, texts, size=10)


def _gap_hover(g: pl.DataFrame, lang: str) -> Trace:
    minutes = (pl.col("duration_s") / 60).round(0).cast(pl.Int64)
    template = (
        i18n.text("hover_gap", lang)
        .replace("{date}", "{}")
        .replace("{start}", "{}")
        .replace("{end}", "{}")
        .replace("{minutes}", "{}")
    )
    texts = (
        g.select(
            pl.format(
                template,
                pl.col("date").dt.strftime("%d/%m/%Y"),
                _fmt_hm("start"),
                _fmt_hm("end"),
                minutes,
            )
        )
        .to_series()
        .to_list()
    )
    return _hover_points(g["xd"], (g["ys"] + g["ye"]) / 2, texts, size=8)


def injection_marks(labeled: pl.DataFrame) -> pl.DataFrame:
    """The PET studies whose injection the weekly schedule marks: a believed uptake (not
    flagged), injected on the study's day (an earlier day is off the schedule)."""
    if "injected_at" not in labeled.columns or labeled.height == 0:
        return labeled.clear()
    return labeled.filter(
        upt.is_pet(labeled)
        & pl.col("injected_at").is_not_null()
        & pl.col("uptake_flag").is_null()
        & (pl.col("injected_at").dt.date() == pl.col("date"))
    )


def injection_traces(labeled: pl.DataFrame, spec: PageSpec, spacer: float) -> list[Trace]:
    """A small marker at the injection time left of each PET study's box (those of
    :func:`injection_marks`), and a dotted line down to the acquisition start: the uptake,
    before the scanner's time (DOMAIN §8)."""
    lang = spec.language
    geo = injection_marks(_geometry(labeled, spec, spacer))
    if geo.height == 0:
        return []
    geo = geo.with_columns(xi=pl.col("xc") - BOX_HALF - 0.06, yi=_hours("injected_at"))
    xs = geo.select(pl.concat_list(["xi", "xi", pl.lit(math.nan)]).explode()).to_series()
    ys = geo.select(pl.concat_list(["yi", "ya", pl.lit(math.nan)]).explode()).to_series()
    minutes = (pl.col("uptake_s") / 60).round(0).cast(pl.Int64)
    activity = pl.col("activity_mbq").round(0).cast(pl.Int64).cast(pl.String)
    template = i18n.text("hover_injection", lang)
    for key in ("{time}", "{tracer}", "{activity}", "{minutes}"):
        template = template.replace(key, "{}")
    texts = (
        geo.select(
            pl.format(
                template,
                _fmt_hm("injected_at"),
                pl.col("tracer").fill_null("?"),
                activity.fill_null("?"),
                minutes,
            )
        )
        .to_series()
        .to_list()
    )
    common = {"hoverinfo": "skip", "xaxis": "x", "yaxis": "y"}
    return [
        _scatter(
            x=typed_array(xs.to_list()),
            y=typed_array(ys.to_list()),
            mode="lines",
            line={"color": _MUTED, "width": 0.8, "dash": "dot"},
            showlegend=False,
            name="uptake",
            meta="uptake-lines",
            **common,
        ),
        _scatter(
            x=typed_array(geo["xi"].to_list()),
            y=typed_array(geo["yi"].to_list()),
            mode="markers",
            marker={"symbol": "triangle-right", "size": 6, "color": _INK},
            name=i18n.text("injection_marker", lang),
            legendgroup="injection",
            showlegend=True,
            meta="injections",
            **common,
        ),
        _hover_points(geo["xi"], geo["yi"], texts, size=8),
    ]
