"""The summary and trends pages: numbers from inline study tables, and their figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import plotly.graph_objects as go
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pyschedvisu_core import figures as F
from pyschedvisu_core import overview as O
from pyschedvisu_core.calendar import business_days
from pyschedvisu_core.periods import previous_bounds
from tests.report_data import END, MON, TUE, frame, study
from tests.test_figures import spec

PREV_MON = MON - dt.timedelta(days=7)


def week(start: dt.date) -> tuple[dt.date, ...]:
    return tuple(business_days(start, start + dt.timedelta(days=4)))


def test_previous_period_of_weeks_and_of_a_year_and_none_before_the_first_year() -> None:
    assert previous_bounds(MON, END, weeks=1) == (PREV_MON, END - dt.timedelta(days=7))
    assert previous_bounds(dt.date(2019, 9, 2), END, weeks=12) == (
        dt.date(2019, 6, 10),
        dt.date(2019, 8, 30),
    )
    assert previous_bounds(dt.date(2020, 1, 1), dt.date(2020, 2, 29), anchor="year") == (
        dt.date(2019, 1, 1),
        dt.date(2019, 2, 28),
    )
    assert previous_bounds(dt.date(2016, 1, 1), END, anchor="first_year") is None


@pytest.mark.parametrize(
    ("value", "text"), [(12.4, "▲ 12 %"), (-5.6, "▼ 6 %"), (0.2, "= 0 %"), (None, "-")]
)
def test_change_is_an_arrow_and_a_percentage(value: float | None, text: str) -> None:
    assert O.fmt_change(value) == text


def test_summary_row_counts_like_the_page_and_compares_with_the_week_before() -> None:
    studies = frame(
        [
            # this week: Mon two studies (the 2nd a later take), Tue idle but retrieved
            study(MON, "08:00", "08:30", "FDG STAND.", "a"),
            study(MON, "09:40", "10:00", "FDG STAND.", "a", take=2),
            # the week before: Mon and Tue one study each
            study(PREV_MON, "08:00", "08:20", "FDG STAND.", "p"),
            study(PREV_MON + dt.timedelta(days=1), "08:00", "08:40", "FDG STAND.", "q"),
        ]
    )
    retrieved = frozenset([MON, TUE, PREV_MON, PREV_MON + dt.timedelta(days=1)])
    now = spec(retrieved=retrieved, service_from=PREV_MON, service_until=END)
    before = dataclasses.replace(now, start=PREV_MON, end=PREV_MON + dt.timedelta(days=4))
    before = dataclasses.replace(before, days=week(PREV_MON))
    got = O.summary_table(studies, [O.SummaryItem("hebdomadaire", now, before)])
    want = pl.DataFrame(
        {
            "period": ["hebdomadaire"],
            "period_label": ["hebdomadaire"],
            "machine": ["PET GE"],
            "first_day": [MON],
            "last_day": [END],
            "exams": [2],
            "slots": [30],  # Mon + the idle, retrieved Tue; Wed-Fri not retrieved
            "utilisation_pct": [100 * 2 / 30],
            "gaps": [1],  # 08:40 -> 09:30 (prep-padded), 50 min >= 30
            "median_duration_s": [1500.0],
            "retakes": [1],
            "no_activity_days": [1],
            "no_data_days": [3],
            "previous_first_day": [PREV_MON],
            "previous_last_day": [PREV_MON + dt.timedelta(days=4)],
            "previous_exams": [2],
            "change_pct": [0.0],
            # PET studies (CT,PT) whose headers told no injection: none measured
            "uptake_n": [0],
            "uptake_median_s": [None],
            "uptake_in_window_pct": [None],
            "activity_median_mbq": [None],
            "activity_p90_mbq": [None],
            "activity_ref_mbq": [None],
        },
        schema=O.SUMMARY_SCHEMA,
    )
    assert_frame_equal(got, want)


def test_summary_without_a_previous_period_or_without_data_there_has_no_change() -> None:
    studies = frame([study(MON, "08:00", "08:30", "FDG STAND.", "a")])
    now = spec()
    empty_before = dataclasses.replace(now, days=week(PREV_MON))
    got = O.summary_table(
        studies,
        [O.SummaryItem("longueduree", now, None), O.SummaryItem("hebdomadaire", now, empty_before)],
    )
    assert got["change_pct"].to_list() == [None, None]
    assert got["previous_exams"].to_list() == [None, 0]


def test_summary_page_lists_every_row_in_the_order_given() -> None:
    studies = frame([study(MON, "08:00", "08:30", "FDG STAND.", "a")])
    items = [O.SummaryItem("hebdomadaire", spec(machine=m), None) for m in ("PET GE", "Intevo")]
    table = O.summary_table(studies, items)
    fig = O.summary_dict(table, title="pySchedVisu", end=END, notes=["une note"])
    go.Figure(fig)  # a valid figure
    cells = F.table_cells(fig, "summary-table")
    assert cells[:3] == ["Période", "Machine", "Exam."]
    assert cells.index("PET GE") < cells.index("Intevo")
    notes = next(a["text"] for a in fig["layout"]["annotations"] if a["name"] == "notes")
    assert notes.endswith("une note")


def test_weekly_trend_counts_exams_and_slots_per_week_back_from_the_end() -> None:
    days = tuple(business_days(PREV_MON, END))
    studies = frame(
        [
            study(MON, "08:00", "08:30", "FDG STAND.", "a"),
            study(PREV_MON, "08:00", "08:30", "FDG STAND.", "b"),
            study(PREV_MON, "09:00", "09:30", "FDG STAND.", "c"),
        ]
    )
    sp = spec(days=days, retrieved=frozenset(days), service_from=PREV_MON, service_until=END)
    got = O.weekly_trend(studies, sp, END)
    assert got["weeks_back"].to_list() == [1, 0]
    assert got["exams"].to_list() == [2, 1]
    assert got["slots"].to_list() == [75, 75]
    assert got["util"].to_list() == pytest.approx([200 / 75, 100 / 75])


def test_trends_page_has_three_panels_per_machine_and_the_year_before() -> None:
    days = tuple(business_days(dt.date(2018, 1, 1), END))
    studies = frame(
        [study(d, "08:00", "08:30", "FDG STAND.", f"{d}") for d in days[::3]]
        + [study(d, "09:00", "09:30", "OTHER", f"o{d}") for d in days[::7]]
    )
    specs = [spec(days=days), spec(machine="Intevo", days=days)]
    fig = O.trends_dict(studies, specs, title="t", end=END)
    go.Figure(fig)
    json.dumps(fig, allow_nan=False)
    util = [t for t in fig["data"] if t.get("meta") == "trend-util"]
    assert [t["name"] for t in util] == ["52 dernières semaines", "année précédente"] * 2
    assert [t["line"]["dash"] for t in util[:2]] == ["solid", "dot"]
    months = [t for t in fig["data"] if t.get("meta") == "trend-months"]
    assert [t["name"] for t in months] == ["FDG STAND.", "AUTRE"]  # Intevo has no study
    assert len(months[0]["x"]) in (12, 13)  # the months of the last 52 weeks
    assert fig["layout"]["barmode"] == "stack"
