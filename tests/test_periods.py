"""Report periods: bounds, ISO-week header, bin granularity."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu.config import Settings
from pyschedvisu_core.periods import bin_kind, make_periods, period_bounds, week_header

END = dt.date(2019, 11, 22)  # Friday of ISO week 47


def test_default_periods_end_on_the_end_date_and_start_where_domain_says() -> None:
    s = Settings()
    defs = {k: v.model_dump() for k, v in s.report.period_defs.items()}
    got = {
        p.name: (p.start, p.end, p.label)
        for p in make_periods(END, s.report.periods, defs, year_start=2016)
    }
    assert got["hebdomadaire"] == (dt.date(2019, 11, 18), END, "hebdomadaire")
    assert got["bimensuel"][0] == dt.date(2019, 11, 11)
    assert got["mensuel"][0] == dt.date(2019, 10, 28)
    assert got["trimestriel"][0] == dt.date(2019, 9, 2)
    assert got["semestriel"][0] == dt.date(2019, 6, 10)
    assert got["annuel"][0] == dt.date(2019, 1, 1)
    assert got["longueduree"] == (dt.date(2016, 1, 1), END, "longue durée")


def test_period_labels_follow_the_language() -> None:
    s = Settings()
    defs = {k: v.model_dump() for k, v in s.report.period_defs.items()}
    (p,) = make_periods(END, ["mensuel"], defs, lang="en")
    assert p.label == "monthly"


def test_custom_period_without_code_change() -> None:
    (p,) = make_periods(END, ["quinzaine"], {"quinzaine": {"weeks": 3, "label_fr": "3 semaines"}})
    assert (p.start, p.label) == (dt.date(2019, 11, 4), "3 semaines")


def test_week_header_single_range_and_years() -> None:
    assert week_header(dt.date(2019, 11, 18), END) == "Semaine 47"
    assert week_header(dt.date(2019, 7, 15), dt.date(2019, 12, 27)) == "Semaines 29-52"
    assert week_header(dt.date(2016, 1, 1), END) == "2016 - 2019"
    assert week_header(dt.date(2019, 11, 18), END, "en") == "Week 47"


def test_week_header_of_a_year_starting_in_iso_week_53_reads_from_week_1() -> None:
    # Jan 1 2021 is in ISO week 53 of 2020.
    assert week_header(dt.date(2021, 1, 1), dt.date(2021, 11, 26)) == "Semaines 1-47"


def test_bin_kind_thresholds() -> None:
    assert [bin_kind(n) for n in (1, 10, 11, 22, 23, 86, 87, 252, 253, 2500)] == [
        "day",
        "day",
        "week",
        "week",
        "4weeks",
        "4weeks",
        "month",
        "month",
        "year",
        "year",
    ]


@given(
    friday=st.dates(dt.date(2000, 1, 7), dt.date(2090, 12, 29)).map(
        lambda d: d + dt.timedelta(days=(4 - d.weekday()) % 7)
    ),
    weeks=st.integers(1, 120),
)
def test_week_periods_start_on_a_monday_and_span_whole_weeks(friday: dt.date, weeks: int) -> None:
    start, end = period_bounds(friday, weeks=weeks)
    assert end == friday
    assert start.weekday() == 0
    assert (end - start).days == 7 * (weeks - 1) + 4
