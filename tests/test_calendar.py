from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu_core.calendar import auto_report_end, business_days, friday_of_week, is_closed_day


def test_vaud_holidays_and_extra_closed_days_are_skipped() -> None:
    days = business_days(dt.date(2019, 12, 20), dt.date(2020, 1, 3))
    # Dec 24/26/31 are closed by the department, Dec 25 and Jan 1-2 are Vaud holidays.
    assert days == [
        dt.date(2019, 12, 20),
        dt.date(2019, 12, 23),
        dt.date(2019, 12, 27),
        dt.date(2019, 12, 30),
        dt.date(2020, 1, 3),
    ]


def test_lundi_du_jeune_federal_is_a_vaud_holiday() -> None:
    # Monday after the third Sunday of September: a Vaud-only holiday.
    assert is_closed_day(dt.date(2024, 9, 16))
    assert not is_closed_day(dt.date(2024, 9, 16), subdiv="ZH")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (
            dt.datetime(2026, 11, 28, 1, 0),
            dt.date(2026, 11, 27),
        ),  # Saturday 01:00 run -> that week's Friday
        (
            dt.datetime(2026, 11, 27, 21, 59),
            dt.date(2026, 11, 20),
        ),  # Friday before 22:00 -> Thursday -> previous Friday
        (
            dt.datetime(2026, 11, 27, 22, 0),
            dt.date(2026, 11, 27),
        ),  # Friday after 22:00 -> this Friday
        (dt.datetime(2026, 11, 25, 12, 0), dt.date(2026, 11, 20)),  # Wednesday -> previous Friday
        (
            dt.datetime(2026, 11, 30, 8, 0),
            dt.date(2026, 11, 27),
        ),  # Monday morning -> Sunday -> that Friday
    ],
)
def test_auto_report_end(now: dt.datetime, expected: dt.date) -> None:
    assert auto_report_end(now) == expected


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)))
def test_auto_report_end_is_a_past_friday_within_a_week(now: dt.datetime) -> None:
    end = auto_report_end(now)
    assert end.weekday() == 4
    assert dt.timedelta(0) <= now.date() - end <= dt.timedelta(days=8)


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 1, 1)))
def test_friday_of_week_is_in_the_same_iso_week(day: dt.date) -> None:
    assert friday_of_week(day).isocalendar()[:2] == day.isocalendar()[:2]


@given(st.dates(min_value=dt.date(2015, 1, 1), max_value=dt.date(2030, 1, 1)), st.integers(0, 60))
def test_business_days_are_open_sorted_and_within_range(start: dt.date, length: int) -> None:
    end = start + dt.timedelta(days=length)
    days = business_days(start, end)
    assert days == sorted(set(days))
    assert all(start <= d <= end and d.weekday() < 5 and not is_closed_day(d) for d in days)
