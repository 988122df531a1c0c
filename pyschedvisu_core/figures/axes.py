"""The schedule's axes: business days to x (a spacer after each week), times to hours of the
study's day, the ticks of the day axis and the hours shown."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import polars as pl

from pyschedvisu_core import schedule as sch
from pyschedvisu_core.figures.spec import WEEK_SPACER
from pyschedvisu_core.periods import bin_kind


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


def hour_range(labeled: pl.DataFrame, start_hour: int, end_hour: int) -> tuple[int, int]:
    """Top and bottom hours of the schedule: ``start_hour``-``end_hour`` widened to the data."""
    if labeled.height == 0:
        return start_hour, end_hour
    lo = labeled.select(_hours("s").min()).item()
    hi = labeled.select(_hours("e").max()).item()
    top = min(start_hour, math.floor(lo)) if lo is not None else start_hour
    bottom = max(end_hour, math.ceil(hi)) if hi is not None else end_hour
    return top, bottom
