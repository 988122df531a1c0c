"""Report numbers as frames: labels, colours, gaps, counts, durations, time of day."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pyschedvisu_core import schedule as sch
from pyschedvisu_core.colors import later_take_shade, to_lab
from tests.report_data import MON, TUE, frame, known_week, study

WEEK = [MON + dt.timedelta(days=i) for i in range(5)]
RETAKES = ("OS 3 PHASE",)


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


def test_gaps_of_the_known_week() -> None:
    got = sch.find_gaps(known_week(), 30)
    want = pl.DataFrame(
        {
            "date": [MON, TUE],
            "start": [at(MON, "09:20"), at(TUE, "08:30")],
            "end": [at(MON, "10:20"), at(TUE, "09:20")],
            "duration_s": [3600.0, 3000.0],
        },
        schema={
            "date": pl.Date(),
            "start": pl.Datetime("us"),
            "end": pl.Datetime("us"),
            "duration_s": pl.Float64(),
        },
    )
    assert_frame_equal(got, want)


def test_gap_not_counted_where_a_long_overlapping_study_is_still_running() -> None:
    # B lies inside A; the stretch between B's end and C's start is not idle (A runs).
    f = frame(
        [
            study(MON, "08:00", "12:00", "OTHER", "a"),
            study(MON, "08:30", "09:00", "OTHER", "b"),
            study(MON, "12:05", "12:30", "OTHER", "c"),
        ]
    )
    assert sch.find_gaps(f, 30).height == 0


def test_overlapping_study_ending_inside_a_candidate_gap_shortens_it() -> None:
    # A (08:00-10:00) outlasts B (08:30-09:00): idle time only from A's padded end.
    f = frame(
        [
            study(MON, "08:00", "10:00", "OTHER", "a"),
            study(MON, "08:30", "09:00", "OTHER", "b"),
            study(MON, "11:00", "11:30", "OTHER", "c"),
        ]
    )
    got = sch.find_gaps(f, 30)
    assert got["start"].to_list() == [at(MON, "10:10")]
    assert got["duration_s"].to_list() == [40 * 60.0]


def test_threshold_is_inclusive() -> None:
    f = frame(
        [study(MON, "08:00", "08:30", "OTHER", "a"), study(MON, "09:20", "09:40", "OTHER", "b")]
    )
    assert sch.find_gaps(f, 30).height == 1  # 08:40 -> 09:10 = exactly 30 min
    assert sch.find_gaps(f, 31).height == 0


def test_labels_split_by_take_and_retaken_flag() -> None:
    lab = sch.with_labels(known_week(), RETAKES)
    assert lab.filter(pl.col("study_uid") == "u7")["label"].to_list() == [
        "OS 3 PHASE [1]",
        "OS 3 PHASE [2]",
    ]
    assert lab.filter(pl.col("retaken"))["study_uid"].unique().to_list() == ["u7"]
    assert lab.filter(pl.col("study_uid") == "u6")["duration_s"].item() == 45 * 60


def test_label_order_and_colours_other_last() -> None:
    order = ["FDG STAND.", "FDG CORPS", "RB82 COEUR", "OS 3 PHASE"]
    present = ["OTHER", "OS 3 PHASE [2]", "FDG STAND.", "OS 3 PHASE [1]", "NEW LABEL"]
    assert sch.label_order(order, present, RETAKES) == [
        "FDG STAND.",
        "OS 3 PHASE [1]",
        "OS 3 PHASE [2]",
        "NEW LABEL",
        "OTHER",
    ]
    colors = ["#d46300", "#b8860b", "#d62728", "#737373"]
    assert [
        sch.color_of(x, order, colors)
        for x in ["FDG STAND.", "FDG CORPS", "RB82 COEUR", "OS 3 PHASE [1]", "OTHER"]
    ] == [
        "#d46300",
        "#b8860b",
        "#d62728",
        "#d46300",  # 4th label wraps around, never takes OTHER's colour
        "#737373",
    ]
    # a later take: a darker shade of its description's colour
    shade = sch.color_of("OS 3 PHASE [2]", order, colors)
    assert shade == later_take_shade("#d46300") != "#d46300"
    assert to_lab(shade)[0] == pytest.approx(to_lab("#d46300")[0] - 20, abs=1.0)


def test_count_table_per_day_with_total_and_mean() -> None:
    studies = known_week()
    gaps = sch.find_gaps(studies, 30)
    daily = sch.daily_counts(studies, gaps, WEEK, [15, 15, 15, 15, 15])
    table = sch.count_table(daily, sch.day_bins(WEEK, "day"))
    assert table["label"].to_list() == [
        "Lu 18/11",
        "Ma 19/11",
        "Me 20/11",
        "Je 21/11",
        "Ve 22/11",
        "total",
        "mean",
    ]
    rows = {r["label"]: r for r in table.iter_rows(named=True)}
    assert (rows["Lu 18/11"]["slots"], rows["Lu 18/11"]["exams"], rows["Lu 18/11"]["gaps"]) == (
        15,
        6,
        1,
    )
    assert rows["Lu 18/11"]["util"] == pytest.approx(40.0)
    assert rows["Me 20/11"]["slots"] == 0 and rows["Me 20/11"]["util"] is None
    assert (rows["total"]["slots"], rows["total"]["exams"], rows["total"]["gaps"]) == (30, 8, 2)
    assert rows["total"]["util"] == pytest.approx(100 * 8 / 30)
    assert (rows["mean"]["exams"], rows["mean"]["gaps"]) == (4.0, 1.0)
    # one definition of mean utilisation: total exams / total slots, as the total row
    assert rows["mean"]["util"] == rows["total"]["util"]
    assert (rows["Lu 18/11"]["first_day"], rows["total"]["last_day"]) == (MON, WEEK[-1])
    assert (rows["Me 20/11"]["no_data"], rows["total"]["no_data"]) == (1, 3)


D = dt.date  # inline dates below


def week_counts(
    studies: pl.DataFrame,
    retrieved: list[dt.date],
    service: tuple[dt.date | None, dt.date | None] = (None, None),
    days: list[dt.date] = WEEK,
) -> pl.DataFrame:
    gaps = sch.find_gaps(studies, 30)
    return sch.daily_counts(studies, gaps, days, [15, 15, 15, 15, 15], retrieved, service)


def test_retrieved_day_without_study_in_service_counts_its_slots_with_no_activity() -> None:
    """Regression: slots were counted only on days with studies, so a retrieved Tuesday with no
    study on a PET showed Plages 0 and "-", and the week's utilisation left it out."""
    studies = frame(
        [
            study(d, f"{8 + k:02d}:00", f"{8 + k:02d}:30", "OTHER", f"{d}-{k}")
            for d in (WEEK[0], *WEEK[2:])
            for k in range(2)
        ]
    )
    got = week_counts(studies, retrieved=WEEK, service=(D(2019, 1, 7), D(2019, 12, 20)))
    want = pl.DataFrame(
        {
            "date": WEEK,
            "status": ["activity", "no_activity", "activity", "activity", "activity"],
            "counted": [True] * 5,
            "slots": [15] * 5,
            "exams": [2, 0, 2, 2, 2],
            "gaps": [0] * 5,
        },
        schema={
            "date": pl.Date(),
            "status": pl.String(),
            "counted": pl.Boolean(),
            "slots": pl.Int64(),
            "exams": pl.Int64(),
            "gaps": pl.Int64(),
        },
    )
    assert_frame_equal(got, want)
    table = sch.count_table(got, sch.day_bins(WEEK, "day"))
    tuesday = table.filter(pl.col("label") == "Ma 19/11").row(0, named=True)
    assert (tuesday["slots"], tuesday["exams"], tuesday["util"], tuesday["no_activity"]) == (
        15,
        0,
        0,
        1,
    )
    total = table.filter(pl.col("row") == "total").row(0, named=True)
    assert total["util"] == pytest.approx(100 * 8 / 75)  # not 8 / 60


