"""One A4 portrait plotly figure per machine x period (DOMAIN §4), built from frames.

Large coordinate arrays are passed to plotly as base64 typed arrays (``{"dtype", "bdata"}``)
and boxes of one label are drawn by ONE trace of NaN-separated closed paths, so a ten-year
page with tens of thousands of studies stays a few traces and renders in about a second.
Figures carry no patient data: hover texts hold the label, the date, times and duration.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import struct
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core import planmatch as pm
from pyschedvisu_core import schedule as sch
from pyschedvisu_core.periods import bin_kind, week_header

#: Page size: A4 portrait at 96 dpi (kaleido turns px into PDF points at that ratio).
PAGE_WIDTH = 794
PAGE_HEIGHT = 1123
#: Above this many business days boxes are drawn by their edge only.
EDGE_ONLY_DAYS = 45
#: Above this many business days studies are drawn as an occupancy map (boxes < 1 px wide).
SEGMENT_DAYS = 252
#: Columns of the occupancy map drawn instead of boxes above SEGMENT_DAYS.
OCCUPANCY_COLUMNS = 300
#: Gap lines are drawn for periods up to ~6 months of business days.
GAP_LINES_MAX_DAYS = 126
#: The time-of-day distribution is shown from this many business days on.
DISTRIBUTION_MIN_DAYS = 84
#: Vertical domain (paper) of the schedule.
SCHEDULE_Y = (0.575, 0.905)
#: Half width of a box and the alternating left/right shift, in day units.
BOX_HALF = 0.34
BOX_SHIFT = 0.08
#: Width of the spacer after each week, in day units (none on yearly-tick pages).
WEEK_SPACER = 1.0
#: Trace ``meta`` of traces that only serve the interactive HTML (dropped for print).
HOVER_META = "hover"
#: Background of day columns by status (DOMAIN §4): retrieved without a study, not retrieved,
#: outside the service window. Pale, far from every description colour.
STATUS_FILLS = {
    sch.NO_ACTIVITY: "#fdf0d5",
    sch.NO_DATA: "#e4e8ec",
    sch.OUT_OF_SERVICE: "#f1f1f1",
}
#: Longest list of days printed in a data-quality note (the rest are counted).
NOTE_MAX_DAYS = 12
#: Planned slots are outlined in the schedule of pages up to this many business days
#: (weekly and 2-weekly pages).
PLAN_OUTLINE_DAYS = 10
#: Height (paper) of one row of the planned / performed table.
PLAN_ROW_H = 0.0118
#: Outline colours of a planned slot and of a no-show's slot.
PLANNED_SLOT = "#5b6770"
NO_SHOW_SLOT = "#b03a2e"

_INK = "#1f2d3d"
_MUTED = "#5b6770"
_HEADER_FILL = "#2f3e4e"
_ROW_FILLS = ("#ffffff", "#f1f4f7")
_SUM_FILL = "#dde4ea"
_FONT = "DejaVu Sans, Arial, sans-serif"


@dataclass(frozen=True)
class PageSpec:
    """Plain values describing one page (taken from the configuration by the shell)."""

    machine: str
    period_label: str
    start: dt.date
    end: dt.date
    days: tuple[dt.date, ...]
    description_order: tuple[str, ...]
    colors: tuple[str, ...]
    slots_per_weekday: tuple[int, ...]
    gap_minutes: int
    prep_minutes: int
    retake_descriptions: tuple[str, ...] = ()
    day_start_hour: int = 8
    day_end_hour: int = 18
    distribution_sample_s: int = 180
    distribution_smooth_s: int = 900
    language: str = "fr"
    logos: tuple[str, ...] = field(default=())  # image sources (URLs or data: URIs)
    #: business days retrieved (final in the store): they count their slots in service
    retrieved: frozenset[dt.date] = frozenset()
    #: the machine's service window (first, last day; None = open)
    service_from: dt.date | None = None
    service_until: dt.date | None = None
    #: the configured start of the period when the page was trimmed to the service window
    period_start: dt.date | None = None


@dataclass(frozen=True)
class PagePlan:
    """Planned against performed on one page: the :func:`planmatch.match_plan` rows of its
    machine and the days (of the page) on which the machine had a plan."""

    matches: pl.DataFrame
    days: frozenset[dt.date]


@dataclass(frozen=True)
class PageNumbers:
    """The numbers of one page, shared by its figure, the workbook and the summary."""

    studies: pl.DataFrame  # studies on the page's business days
    labeled: pl.DataFrame  # :func:`schedule.with_labels`
    labels: list[str]  # in drawing order
    gaps: pl.DataFrame  # :func:`schedule.find_gaps`
    daily: pl.DataFrame  # :func:`schedule.daily_counts`
    counts: pl.DataFrame  # :func:`schedule.count_table`
    durations: pl.DataFrame  # :func:`schedule.duration_table`
    plan: pl.DataFrame | None = None  # :func:`planmatch.plan_table` (with a worklist)


def page_plan_table(plan: PagePlan, spec: PageSpec) -> pl.DataFrame:
    """The planned / performed table of a page: its plan days only."""
    days = [d for d in spec.days if d in plan.days]
    return pm.plan_table(plan.matches, spec.description_order, days)


def page_numbers(
    studies: pl.DataFrame, spec: PageSpec, plan: PagePlan | None = None
) -> PageNumbers:
    """Labels, gaps, day statuses, count and duration tables of one machine and period
    (and, with ``plan``, its planned / performed table)."""
    day_set = list(spec.days)
    studies = studies.filter(pl.col("date").is_in(day_set))
    labeled = sch.with_labels(studies, spec.retake_descriptions)
    labels = sch.label_order(
        spec.description_order, labeled["label"].unique().to_list(), spec.retake_descriptions
    )
    gaps = sch.find_gaps(studies, spec.gap_minutes)
    daily = sch.daily_counts(
        studies,
        gaps,
        day_set,
        spec.slots_per_weekday,
        spec.retrieved,
        (spec.service_from, spec.service_until),
    )
    counts = sch.count_table(daily, sch.day_bins(day_set, bin_kind(len(day_set)), spec.language))
    durations = sch.duration_table(labeled, gaps, labels)
    table = page_plan_table(plan, spec) if plan is not None else None
    return PageNumbers(studies, labeled, labels, gaps, daily, counts, durations, table)


# -- small helpers ----------------------------------------------------------------------


def typed_array(values: Iterable[float | None]) -> dict[str, str]:
    """A plotly.js typed array (float32, base64); ``None`` becomes NaN (a break in a path)."""
    arr = array("f", (math.nan if v is None else v for v in values))
    return {"dtype": "f4", "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_array(obj: Any) -> list[float]:
    """Values of a plotly data array: a list, a tuple or a ``{"dtype", "bdata"}`` typed array."""
    if isinstance(obj, dict) and "bdata" in obj:
        codes = {
            "f4": "f",
            "f8": "d",
            "i4": "i",
            "u4": "I",
            "i2": "h",
            "u2": "H",
            "i1": "b",
            "u1": "B",
        }
        code = codes[str(obj["dtype"])]
        raw = base64.b64decode(obj["bdata"])
        return [float(v) for v in struct.unpack(f"<{len(raw) // struct.calcsize(code)}{code}", raw)]
    return [math.nan if v is None else float(v) for v in obj]


#: A plotly trace as a plain dict (plotly.js reads it as is).
Trace = dict[str, Any]
#: What ``template="none"`` becomes in a validated figure: plotly.js defaults, no styling.
_NO_TEMPLATE: dict[str, Any] = {"data": {"scatter": [{"type": "scatter"}]}}


def _scatter(**props: Any) -> Trace:
    # Plain dicts: plotly.py's validation of go.Scatter cost more than building the page.
    return {"type": "scatter", **props}


def _heatmap(**props: Any) -> Trace:
    return {"type": "heatmap", **props}


def _hours(col: str) -> pl.Expr:
    # Relative to the study's date, so a study running past midnight ends after 24h
    # instead of wrapping to the top of the schedule.
    midnight = pl.col("date").cast(pl.Datetime("us"))
    return (pl.col(col) - midnight).dt.total_microseconds() / 3.6e9


def day_positions(days: Sequence[dt.date], spacer: float = WEEK_SPACER) -> list[float]:
    """x of each business day: consecutive, plus ``spacer`` after each week (a Friday gap)."""
    out: list[float] = []
    x = 0.0
    prev: dt.date | None = None
    for d in days:
        if prev is not None:
            x += 1.0
            if d.isocalendar()[:2] != prev.isocalendar()[:2]:
                x += spacer
        out.append(x)
        prev = d
    return out


def tick_marks(
    days: Sequence[dt.date], positions: Sequence[float], lang: str = "fr"
) -> tuple[list[float], list[str], list[float]]:
    """Tick values, texts and bin boundaries (x) of the schedule axis.

    Ticks thin out with the length: every day (≤ 10 business days), every week (≤ 22),
    every 4 weeks (≤ 86), every month (≤ 252), every year beyond; one tick per bin centre.
    """
    bins = sch.day_bins(days, bin_kind(len(days)), lang)
    vals: list[float] = []
    texts: list[str] = []
    bounds: list[float] = []
    pos = dict(zip(days, positions, strict=True))
    for part in bins.partition_by("bin", maintain_order=True):
        ds = part["date"].to_list()
        first, last = pos[ds[0]], pos[ds[-1]]
        vals.append((first + last) / 2)
        texts.append(str(part["bin_label"][0]))
        bounds.append(first - 0.5)
    return vals, texts, bounds[1:]


# -- the schedule -----------------------------------------------------------------------


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


def hour_range(labeled: pl.DataFrame, start_hour: int, end_hour: int) -> tuple[int, int]:
    """Top and bottom hours of the schedule: ``start_hour``-``end_hour`` widened to the data."""
    if labeled.height == 0:
        return start_hour, end_hour
    lo = labeled.select(_hours("s").min()).item()
    hi = labeled.select(_hours("e").max()).item()
    top = min(start_hour, math.floor(lo)) if lo is not None else start_hour
    bottom = max(end_hour, math.ceil(hi)) if hi is not None else end_hour
    return top, bottom


# -- tables (drawn as one text trace + filled rectangles: plotly's Table trace is slow) ------


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


def _slot_rows(plan: PagePlan, spec: PageSpec) -> pl.DataFrame:
    """Planned slots (performed or not) on the page's plan days, with their drawn end: the
    scheduled end, else the study's duration after the scheduled start, else 30 minutes."""
    days = [d for d in spec.days if d in plan.days]
    actual = pl.col("actual_end") - pl.col("actual_start")
    planned = pl.duration(microseconds=(pl.col("scheduled_duration_s") * 1e6).cast(pl.Int64))
    end = pl.coalesce(
        pl.col("scheduled_start") + planned,
        pl.col("scheduled_start") + actual,
        pl.col("scheduled_start") + pl.duration(minutes=30),
    )
    return (
        plan.matches.filter(
            pl.col("date").is_in(days)
            & pl.col("status").is_in([pm.PERFORMED, pm.NO_SHOW])
            & pl.col("scheduled_start").is_not_null()
        )
        .with_columns(end.alias("scheduled_end"))
        .sort("date", "scheduled_start")
    )


