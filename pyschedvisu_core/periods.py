"""Report periods: all end on the report end date (a Friday), start from a length or an anchor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pyschedvisu_core import i18n

BinKind = Literal["day", "week", "4weeks", "month", "year"]

#: Longest period (in business days) drawn with each kind of bin / tick (DOMAIN §4).
BIN_LIMITS: tuple[tuple[int, BinKind], ...] = (
    (10, "day"),
    (22, "week"),
    (86, "4weeks"),
    (252, "month"),
)


@dataclass(frozen=True)
class Period:
    """One named period of the report."""

    name: str
    label: str  # printed name, e.g. "hebdomadaire"
    start: dt.date
    end: dt.date


def period_bounds(
    end: dt.date,
    *,
    weeks: int | None = None,
    anchor: str | None = None,
    year_start: int = 2016,
) -> tuple[dt.date, dt.date]:
    """First and last day of a period ending on ``end``.

    ``weeks``: Monday of the first of ``weeks`` weeks up to ``end``; ``anchor="year"``: Jan 1
    of the end date's year; ``anchor="first_year"``: Jan 1 of ``year_start``.
    """
    if weeks is not None:
        monday = end - dt.timedelta(days=end.weekday())
        return monday - dt.timedelta(weeks=weeks - 1), end
    if anchor == "year":
        return dt.date(end.year, 1, 1), end
    if anchor == "first_year":
        return dt.date(min(year_start, end.year), 1, 1), end
    raise ValueError(f"a period needs weeks or an anchor (got weeks={weeks}, anchor={anchor!r})")


def previous_bounds(
    start: dt.date, end: dt.date, *, weeks: int | None = None, anchor: str | None = None
) -> tuple[dt.date, dt.date] | None:
    """The same period just before ``start..end``: ``weeks`` earlier for a period in weeks,
    the same dates a year earlier for ``anchor="year"``; None for ``"first_year"`` (nothing
    comes before the first year)."""
    if weeks is not None:
        shift = dt.timedelta(weeks=weeks)
        return start - shift, end - shift
    if anchor == "year":
        last = end.replace(day=28) if (end.month, end.day) == (2, 29) else end
        return dt.date(start.year - 1, 1, 1), last.replace(year=end.year - 1)
    return None


def make_periods(
    end: dt.date,
    names: Sequence[str],
    defs: Mapping[str, Mapping[str, object]],
    *,
    year_start: int = 2016,
    lang: str = "fr",
) -> list[Period]:
    """The periods ``names`` (in order) from their definitions ``{weeks|anchor, label_fr, label_en}``."""
    out = []
    for name in names:
        d = defs[name]
        weeks = d.get("weeks")
        anchor = d.get("anchor")
        start, stop = period_bounds(
            end,
            weeks=int(weeks) if isinstance(weeks, int) else None,
            anchor=str(anchor) if anchor is not None else None,
            year_start=year_start,
        )
        label = str(d.get(f"label_{lang}") or d.get("label_fr") or name)
        out.append(Period(name=name, label=label, start=start, end=stop))
    return out


def _week_number(day: dt.date, other_end: dt.date) -> int:
    iso = day.isocalendar()
    # Jan 1-3 can belong to the previous ISO year (week 52/53); a period anchored on Jan 1
    # then reads "Semaines 1-47", not "53-47".
    if day.month == 1 and iso.year < day.year and other_end.year == day.year:
        return 1
    return iso.week


def week_header(start: dt.date, end: dt.date, lang: str = "fr") -> str:
    """``Semaine 47``, ``Semaines 29-52``, or ``2016 - 2019`` for periods over a year."""
    if (end - start).days > 366:
        return f"{start.year} - {end.year}"
    first = _week_number(start, end)
    last = end.isocalendar().week
    if first == last:
        return i18n.text("week", lang, week=last)
    return i18n.text("weeks", lang, first=first, last=last)


def bin_kind(n_business_days: int) -> BinKind:
    """Bin / tick granularity for a period of ``n_business_days`` (day ≤ 10, week ≤ 22, …)."""
    for limit, kind in BIN_LIMITS:
        if n_business_days <= limit:
            return kind
    return "year"


def first_needed_day(
    end: dt.date, periods: Iterable[tuple[int | None, str | None]], year_start: int
) -> dt.date:
    """Jan 1 of the first year any of ``periods`` (``(weeks, anchor)`` pairs) reaches back to."""
    starts = [period_bounds(end, weeks=w, anchor=a, year_start=year_start)[0] for w, a in periods]
    first = min(starts, default=period_bounds(end, weeks=1)[0])
    return dt.date(first.year, 1, 1)
