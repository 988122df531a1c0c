"""Checks of day-wide (relational-style) answers: what makes the retrieval fall back."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from pyschedvisu_core import queries as core


def series(study: str | None, uid: str | None) -> Dataset:
    ds = Dataset()
    if study is not None:
        ds.StudyInstanceUID = study
    if uid is not None:
        ds.SeriesInstanceUID = uid
    return ds


def instance(series_uid: str, sop: str) -> Dataset:
    ds = Dataset()
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = sop
    return ds


def test_day_series_query_lists_the_studies_and_returns_the_study_key() -> None:
    q = core.day_series_query(dt.date(2024, 3, 4), ["1.2", "1.3", "1.2"])
    assert q.QueryRetrieveLevel == "SERIES" and q.StudyDate == "20240304"
    assert list(q.StudyInstanceUID) == ["1.2", "1.3"]
    assert "PatientID" in q and "NumberOfSeriesRelatedInstances" in q
    single = core.day_series_query(dt.date(2024, 3, 4), ["1.2"])
    assert single.StudyInstanceUID == "1.2"


def test_consistent_day_series_answer_is_trusted() -> None:
    answers = [series("1.1", "2.1"), series("1.1", "2.2"), series("1.2", "2.3")]
    assert core.check_day_series(answers, {"1.1": 2, "1.2": None}) is None


def test_series_of_a_study_not_asked_for_is_not_trusted() -> None:
    answers = [series("1.1", "2.1"), series("9.9", "2.9")]
    assert "not asked" in str(core.check_day_series(answers, {"1.1": None}))


def test_study_missing_from_the_answer_is_not_trusted() -> None:
    """A PACS reading only the first UID of the list answers one study."""
    answers = [series("1.1", "2.1")]
    assert "no series" in str(core.check_day_series(answers, {"1.1": None, "1.2": None}))


def test_count_other_than_announced_is_not_trusted() -> None:
    answers = [series("1.1", "2.1")]
    assert "announced" in str(core.check_day_series(answers, {"1.1": 2}))
    assert core.check_day_series([series(None, "2.1")], {"1.1": None}) is not None


def test_day_images_keep_only_fully_answered_series() -> None:
    answers = [instance("2.1", "3.1"), instance("2.1", "3.2"), instance("2.2", "3.3")]
    grouped, why = core.check_day_images(answers, {"2.1": 2, "2.2": 2, "2.3": None})
    assert why is None
    assert set(grouped) == {"2.1"}  # 2.2 answered 1 of 2, 2.3 not at all


def test_day_images_of_a_series_without_announced_count_are_asked_again() -> None:
    # A day-wide answer cut at a PACS result limit looks complete unless the count is known.
    answers = [instance("2.1", "3.1"), instance("2.4", "3.4")]
    grouped, why = core.check_day_images(answers, {"2.1": 1, "2.4": None})
    assert why is None
    assert set(grouped) == {"2.1"}
    _, why = core.check_day_images([instance("9.9", "3.9")], {"2.1": 1})
    assert why is not None


@given(
    st.dictionaries(
        st.sampled_from(["1.1", "1.2", "1.3", "1.4"]),
        st.lists(st.sampled_from(["1", "2", "3", "4", "5"]), min_size=1, unique=True),
        min_size=1,
    ),
    st.sampled_from(["1.1", "1.2", "1.3", "1.4", "9.9"]),
)
def test_check_day_series_accepts_exactly_the_complete_answers(
    truth: dict[str, list[str]], dropped: str
) -> None:
    """The complete answer passes; dropping any study's series, or adding a foreign study's,
    fails."""
    answers = [series(study, f"{study}.{s}") for study, lst in truth.items() for s in lst]
    expected: dict[str, int | None] = {k: len(v) for k, v in truth.items()}
    assert core.check_day_series(answers, expected) is None
    partial = [a for a in answers if a.StudyInstanceUID != dropped]
    if dropped in truth:
        assert core.check_day_series(partial, expected) is not None
    else:
        assert core.check_day_series([*answers, series(dropped, "9.9.9")], expected) is not None


def numbered(series_uid: str, sop: str, number: str) -> Dataset:
    ds = instance(series_uid, sop)
    ds.InstanceNumber = number
    return ds


def test_pick_query_matches_one_instance_number_in_listed_series() -> None:
    ds = core.day_pick_query(["2.1", "2.2"], 30, timing=True)
    assert ds.QueryRetrieveLevel == "IMAGE"
    assert ds.InstanceNumber == "30"
    assert list(ds.SeriesInstanceUID) == ["2.1", "2.2"]
    assert "StudyInstanceUID" not in ds  # relational: kept out of every answer
    assert "AcquisitionTime" in ds and "PhaseInformationSequence" in ds
    assert "AcquisitionTime" not in core.day_pick_query(["2.1"], 1, timing=False)


def test_picks_keep_series_answered_exactly_once() -> None:
    answers = [
        numbered("2.1", "3.1", "7"),
        numbered("2.2", "3.2", " 7"),  # IS values may be padded
        numbered("2.2", "3.3", "7"),  # numbered twice: listed instead
    ]
    picks, why = core.check_day_picks(answers, ["2.1", "2.2", "2.3"], 7)
    assert why is None
    assert {uid: core.sop_uid(ds) for uid, ds in picks.items()} == {"2.1": "3.1"}


def test_pick_answer_ignoring_the_instance_number_is_not_trusted() -> None:
    answers = [numbered("2.1", "3.1", "1"), numbered("2.1", "3.2", "2")]
    picks, why = core.check_day_picks(answers, ["2.1"], 1)
    assert picks == {} and "InstanceNumber=1" in str(why)
    picks, why = core.check_day_picks([numbered("9.9", "3.9", "1")], ["2.1"], 1)
    assert picks == {} and "not asked for" in str(why)