def test_day_not_retrieved_is_no_data_and_not_counted() -> None:
    studies = frame([study(MON, "08:00", "08:30", "OTHER", "a")])
    got = week_counts(studies, retrieved=[MON, TUE])
    assert got["status"].to_list() == ["activity", "no_activity", "no_data", "no_data", "no_data"]
    assert got["slots"].to_list() == [15, 15, 0, 0, 0]


def test_days_outside_the_service_window_do_not_count_even_retrieved() -> None:
    studies = frame([study(WEEK[2], "08:00", "08:30", "OTHER", "a")])
    got = week_counts(studies, retrieved=WEEK, service=(TUE, WEEK[3]))
    assert got["status"].to_list() == [
        "out_of_service",
        "no_activity",
        "activity",
        "no_activity",
        "out_of_service",
    ]
    assert got["slots"].to_list() == [0, 15, 15, 15, 0]


def test_a_day_with_studies_counts_even_outside_the_window_or_not_retrieved() -> None:
    # its studies prove the scanner worked and that its data are there
    studies = frame([study(MON, "08:00", "08:30", "OTHER", "a")])
    got = week_counts(studies, retrieved=[], service=(TUE, None))
    assert got.row(0, named=True)["status"] == "activity" and got["slots"][0] == 15


def test_holidays_never_count_even_retrieved() -> None:
    from pyschedvisu_core.calendar import business_days

    days = business_days(
        D(2019, 12, 23), D(2019, 12, 27), "CH", "VD", ((12, 24), (12, 26), (12, 31))
    )
    assert days == [D(2019, 12, 23), D(2019, 12, 27)]  # 24-26 closed
    every_day = [D(2019, 12, 23) + dt.timedelta(days=i) for i in range(5)]
    got = week_counts(frame([study(days[0], "08:00", "08:30", "OTHER", "a")]), every_day, days=days)
    assert got["slots"].sum() == 30


