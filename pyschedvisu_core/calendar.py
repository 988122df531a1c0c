"""Which days count: business days, public holidays, the automatic report end date."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

#: The department's clock: the cron and the automatic end date are in this zone.
TIMEZONE = "Europe/Zurich"


@lru_cache(maxsize=256)
def _public_holidays(country: str, subdiv: str | None, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=year).keys())


def parse_month_day(value: str) -> tuple[int, int]:
    """Parse ``"MM-DD"`` into ``(month, day)``; raises ``ValueError`` when malformed."""
    month_s, day_s = value.split("-")
    month, day = int(month_s), int(day_s)
    dt.date(2000, month, day)  # validates (2000 is a leap year, so 02-29 passes)
    return month, day


def is_closed_day(
    day: dt.date,
    country: str = "CH",
    subdiv: str | None = "VD",
    extra_closed: Iterable[tuple[int, int]] = ((12, 24), (12, 26), (12, 31)),
) -> bool:
    """True for weekends, public holidays of ``country``/``subdiv`` and extra closed days."""
    if day.weekday() >= 5:
        return True
    if (day.month, day.day) in set(extra_closed):
        return True
    return day in _public_holidays(country, subdiv, day.year)


def business_days(
    start: dt.date,
    end: dt.date,
    country: str = "CH",
    subdiv: str | None = "VD",
    extra_closed: Iterable[tuple[int, int]] = ((12, 24), (12, 26), (12, 31)),
) -> list[dt.date]:
    """Every open business day from ``start`` to ``end``, both included."""
    extra = tuple(extra_closed)
    out: list[dt.date] = []
    day = start
    one = dt.timedelta(days=1)
    while day <= end:
        if not is_closed_day(day, country, subdiv, extra):
            out.append(day)
        day += one
    return out


def friday_of_week(day: dt.date) -> dt.date:
    """The Friday of the ISO week (Mon..Sun) that contains ``day``."""
    return day + dt.timedelta(days=4 - day.weekday())


def auto_report_end(now: dt.datetime, cutoff_hour: int = 22) -> dt.date:
    """The automatic report end date (DOMAIN §1).

    Before ``cutoff_hour`` the current day is not complete, so use yesterday; the end
    date is that day's Friday if it is not after that day, else the previous Friday.
    """
    day = now.date() if now.hour >= cutoff_hour else now.date() - dt.timedelta(days=1)
    friday = friday_of_week(day)
    if friday > day:
        friday -= dt.timedelta(days=7)
    return friday


def report_end(scheduled: dt.datetime, cutoff_hour: int, tz: str = TIMEZONE) -> dt.date:
    """Automatic end date (DOMAIN §1) for a run *scheduled* at ``scheduled`` (aware datetime)."""
    if scheduled.tzinfo is None:
        raise ValueError("scheduled time must be timezone-aware")
    local = dt.datetime.fromtimestamp(scheduled.timestamp(), tz=ZoneInfo(tz))
    return auto_report_end(local, cutoff_hour)
