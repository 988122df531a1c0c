"""What a run needs and tells: end date from the scheduled time, needed days, quality rows."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu.phases import PhaseClock
from pyschedvisu_core import i18n, runs, schema
from pyschedvisu_core.calendar import report_end
from pyschedvisu_core.periods import first_needed_day

ZH = ZoneInfo("Europe/Zurich")


def test_saturday_cron_reports_the_friday_just_ended() -> None:
    # Saturday 01:00 Zurich = Friday 23:00 / 00:00 UTC depending on DST.
    sat = dt.datetime(2026, 11, 21, 1, 0, tzinfo=ZH)
    assert report_end(sat.astimezone(dt.UTC), 22) == dt.date(2026, 11, 20)
    summer = dt.datetime(2026, 7, 4, 1, 0, tzinfo=ZH)
    assert report_end(summer.astimezone(dt.UTC), 22) == dt.date(2026, 7, 3)


def test_late_run_reports_the_week_it_was_scheduled_for() -> None:
    # The run scheduled on Saturday but started on Tuesday still reports the Friday before
    # the *scheduled* time; the end date depends only on the scheduled time passed in.
    scheduled = dt.datetime(2026, 11, 21, 1, 0, tzinfo=ZH)
    assert report_end(scheduled, 22) == dt.date(2026, 11, 20)


def test_utc_midnight_edge_uses_zurich_day() -> None:
    # 22:30 UTC on Friday is 23:30 in Zurich (winter): past the 22:00 cut-off, Friday is complete.
    assert report_end(dt.datetime(2026, 11, 20, 22, 30, tzinfo=dt.UTC), 22) == dt.date(2026, 11, 20)
    # 20:30 UTC on Friday = 21:30 Zurich: before the cut-off, so yesterday (Thu) -> previous Friday.
    assert report_end(dt.datetime(2026, 11, 20, 20, 30, tzinfo=dt.UTC), 22) == dt.date(2026, 11, 13)


def test_naive_scheduled_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        report_end(dt.datetime(2026, 11, 21, 1, 0), 22)


@given(
    st.datetimes(
        min_value=dt.datetime(2017, 1, 1),
        max_value=dt.datetime(2040, 1, 1),
        timezones=st.just(dt.UTC),
    )
)
def test_report_end_is_a_past_friday(scheduled: dt.datetime) -> None:
    end = report_end(scheduled, 22)
    assert end.weekday() == 4
    local_day = scheduled.astimezone(ZH).date()
    assert dt.timedelta(0) <= local_day - end <= dt.timedelta(days=8)


def test_first_needed_day_by_periods() -> None:
    end = dt.date(2026, 11, 20)
    assert first_needed_day(end, [(1, None)], 2016) == dt.date(2026, 1, 1)
    assert first_needed_day(end, [(1, None), (None, "first_year")], 2016) == dt.date(2016, 1, 1)
    # 4 weeks ending mid-January reach back into December: the previous year is needed.
    assert first_needed_day(dt.date(2027, 1, 15), [(4, None)], 2016) == dt.date(2026, 1, 1)
    assert first_needed_day(dt.date(2027, 1, 15), [(1, None), (None, "year")], 2016) == dt.date(
        2027, 1, 1
    )


def outcomes() -> list[runs.DayOutcome]:
    return [
        runs.DayOutcome(dt.date(2026, 11, 19), False, error="RetrievalError: PACS unreachable"),
        runs.DayOutcome(
            dt.date(2026, 11, 16),
            True,
            {
                "studies": 30,
                "series": 120,
                "excluded": 14,
                "failed": 1,
                "reasons": {"no_end": 1},
                "method": "c-move",
                "from_cache": True,
            },
        ),
        runs.DayOutcome(
            dt.date(2026, 11, 17),
            True,
            {
                "studies": 28,
                "series": 101,
                "excluded": 9,
                "failed": 0,
                "reasons": {},
                "method": "c-move",
                "from_cache": False,
            },
        ),
    ]


def test_quality_rows_sorted_with_failures_named() -> None:
    rows = runs.quality_rows(outcomes())
    assert [r["day"] for r in rows] == ["2026-11-16", "2026-11-17", "2026-11-19"]
    assert rows[0] == {
        "day": "2026-11-16",
        "status": "ok",
        "studies": 30,
        "series kept": 120,
        "excluded": 14,
        "failed series": 1,
        "reasons": "no_end: 1",
        "method": "c-move",
        "from cache": True,
        "institutions not accepted": "",
    }
    assert rows[2]["status"] == "FAILED"
    assert rows[2]["reasons"] == "RetrievalError: PACS unreachable"
    assert rows[2]["studies"] is None


def test_rows_worth_showing_drops_old_cache_hits_only() -> None:
    rows = runs.quality_rows(outcomes())
    kept = runs.rows_worth_showing(rows, keep_from=dt.date(2026, 11, 17))
    assert [r["day"] for r in kept] == ["2026-11-17", "2026-11-19"]


def test_missing_days_note_names_the_days() -> None:
    missing = runs.missing_days(outcomes())
    assert missing == [dt.date(2026, 11, 19)]
    note = i18n.missing_days_note(missing, "fr")
    assert note is not None and "19/11/2026" in note and "1 jour" in note
    note_en = i18n.missing_days_note(missing, "en")
    assert note_en is not None and "19/11/2026" in note_en
    assert i18n.missing_days_note([], "fr") is None


def _study(day: dt.date, machine: str, start: str, end: str) -> dict[str, object]:
    s = dt.datetime.combine(day, dt.time.fromisoformat(start))
    e = dt.datetime.combine(day, dt.time.fromisoformat(end))
    return {"date": day, "machine": machine, "start": s, "end": e, "start_prep": s, "end_prep": e}


def test_week_summary_counts_studies_slots_and_gaps() -> None:
    mon, tue = dt.date(2026, 11, 16), dt.date(2026, 11, 17)
    rows = [
        _study(mon, "PET GE", "08:00", "09:00"),
        _study(mon, "PET GE", "08:30", "11:00"),  # overlaps: no gap after the first
        _study(mon, "PET GE", "12:00", "12:30"),  # 60 min idle after 11:00 -> a gap (>= 30)
        _study(tue, "PET GE", "09:00", "09:20"),
        _study(mon, "Millennium", "10:00", "10:30"),
        _study(dt.date(2026, 11, 9), "PET GE", "09:00", "09:20"),  # previous week: ignored
    ]
    studies = pl.DataFrame(rows).pipe(
        lambda f: f.select([pl.col(c).cast(schema.STUDY_SCHEMA[c]) for c in f.columns])
    )
    machines = {
        "petge": runs.MachinePlan("PET GE", [15, 15, 15, 15, 15], 30),
        "millennium": runs.MachinePlan("Millennium", [1, 7, 6, 3, 2], 60),
        "intevo": runs.MachinePlan("Intevo", [7] * 5, 60),
    }
    week = [mon, tue, dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20)]
    out = runs.week_summary(studies, week, machines)
    assert out == [
        {
            "machine": "PET GE",
            "studies": 4,
            "slots": 30,
            "utilisation_pct": 13.3,
            "gaps": 1,
            "gap_hours": 1.0,
        },
        {
            "machine": "Millennium",
            "studies": 1,
            "slots": 1,
            "utilisation_pct": 100.0,
            "gaps": 0,
            "gap_hours": 0.0,
        },
        {
            "machine": "Intevo",
            "studies": 0,
            "slots": 0,
            "utilisation_pct": None,
            "gaps": 0,
            "gap_hours": 0.0,
        },
    ]
    md = runs.week_markdown(dt.date(2026, 11, 20), out, [dt.date(2026, 11, 19)])
    assert "| PET GE | 4 | 30 | 13.3 % | 1 | 1.0 h |" in md
    assert "| Intevo | 0 | 0 | – | 0 | 0.0 h |" in md
    assert "2026-11-19" in md


def test_week_summary_counts_retrieved_idle_days_in_service() -> None:
    """Regression: the week artifact counted slots only on days with studies (DOMAIN §4)."""
    week = [dt.date(2026, 11, 16) + dt.timedelta(days=i) for i in range(5)]
    studies = pl.DataFrame([_study(week[0], "PET GE", "08:00", "09:00")]).pipe(
        lambda f: f.select([pl.col(c).cast(schema.STUDY_SCHEMA[c]) for c in f.columns])
    )
    in_service = runs.MachinePlan("PET GE", [15] * 5, 30, (dt.date(2026, 1, 5), None))
    retired = runs.MachinePlan("PET GE", [15] * 5, 30, (None, week[1]))
    # Wednesday not retrieved: no data, not counted
    retrieved = [week[0], week[1], week[3], week[4]]
    (row,) = runs.week_summary(studies, week, {"petge": in_service}, retrieved)
    assert (row["slots"], row["utilisation_pct"]) == (60, 1.7)
    (row,) = runs.week_summary(studies, week, {"petge": retired}, retrieved)
    assert row["slots"] == 30  # after its last day of service: not counted


def test_phase_clock_adds_up_named_phases() -> None:
    clock = PhaseClock()
    with clock("a"):
        pass
    with clock("b"):
        sum(range(10_000))
    with clock("a"):
        pass
    assert list(clock.seconds) == ["a", "b"]
    assert all(v >= 0 for v in clock.seconds.values())
    with pytest.raises(RuntimeError), clock("c"):
        raise RuntimeError("boom")
    assert "c" in clock.seconds  # a failing phase is still timed
    assert clock.text().startswith("a 0.0, b ")


def test_a_business_day_whose_studies_were_all_filtered_out_is_a_warning_naming_them() -> None:
    summary = {
        "studies": 0,
        "studies_found": 56,
        "series": 0,
        "excluded": 56,
        "failed": 0,
        "reasons": {"institution_not_accepted": 56},
        "dropped": {"institutions": {"ksseeland": 40, "kantonsspitalseeland": 16}},
        "method": "image-find",
        "from_cache": False,
    }
    empty = {**summary, "studies_found": 0, "excluded": 0, "reasons": {}, "dropped": {}}
    rows = runs.quality_rows(
        [
            runs.DayOutcome(dt.date(2026, 11, 16), True, summary),
            runs.DayOutcome(dt.date(2026, 11, 17), True, empty),
        ]
    )
    assert rows[0]["status"] == "no studies kept"
    assert rows[0]["institutions not accepted"] == "ksseeland (40), kantonsspitalseeland (16)"
    assert rows[1]["status"] == "no studies found"
    # warnings of days fetched in this run are shown, outside the report week too; those
    # read back from the store were told when they were fetched
    assert len(runs.rows_worth_showing(rows, keep_from=dt.date(2026, 12, 1))) == 2
    cached = [{**r, "from cache": True} for r in rows]
    assert runs.rows_worth_showing(cached, keep_from=dt.date(2026, 12, 1)) == []