@settings(max_examples=80, deadline=None)
@given(
    exams=st.lists(st.integers(0, 3), min_size=10, max_size=10),
    retrieved=st.lists(st.booleans(), min_size=10, max_size=10),
    window=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    slots=st.lists(st.integers(0, 20), min_size=5, max_size=5),
)
def test_slots_count_on_days_with_studies_or_retrieved_in_service(
    exams: list[int], retrieved: list[bool], window: tuple[int, int], slots: list[int]
) -> None:
    days = [d for d in (MON + dt.timedelta(days=i) for i in range(14)) if d.weekday() < 5]
    first, last = days[min(window)], days[max(window)]
    rows = [
        study(d, f"{8 + k:02d}:00", f"{8 + k:02d}:30", "OTHER", f"{d}-{k}")
        for d, n in zip(days, exams, strict=True)
        for k in range(n)
    ]
    studies = frame(rows) if rows else frame([study(MON, "08:00", "08:30", "OTHER", "x")]).clear()
    got_retrieved = [d for d, r in zip(days, retrieved, strict=True) if r]
    daily = sch.daily_counts(
        studies, sch.find_gaps(studies, 30), days, slots, got_retrieved, (first, last)
    )
    counted = [
        n > 0 or (r and first <= d <= last) for d, n, r in zip(days, exams, retrieved, strict=True)
    ]
    assert daily["counted"].to_list() == counted
    assert daily["slots"].sum() == sum(
        slots[d.weekday()] for d, c in zip(days, counted, strict=True) if c
    )
    table = sch.count_table(daily, sch.day_bins(days, "week"))
    total = table.filter(pl.col("row") == "total").row(0, named=True)
    mean = table.filter(pl.col("row") == "mean").row(0, named=True)
    assert total["exams"] == sum(exams)
    assert total["no_data"] == sum(
        1
        for d, n, r in zip(days, exams, retrieved, strict=True)
        if n == 0 and first <= d <= last and not r
    )
    if total["slots"]:
        assert total["util"] == pytest.approx(100 * sum(exams) / total["slots"])
        assert mean["util"] == total["util"]


def test_weekly_bins_count_days_with_data() -> None:
    days = [MON - dt.timedelta(days=7) + dt.timedelta(days=i) for i in range(12) if (i % 7) < 5]
    studies = known_week()
    daily = sch.daily_counts(studies, sch.find_gaps(studies, 30), days, [7, 7, 7, 7, 7])
    table = sch.count_table(daily, sch.day_bins(days, "week"))
    assert table["label"].to_list() == ["S46", "S47", "total", "mean"]
    assert table["days"].to_list() == [0, 2, 2, 2]
    assert table["slots"].to_list()[:2] == [0, 14]


def test_month_bins_label_with_year_only_when_the_period_spans_years() -> None:
    one = sch.day_bins([dt.date(2019, 1, 7), dt.date(2019, 2, 4)], "month")
    two = sch.day_bins([dt.date(2018, 12, 3), dt.date(2019, 1, 7)], "month")
    assert one["bin_label"].to_list() == ["janv.", "févr."]
    assert two["bin_label"].to_list() == ["12/18", "01/19"]