def plan_hours(plan: PagePlan, spec: PageSpec) -> tuple[float, float] | None:
    """Earliest start and latest end (hours of the day) of the page's planned slots."""
    slots = _slot_rows(plan, spec)
    if slots.height == 0:
        return None
    hours = slots.select(
        lo=(pl.col("scheduled_start") - pl.col("date").cast(pl.Datetime("us"))).min(),
        hi=(pl.col("scheduled_end") - pl.col("date").cast(pl.Datetime("us"))).max(),
    ).row(0)
    return hours[0].total_seconds() / 3600, hours[1].total_seconds() / 3600


def plan_outline_traces(
    plan: PagePlan, spec: PageSpec, spacer: float, top: float
) -> tuple[list[Trace], list[dict[str, Any]]]:
    """Planned slots as thin outlines behind the studies (a no-show's in red dashes), their
    hover texts (no patient data), and "no plan" written at the top of each business day
    without a plan."""
    lang = spec.language
    positions = dict(zip(spec.days, day_positions(spec.days, spacer), strict=True))
    slots = _slot_rows(plan, spec).with_columns(
        pl.col("date").replace_strict(positions, return_dtype=pl.Float64()).alias("xc"),
        _hours("scheduled_start").alias("ys"),
        _hours("scheduled_end").alias("ye"),
    )
    half = BOX_HALF + BOX_SHIFT + 0.03
    traces: list[Trace] = []
    for status, color, dash, key in (
        (pm.PERFORMED, PLANNED_SLOT, "dot", "planned_slot"),
        (pm.NO_SHOW, NO_SHOW_SLOT, "dash", "no_show_slot"),
    ):
        part = slots.filter(pl.col("status") == status)
        if part.height == 0:
            continue
        xs, ys = _rect_paths(part, half, "ys", "ye")
        traces.append(
            _scatter(
                x=typed_array(xs),
                y=typed_array(ys),
                mode="lines",
                line={"color": color, "width": 1.0, "dash": dash},
                name=i18n.text(key, lang),
                legendgroup="plan-" + status,
                showlegend=True,
                hoverinfo="skip",
                xaxis="x",
                yaxis="y",
                meta="plan-" + status,
            )
        )
    if slots.height:
        texts = []
        for r in slots.iter_rows(named=True):
            if r["status"] == pm.PERFORMED:
                state = i18n.text(
                    "hover_plan_performed",
                    lang,
                    actual=r["actual_start"].strftime("%H:%M"),
                    delay=i18n.fmt_delay(r["delay_s"]),
                )
            else:
                state = i18n.text("hover_plan_no_show", lang)
            texts.append(
                i18n.text(
                    "hover_plan",
                    lang,
                    start=r["scheduled_start"].strftime("%H:%M"),
                    end=r["scheduled_end"].strftime("%H:%M"),
                    description=i18n.description_label(str(r["description"] or ""), lang),
                    status=state,
                )
            )
        traces.append(
            _hover_points(slots["xc"] + half, (slots["ys"] + slots["ye"]) / 2, texts, size=7)
        )
    notes = [
        {
            "xref": "x",
            "yref": "y",
            "x": positions[d],
            "y": top,
            "text": f"<i>{i18n.text('no_plan', lang)}</i>",
            "showarrow": False,
            "yanchor": "top",
            "font": {"size": 8, "color": NO_SHOW_SLOT},
            "name": "no-plan",
        }
        for d in spec.days
        if d not in plan.days
    ]
    return traces, notes


