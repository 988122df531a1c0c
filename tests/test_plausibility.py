"""Times that cannot be believed (issue 15, docs/domain.md §2.3): failed or excluded with a reason.

Pure rules on inline values: one series' times (:func:`series_timing` with ``max_series``),
studies longer than their machine's maximum (:func:`implausible_studies`), series dated another
day than their study (excluded, never dropped unseen), through :func:`assemble_day` too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from pyschedvisu_core.dayframes import TimedSeries, assemble_day, series_frame
from pyschedvisu_core.plausibility import StudyLimits, implausible_studies
from pyschedvisu_core.schema import Reason
from pyschedvisu_core.series import series_timing

DAY = dt.date(2024, 3, 6)
H3 = dt.timedelta(hours=3)
MACHINES = {
    "PET Siemens": ["Biograph64_Vision 600", "Biograph64"],
    "SPECT-CT": ["Tandem_Discovery_670"],
}


def at(hh: int, mm: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm)


def instance(number: int, time: str, model: str = "Biograph64_Vision 600", **extra: Any) -> Dataset:
    ds = Dataset()
    ds.InstanceNumber = number
    ds.AcquisitionTime = time
    ds.ManufacturerModelName = model
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


# -- one series -----------------------------------------------------------------------------


def test_pet_series_from_midnight_to_midnight_fails_instead_of_a_24_hour_study() -> None:
    """Regression (issue 15): AcquisitionTime 000000 on the first PET instance and 235959 on
    the last made a 24-hour "FDG STAND." study; with AcquisitionDate on both nothing can
    re-date them, with none they read as 00:00 and 23:59:59 of the day."""
    dated = [instance(1, "000000", AcquisitionDate="20240306"), instance(300, "235959")]
    timing = series_timing("PT", DAY, dated, max_series=H3)
    assert timing.failed is not None
    assert timing.failed.split(":")[0] in (Reason.UNORDERED_TIMES, Reason.IMPLAUSIBLE_DURATION)
    assert (timing.start, timing.machine) == (at(0), "Biograph64_Vision 600")


@pytest.mark.parametrize(
    ("first", "last", "failed"),
    [
        ("080000", "105959", None),  # 2 h 59 min 59 s: a long but believable PET
        ("080000", "110000", None),  # exactly the maximum
        ("080000", "110001", Reason.IMPLAUSIBLE_DURATION),
        ("063000", "131500", Reason.IMPLAUSIBLE_DURATION),
    ],
)
def test_ct_pt_series_longer_than_the_maximum_fail(
    first: str, last: str, failed: str | None
) -> None:
    for modality in ("CT", "PT"):
        timing = series_timing(
            modality, DAY, [instance(1, first), instance(2, last)], max_series=H3
        )
        code = None if timing.failed is None else timing.failed.split(":")[0]
        assert code == failed, (modality, timing.failed)
        assert timing.start is not None and timing.end is not None  # kept for the failed row


def test_without_a_maximum_a_long_series_is_kept_as_before() -> None:
    timing = series_timing("CT", DAY, [instance(1, "063000"), instance(2, "131500")])
    assert timing.failed is None and timing.end == at(13, 15)


def test_the_maximum_is_not_applied_to_nm_nor_to_the_brain_fdg_rule() -> None:
    nm = instance(
        1, "090000", "Tandem_Discovery_670", ActualFrameDuration=1000, NumberOfFrames=4 * 3600
    )
    assert series_timing("NM", DAY, [nm], max_series=H3).failed is None  # 4 h of NM: believed
    brain = [instance(1, "090000"), instance(2, "090000")]
    timing = series_timing(
        "PT", DAY, brain, "FDG Cerveau 10min", max_series=dt.timedelta(minutes=5)
    )
    # the description's minutes (at most 120) are the duration: no instance time to doubt
    assert timing.failed is None and timing.end == at(9, 10)


@given(
    start=st.integers(0, 23 * 3600),
    length=st.integers(0, 12 * 3600),
    limit=st.integers(60, 12 * 3600),
)
def test_a_series_fails_on_its_length_exactly_when_it_exceeds_the_maximum(
    start: int, length: int, limit: int
) -> None:
    end = min(start + length, 24 * 3600 - 1)
    fmt = "{:02d}{:02d}{:02d}".format
    times = [fmt(t // 3600, t // 60 % 60, t % 60) for t in (start, end)]
    heads = [instance(1, times[0], AcquisitionDate="20240306"), instance(2, times[1])]
    timing = series_timing("PT", DAY, heads, max_series=dt.timedelta(seconds=limit))
    too_long = end - start > limit
    assert (timing.failed is not None) == too_long
    if too_long:
        assert timing.failed is not None
        assert timing.failed.split(":")[0] in (Reason.IMPLAUSIBLE_DURATION, Reason.UNORDERED_TIMES)


# -- studies ----------------------------------------------------------------------------------


def row(
    study: str, series: str, start: dt.datetime, end: dt.datetime, model: str
) -> dict[str, Any]:
    return {"study_uid": study, "series_uid": series, "start": start, "end": end, "machine": model}


LIMITS = StudyLimits(
    default=dt.timedelta(hours=6),
    pause=dt.timedelta(seconds=3540),
    by_machine={"spect-ct": dt.timedelta(hours=8)},
    machines=MACHINES,
)


def test_a_bone_scan_with_its_late_phase_is_two_takes_not_an_implausible_study() -> None:
    rows = [
        row("bone", "early", at(8), at(8, 30), "Tandem_Discovery_670"),
        row("bone", "late", at(11, 30), at(12, 30), "Tandem_Discovery_670"),
    ]
    assert implausible_studies(rows, LIMITS) == {}


def test_series_chained_over_the_machine_maximum_fail_all_of_them() -> None:
    pet = "Biograph64_Vision 600"
    rows = [row("st", f"s{h}", at(h), at(h, 50), pet) for h in range(7, 14)]  # 07:00-13:50
    rows[0]["machine"] = "Biograph64"  # its CT: the study's models make the PET Siemens group
    rows.append(row("other", "x", at(7), at(7, 20), pet))
    failed = implausible_studies(rows, LIMITS)
    assert set(failed) == {f"s{h}" for h in range(7, 14)}
    why = failed["s7"]
    assert why.startswith(Reason.IMPLAUSIBLE_STUDY + ": ")
    assert "6 h 50 min" in why and "PET Siemens" in why


def test_the_maximum_is_the_machines_own_when_configured() -> None:
    spect = "Tandem_Discovery_670"
    seven_hours = [row("st", "nm", at(8), at(15), spect)]
    assert implausible_studies(seven_hours, LIMITS) == {}  # SPECT-CT: 8 h
    nine_hours = [row("st", "nm", at(8), at(17), spect)]
    assert set(implausible_studies(nine_hours, LIMITS)) == {"nm"}
    unknown = [row("st", "x", at(8), at(15), "Some Other Camera")]
    assert set(implausible_studies(unknown, LIMITS)) == {"x"}  # the default: 6 h


# -- another day ------------------------------------------------------------------------------


def series_answer(uid: str, date: dt.date | None) -> dict[str, Any]:
    return {
        "date": DAY,
        "study_uid": "st",
        "series_uid": uid,
        "modality": "PT",
        "series_description": "PET",
        "protocol_name": None,
        "institution": "CHUV",
        "n_instances": 2,
        "series_date": date,
        "series_time": None,
        "study_description": "PET FDG",
    }


def test_a_series_dated_another_day_is_excluded_with_its_date_not_dropped() -> None:
    """Regression (issue 15): a series dated Sunday inside a Wednesday study vanished."""
    sunday = dt.date(2024, 3, 10)
    rows = [series_answer("a", DAY), series_answer("b", sunday), series_answer("c", None)]
    series, excluded = series_frame(rows, DAY)
    assert series["series_uid"].to_list() == ["a", "c"]
    assert excluded.select("level", "series_uid", "reason").rows() == [
        ("series", "b", f"{Reason.OTHER_DAY}: dated 2024-03-10")
    ]


def timed(
    uid: str, start: str, end: str, *, series_date: dt.date | None = DAY, **extra: Any
) -> TimedSeries:
    answer = series_answer(uid, series_date)
    heads = [instance(1, start, **extra), instance(2, end, **extra)]
    return TimedSeries(row=answer, headers=heads, institution="CHUV")


def test_assemble_day_fails_implausible_times_and_excludes_other_days() -> None:
    items = [
        timed("ok", "080000", "083000"),
        timed("long", "080000", "120000"),
        # no SeriesDate, acquired the day before: that day's series, excluded here
        timed("yesterday", "080000", "081000", series_date=None, AcquisitionDate="20240305"),
    ]
    frames = assemble_day(
        DAY,
        items,
        {"st": "key"},
        ["chuv"],
        max_series=H3,
        study_limits=LIMITS,
    )
    assert frames.series["series_uid"].to_list() == ["ok"]
    failed = dict(frames.failed.select("series_uid", "reason").iter_rows())
    assert set(failed) == {"long"} and failed["long"].startswith(Reason.IMPLAUSIBLE_DURATION)
    excluded = dict(frames.excluded.select("series_uid", "reason").iter_rows())
    assert excluded == {"yesterday": f"{Reason.OTHER_DAY}: acquired 2024-03-05"}
    assert frames.other_days == 1


def test_assemble_day_fails_every_series_of_a_study_longer_than_its_machine_allows() -> None:
    items = [timed(f"s{h}", f"{h:02d}0000", f"{h:02d}5000") for h in range(7, 14)]
    frames = assemble_day(DAY, items, {"st": "key"}, ["chuv"], study_limits=LIMITS)
    assert frames.series.height == 0
    assert set(frames.failed["reason"].str.split(":").list.first()) == {Reason.IMPLAUSIBLE_STUDY}
    assert frames.implausible_studies == 7
    # without limits (as before): all kept
    frames = assemble_day(DAY, items, {"st": "key"}, ["chuv"])
    assert frames.series.height == 7 and frames.failed.height == 0


def test_reasons_are_known_codes() -> None:
    for code in (
        Reason.IMPLAUSIBLE_DURATION,
        Reason.ZERO_DURATION,
        Reason.UNORDERED_TIMES,
        Reason.IMPLAUSIBLE_STUDY,
    ):
        assert code in Reason.FAILED
    assert Reason.OTHER_DAY in Reason.EXCLUDED
    assert pl.Series(Reason.FAILED + Reason.EXCLUDED).n_unique() == len(
        Reason.FAILED + Reason.EXCLUDED
    )
