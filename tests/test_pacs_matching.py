"""C-FIND matching rules of the demo PACS (PS3.4 C.2.2.2), on string values."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu.demo_pacs.matching import is_universal, matches, tm_seconds


@pytest.mark.parametrize("q", [None, "", "  ", "*"])
def test_universal_queries_match_everything_even_missing_values(q: str | None) -> None:
    assert is_universal(q)
    assert matches(q, "LO", None)
    assert matches(q, "DA", "20240304")


def test_single_value_is_exact_and_case_sensitive_except_person_names() -> None:
    assert matches("PT", "CS", "PT")
    assert not matches("PT", "CS", "pt")
    assert not matches("PT", "CS", "PTX")
    assert matches("doe^john", "PN", "DOE^John")
    assert not matches("PT", "CS", None)


def test_backslash_list_matches_any_item_and_multi_valued_data() -> None:
    assert matches("PT\\NM", "CS", "NM")
    assert not matches("PT\\NM", "CS", "CT")
    uids = "1.2.3\\1.2.4"
    assert matches(uids, "UI", "1.2.4")
    assert not matches(uids, "UI", "1.2.44")
    # a multi-valued stored attribute matches when one of its values does
    assert matches("SECONDARY", "CS", "DERIVED\\SECONDARY")


def test_wildcards_star_and_question_mark() -> None:
    assert matches("PET*", "LO", "PET-CT FDG")
    assert matches("*FDG*", "LO", "PET-CT FDG TRONC")
    assert matches("O? 3*", "LO", "OS 3 PHASES")
    assert not matches("O? 3*", "LO", "OSS 3 PHASES")
    assert not matches("PET*", "LO", "CT PET")
    assert matches("doe*", "PN", "DOE^JOHN")
    # regex metacharacters in a query are literal
    assert matches("a.b*", "LO", "a.bc")
    assert not matches("a.b*", "LO", "axbc")
    # no wildcard on UIDs: '*' is universal only alone
    assert not matches("1.2.*", "UI", "1.2.3")


def test_date_ranges_closed_open_and_single() -> None:
    assert matches("20240301-20240305", "DA", "20240304")
    assert matches("20240301-20240305", "DA", "20240305")
    assert not matches("20240301-20240305", "DA", "20240306")
    assert matches("20240305-", "DA", "20991231")
    assert not matches("20240305-", "DA", "20240304")
    assert matches("-20240305", "DA", "19000101")
    assert not matches("-20240305", "DA", "20240306")
    assert matches("20240304", "DA", "20240304")
    assert not matches("20240304", "DA", "20240305")
    assert not matches("20240301-20240305", "DA", None)


def test_time_ranges_use_time_of_day_and_truncated_upper_bounds() -> None:
    assert matches("0800-1000", "TM", "093015.123")
    assert matches("0800-10", "TM", "105959")  # '10' as an upper bound = all of hour 10
    assert not matches("0800-1000", "TM", "100100")
    assert matches("1000-", "TM", "235959")
    assert matches("-0800", "TM", "080000")
    assert not matches("-0800", "TM", "080100")
    assert matches("1000", "TM", "100030")  # single truncated time = its whole minute
    assert not matches("1000", "TM", "100100")
    assert not matches("0800-1000", "TM", "garbage")


def test_tm_seconds_parses_dicom_and_colon_forms() -> None:
    assert tm_seconds("081530") == 8 * 3600 + 15 * 60 + 30
    assert tm_seconds("08:15:30.5") == pytest.approx(8 * 3600 + 15 * 60 + 30.5)
    assert tm_seconds("08") == 8 * 3600
    assert tm_seconds("0860") is None
    assert tm_seconds("") is None


dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 12, 31))


@given(dates, dates, dates)
def test_property_date_range_equals_calendar_comparison(a: dt.date, b: dt.date, v: dt.date) -> None:
    lo, hi = min(a, b), max(a, b)
    q = f"{lo:%Y%m%d}-{hi:%Y%m%d}"
    assert matches(q, "DA", f"{v:%Y%m%d}") == (lo <= v <= hi)
    assert matches(f"{lo:%Y%m%d}-", "DA", f"{v:%Y%m%d}") == (v >= lo)
    assert matches(f"-{hi:%Y%m%d}", "DA", f"{v:%Y%m%d}") == (v <= hi)


times = st.times().map(lambda t: t.replace(microsecond=0))


@given(times, times, times)
def test_property_time_range_equals_clock_comparison(a: dt.time, b: dt.time, v: dt.time) -> None:
    lo, hi = min(a, b), max(a, b)
    assert matches(f"{lo:%H%M%S}-{hi:%H%M%S}", "TM", f"{v:%H%M%S}") == (lo <= v <= hi)


# Stored values are stripped (DICOM pads with spaces): generate them that way.
words = st.text(alphabet="ABCxyz ^-.", max_size=12).map(str.strip)


@given(words, words)
def test_property_star_suffix_is_startswith(prefix: str, rest: str) -> None:
    value = (prefix + rest).rstrip()
    assert matches(prefix + "*", "LO", value)
    assert matches(prefix + "*", "LO", rest) == rest.startswith(prefix)


_VALUES = st.sampled_from(
    [
        "PT",
        "NM",
        "CT",
        "pt",
        " PT",
        "DERIVED\\SECONDARY",
        "1.2.3",
        "1.2.33",
        "1.2.3\\1.2.4",
        "20240304",
        "20240305",
        "PET*",
        "Doe^John",
        "AB?",
        "A\\B\\PT",
    ]
)
_QUERIES = st.one_of(
    _VALUES,
    st.lists(_VALUES, min_size=1, max_size=4).map("\\".join),
    st.sampled_from(["*", "", "P*", "?T", "1.2.3*", "20240304-", "-20240304", "20240301-20240304"]),
)


@given(
    query=_QUERIES,
    vr=st.sampled_from(["CS", "UI", "LO", "DA", "PN", "SH", "IS"]),
    stored=st.lists(st.one_of(st.none(), _VALUES), min_size=0, max_size=12),
)
def test_property_vectorised_filter_keeps_exactly_what_the_predicate_matches(
    query: str, vr: str, stored: list[str | None]
) -> None:
    import polars as pl

    from pyschedvisu.demo_pacs.index import _column_condition
    from pyschedvisu.demo_pacs.matching import compile_query

    stored = [v.strip() if v else v for v in stored]  # the index stores stripped values
    frame = pl.DataFrame(
        {"x": stored, "i": list(range(len(stored)))}, schema={"x": pl.String, "i": pl.Int64}
    )
    multi = sorted({v for v in stored if v and "\\" in v})
    condition = _column_condition(frame, "x", query, vr, multi)
    got = (frame if condition is None else frame.filter(condition))["i"].to_list()
    pred = compile_query(query, vr)
    want = [i for i, v in enumerate(stored) if pred is None or (v is not None and pred(v))]
    assert got == want