# -- violins and distribution --------------------------------------------------------------


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


# -- the page -----------------------------------------------------------------------------


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


#: Characters per line of the notes (8 px text across the page's 719 px).
NOTE_WIDTH = 152


def wrap(text: str, width: int = NOTE_WIDTH) -> str:
    """``text`` broken with ``<br>`` at spaces before ``width`` characters: plotly.js does not
    wrap annotations, and a long note ran off the page."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return "<br>".join(lines)


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


def _note(
    x: float,
    y: float,
    text: str,
    *,
    size: int,
    color: str = _INK,
    xanchor: str = "left",
    yanchor: str = "top",
    name: str = "",
) -> dict[str, Any]:
    return {
        "xref": "paper",
        "yref": "paper",
        "x": x,
        "y": y,
        "text": text,
        "showarrow": False,
        "xanchor": xanchor,
        "yanchor": yanchor,
        "align": "left",
        "font": {"size": size, "color": color},
        "name": name,
    }


# -- per-run stamps (the page itself is cacheable) -----------------------------------------


def stamp(
    fig: dict[str, Any],
    *,
    generated: str = "",
    footer: str = "",
    extra_notes: Sequence[str] = (),
) -> dict[str, Any]:
    """A copy of a figure dict with the generation time, footer and data-quality notes set."""
    layout = dict(fig.get("layout", {}))
    anns = []
    for ann in layout.get("annotations", []):
        ann = dict(ann)
        if ann.get("name") == "generated":
            ann["text"] = generated
        elif ann.get("name") == "footer":
            ann["text"] = footer
        elif ann.get("name") == "notes" and extra_notes:
            ann["text"] = ann["text"] + "".join(f"<br><b>{wrap('⚠ ' + n)}</b>" for n in extra_notes)
        anns.append(ann)
    layout["annotations"] = anns
    return {**fig, "layout": layout}


def _svg_path(xs: Sequence[float], ys: Sequence[float], close: bool) -> str:
    """An SVG path in data coordinates, one subpath per NaN-separated run of points."""
    parts: list[str] = []
    run: list[str] = []
    for x, y in zip(xs, ys, strict=True):
        if x != x or y != y:  # NaN: the end of a run
            if run:
                parts.append("M" + "L".join(run) + ("Z" if close else ""))
                run = []
            continue
        run.append(f"{round(x, 3):g},{round(y, 3):g}")
    if run:
        parts.append("M" + "L".join(run) + ("Z" if close else ""))
    return "".join(parts)


def _as_shape(trace: dict[str, Any], layer: str) -> dict[str, Any] | None:
    """One path shape drawing a line trace (``mode="lines"``), else None.

    Plotly.js draws every NaN-separated run of a line trace as its own SVG element, so a
    trace of 3000 boxes costs 3000 styled elements; a path shape is one element with as
    many subpaths, the same drawing at a fraction of the cost (and of the PDF's). Even a
    single-run trace (a violin, a curve) costs more as a trace than as a shape.
    """
    if trace.get("type", "scatter") != "scatter" or trace.get("mode") != "lines":
        return None
    xs, ys = decode_array(trace.get("x", [])), decode_array(trace.get("y", []))
    if len(xs) != len(ys):
        return None
    filled = trace.get("fill") == "toself"
    line = dict(trace.get("line", {}))
    if "color" not in line:
        line["color"] = trace.get("fillcolor", _INK)
    shape: dict[str, Any] = {
        "type": "path",
        "path": _svg_path(xs, ys, filled),
        "xref": trace.get("xaxis", "x"),
        "yref": trace.get("yaxis", "y"),
        "line": line,
        "opacity": trace.get("opacity", 1),
        "layer": layer,
        "name": str(trace.get("meta", "")),
    }
    if filled:
        # Boxes of one label overlap: "evenodd" (plotly's default) would punch holes.
        shape.update(fillcolor=trace.get("fillcolor", line["color"]), fillrule="nonzero")
    return shape


def printable(fig: dict[str, Any]) -> dict[str, Any]:
    """A copy of a figure dict for paper: the same drawing, lighter to render.

    Hover-only traces go (nothing to show on paper). Line traces (boxes, hatching, gap
    lines, table cells, violins and their means, curves) become one path shape each, in
    trace order: between the grid and the traces, or above the traces when a trace of their
    subplot comes before them (the means over the violin points). A trace with a legend
    entry stays, emptied, for that entry.
    """
    data: list[dict[str, Any]] = []
    shapes = list(fig.get("layout", {}).get("shapes", []))
    drawn: set[tuple[str, str]] = set()  # subplots with a trace drawn so far
    for trace in fig.get("data", []):
        if trace.get("meta") == HOVER_META:
            continue
        axes = (str(trace.get("xaxis", "x")), str(trace.get("yaxis", "y")))
        shape = _as_shape(trace, "above" if axes in drawn else "between")
        if shape is None:
            data.append(trace)
            drawn.add(axes)
            continue
        shapes.append(shape)
        if trace.get("showlegend"):
            data.append({**trace, "x": [None], "y": [None]})
    return {**fig, "data": data, "layout": {**fig.get("layout", {}), "shapes": shapes}}