def test_four_week_bins_are_counted_back_from_the_end() -> None:
    days = [dt.date(2019, 9, 2) + dt.timedelta(days=i) for i in range(0, 12 * 7) if i % 7 < 5]
    bins = sch.day_bins(days, "4weeks")
    assert bins["bin_label"].unique(maintain_order=True).to_list() == ["S36-39", "S40-43", "S44-47"]


def test_duration_table_with_split_and_gap_row() -> None:
    lab = sch.with_labels(known_week(), RETAKES)
    labels = sch.label_order(
        ["FDG STAND.", "FDG CORPS", "RB82 COEUR", "OS 3 PHASE"],
        lab["label"].unique().to_list(),
        RETAKES,
    )
    got = sch.duration_table(lab, sch.find_gaps(known_week(), 30), labels)
    want = pl.DataFrame(
        {
            "label": [
                "FDG STAND.",
                "FDG CORPS",
                "RB82 COEUR",
                "OS 3 PHASE [1]",
                "OS 3 PHASE [2]",
                "OTHER",
                "GAPS",
            ],
            "n": [3, 1, 1, 1, 1, 1, 2],
            "mean_s": [2100.0, 1800.0, 1800.0, 1200.0, 1200.0, 7200.0, 3300.0],
            "median_s": [1800.0, 1800.0, 1800.0, 1200.0, 1200.0, 7200.0, 3300.0],
            "p90_s": [2520.0, 1800.0, 1800.0, 1200.0, 1200.0, 7200.0, 3540.0],
            "min_s": [1800.0, 1800.0, 1800.0, 1200.0, 1200.0, 7200.0, 3000.0],
            "max_s": [2700.0, 1800.0, 1800.0, 1200.0, 1200.0, 7200.0, 3600.0],
        },
        schema={
            "label": pl.String(),
            "n": pl.Int64(),
            "mean_s": pl.Float64(),
            "median_s": pl.Float64(),
            "p90_s": pl.Float64(),
            "min_s": pl.Float64(),
            "max_s": pl.Float64(),
        },
    )
    assert_frame_equal(got, want)


def test_time_of_day_distribution_peaks_at_one_where_studies_run() -> None:
    lab = sch.with_labels(known_week(), RETAKES)
    dist = sch.time_of_day_distribution(lab, ["FDG STAND."], 180, 900)
    assert dist["share"].max() == pytest.approx(1.0)
    assert dist.filter(pl.col("hour").is_between(8.1, 8.3))["share"].min() > 0.5
    assert dist.filter(pl.col("hour").is_between(9.5, 10.2))["share"].max() == 0.0


def test_duration_density_is_normalised_and_spans_the_data() -> None:
    lab = sch.with_labels(known_week(), RETAKES)
    dens = sch.duration_density(lab, ["FDG STAND.", "OTHER"], points=16)
    part = dens.filter(pl.col("label") == "FDG STAND.")
    assert part.height == 16 and part["density"].max() == pytest.approx(1.0)
    assert (part["minutes"].min(), part["minutes"].max()) == (30.0, 45.0)
    assert dens.filter(pl.col("label") == "OTHER")["minutes"].to_list() == [120.0]


@pytest.mark.parametrize(
    ("text", "seconds"), [("3m", 180), ("15m", 900), ("1h30m", 5400), ("90s", 90)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert sch.parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="duration"):
        sch.parse_duration("3 minutes")


intervals = st.lists(
    st.tuples(st.integers(7 * 60, 19 * 60), st.integers(1, 180)), min_size=1, max_size=25
)


@settings(max_examples=150, deadline=None)
@given(spans=intervals, threshold=st.integers(1, 90))
def test_gaps_are_exactly_the_idle_stretches_between_merged_studies(
    spans: list[tuple[int, int]], threshold: int
) -> None:
    rows = [
        study(
            MON,
            f"{a // 60:02d}:{a % 60:02d}",
            f"{min(a + d, 1439) // 60:02d}:{min(a + d, 1439) % 60:02d}",
            "OTHER",
            f"u{i}",
            prep=0,
        )
        for i, (a, d) in enumerate(spans)
    ]
    got = sch.find_gaps(frame(rows), threshold)
    # Brute force: merge the intervals, gaps are the holes >= threshold between them.
    merged: list[list[int]] = []
    for a, b in sorted((a, min(a + d, 1439)) for a, d in spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    want = [(x[1], y[0]) for x, y in itertools.pairwise(merged) if y[0] - x[1] >= threshold]
    minutes = [
        (int(s.hour * 60 + s.minute), int(e.hour * 60 + e.minute))
        for s, e in got.select("start", "end").iter_rows()
    ]
    assert minutes == want


@settings(max_examples=60, deadline=None)
@given(
    per_day=st.lists(st.integers(0, 12), min_size=5, max_size=5),
    slots=st.lists(st.integers(0, 20), min_size=5, max_size=5),
)
def test_count_table_total_is_the_sum_of_its_bins(per_day: list[int], slots: list[int]) -> None:
    rows = [
        study(day, f"{8 + k:02d}:00", f"{8 + k:02d}:30", "OTHER", f"{day}-{k}")
        for day, n in zip(WEEK, per_day, strict=True)
        for k in range(n)
    ]
    studies = frame(rows) if rows else frame([study(MON, "08:00", "08:30", "OTHER", "x")]).clear()
    daily = sch.daily_counts(studies, sch.find_gaps(studies, 30), WEEK, slots)
    table = sch.count_table(daily, sch.day_bins(WEEK, "day"))
    bins = table.filter(pl.col("row") == "bin")
    total = table.filter(pl.col("row") == "total").row(0, named=True)
    assert total["exams"] == sum(per_day) == bins["exams"].sum()
    assert total["slots"] == sum(s for s, n in zip(slots, per_day, strict=True) if n > 0)
    if total["slots"]:
        assert total["util"] == pytest.approx(100 * sum(per_day) / total["slots"])


@settings(max_examples=60, deadline=None)
@given(
    minutes=st.lists(st.integers(5, 240), min_size=2, max_size=80),
    points=st.integers(2, 40),
    bins=st.integers(1, 64),
)
def test_duration_density_vectorised_equals_the_kernel_sum(
    minutes: list[int], points: int, bins: int
) -> None:
    # The density is computed as one polars cross join: it must equal the plain sum of
    # Gaussian kernels over the binned durations, point by point.
    rows = [
        study(MON, "08:00", f"{8 + m // 60:02d}:{m % 60:02d}", "FDG STAND.", f"p{i}")
        for i, m in enumerate(minutes)
    ]
    lab = sch.with_labels(frame(rows), RETAKES)
    got = sch.duration_density(lab, ["FDG STAND."], points=points, bins=bins)
    values = [v / 60 for v in lab["duration_s"].to_list()]
    lo, hi, n = min(values), max(values), len(values)
    if hi - lo < 1e-9:
        assert got["density"].to_list() == [1.0]
        return
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    bw = 1.06 * (std if std > 0 else (hi - lo) / 4) * n ** (-0.2)
    width = (hi - lo) / bins
    # A duration exactly on a bin edge may fall either side by float rounding (1 ulp):
    # both are right, so such draws say nothing about the kernel sum.
    assume(
        all(
            abs(r - round(r)) > 1e-6 or round(r) in (0, bins)
            for r in ((v - lo) / width for v in values)
        )
    )
    counts: dict[int, int] = {}
    for v in values:
        b = min(max(math.floor((v - lo) / width), 0), bins - 1)
        counts[b] = counts.get(b, 0) + 1
    grid = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
    dens = [
        sum(
            c * math.exp(-0.5 * ((g - (lo + (b + 0.5) * width)) / bw) ** 2)
            for b, c in counts.items()
        )
        for g in grid
    ]
    assert got["minutes"].to_list() == pytest.approx(grid)
    assert got["density"].to_list() == pytest.approx([d / max(dens) for d in dens], rel=1e-9)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "00:00"),
        (2100, "35:00"),
        (3599.4, "59:59"),
        (3599.6, "1:00 h"),
        (265 * 60 + 18, "4:25 h"),  # a gap printed "265:18" before
        (10 * 3600 + 29 * 60 + 31, "10:30 h"),
    ],
)
def test_durations_from_an_hour_on_read_as_hours_and_minutes(
    seconds: float | None, text: str
) -> None:
    from pyschedvisu_core import i18n

    assert i18n.fmt_duration(seconds) == text
