"""DICOM DA / TM parsing: examples from real headers and property tests."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.valuerep import DA, DT, TM

from pyschedvisu_core.dicomtime import combine, parse_da, parse_dt, parse_tm


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("083015", dt.time(8, 30, 15)),
        ("083015.123456", dt.time(8, 30, 15, 123456)),
        ("083015.1", dt.time(8, 30, 15, 100000)),
        ("083015.000120", dt.time(8, 30, 15, 120)),
        ("083015.1234567", dt.time(8, 30, 15, 123456)),  # over-long fraction: truncated
        ("083015.", dt.time(8, 30, 15)),
        ("0830", dt.time(8, 30)),
        ("08", dt.time(8)),
        ("08:30", dt.time(8, 30)),
        ("08:30:15", dt.time(8, 30, 15)),
        ("08:30:15.25", dt.time(8, 30, 15, 250000)),
        ("083015 ", dt.time(8, 30, 15)),
        (" 083015\x00", dt.time(8, 30, 15)),
        (b"083015.5 ", dt.time(8, 30, 15, 500000)),
        (bytearray(b"0830"), dt.time(8, 30)),
        ("235960", dt.time(23, 59, 59)),  # leap second
        ("000000", dt.time(0, 0)),
        (dt.time(9, 1, 2, 3), dt.time(9, 1, 2, 3)),
        (TM("101010.5"), dt.time(10, 10, 10, 500000)),
    ],
)
def test_parse_tm_accepts_real_world_forms(value: object, expected: dt.time) -> None:
    assert parse_tm(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "\x00",
        "8",
        "083",
        "08301",
        "240000",
        "086000",
        "083061",
        "0830 15",
        "08h30",
        "ab3015",
        "083015.12a",
        "08:3",
        "٠٨٣٠",  # Arabic-Indic digits: isdigit() but not DICOM
        "083015\\083016",  # multi-valued
        b"\xff\xfe",
        83015,
        8.5,
        ["083015"],
        object(),
    ],
)
def test_parse_tm_garbage_is_none(value: object) -> None:
    assert parse_tm(value) is None


def test_parse_tm_returns_plain_time_from_pydicom_tm() -> None:
    parsed = parse_tm(TM("0830"))
    assert type(parsed) is dt.time
    assert parsed == dt.time(8, 30)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240304", dt.date(2024, 3, 4)),
        ("2024.03.04", dt.date(2024, 3, 4)),
        ("20240229 ", dt.date(2024, 2, 29)),
        (b"20240304\x00", dt.date(2024, 3, 4)),
        (dt.date(2024, 3, 4), dt.date(2024, 3, 4)),
        (dt.datetime(2024, 3, 4, 10, 0), dt.date(2024, 3, 4)),
        (DA("20240304"), dt.date(2024, 3, 4)),
    ],
)
def test_parse_da_accepts(value: object, expected: dt.date) -> None:
    parsed = parse_da(value)
    assert parsed == expected
    assert type(parsed) is dt.date


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "2024034",
        "20241304",
        "20230229",
        "00000000",
        "2024.0304",
        "2024-03-04",
        "x",
        20240304,
    ],
)
def test_parse_da_garbage_is_none(value: object) -> None:
    assert parse_da(value) is None


def test_combine() -> None:
    day = dt.date(2024, 3, 4)
    assert combine(day, dt.time(8, 30)) == dt.datetime(2024, 3, 4, 8, 30)
    aware = dt.time(8, 30, tzinfo=dt.UTC)
    assert combine(day, aware) == dt.datetime(2024, 3, 4, 8, 30)  # always naive
    assert combine(None, dt.time(8)) is None
    assert combine(day, None) is None


# --------------------------------------------------------------------------- properties

anything = st.one_of(
    st.text(),
    st.binary(),
    st.text(alphabet="0123456789.: \x00", max_size=16),
    st.integers(),
    st.floats(),
    st.none(),
)


@given(anything)
def test_parse_tm_never_raises(value: object) -> None:
    result = parse_tm(value)
    assert result is None or isinstance(result, dt.time)


@given(anything)
def test_parse_da_never_raises(value: object) -> None:
    result = parse_da(value)
    assert result is None or isinstance(result, dt.date)


@given(st.one_of(anything, st.text(alphabet="0123456789.+-& \x00", max_size=30)))
def test_parse_dt_never_raises(value: object) -> None:
    result = parse_dt(value)
    assert result is None or (isinstance(result, dt.datetime) and result.tzinfo is None)


@given(
    st.times(),
    st.sampled_from(["HH", "HHMM", "HHMMSS", "F1", "F2", "F3", "F4", "F5", "F6"]),
    st.sampled_from(["", " ", "\x00"]),
    st.booleans(),
)
def test_parse_tm_round_trip_with_truncation(
    t: dt.time, form: str, pad: str, as_bytes: bool
) -> None:
    digits = t.strftime("%H%M%S") + "." + f"{t.microsecond:06d}"
    if form == "HH":
        text, expected = digits[:2], dt.time(t.hour)
    elif form == "HHMM":
        text, expected = digits[:4], dt.time(t.hour, t.minute)
    elif form == "HHMMSS":
        text, expected = digits[:6], dt.time(t.hour, t.minute, t.second)
    else:
        n = int(form[1])
        text = digits[: 7 + n]
        micro = int(f"{t.microsecond:06d}"[:n].ljust(6, "0"))
        expected = dt.time(t.hour, t.minute, t.second, micro)
    value: object = (text + pad).encode() if as_bytes else text + pad
    assert parse_tm(value) == expected


@given(st.times())
def test_parse_tm_round_trip_legacy_colons(t: dt.time) -> None:
    text = t.strftime("%H:%M:%S") + f".{t.microsecond:06d}"
    assert parse_tm(text) == t.replace(tzinfo=None)


@given(st.dates(min_value=dt.date(1900, 1, 1)), st.booleans(), st.sampled_from(["", " "]))
def test_parse_da_round_trip(day: dt.date, legacy: bool, pad: str) -> None:
    text = day.strftime("%Y.%m.%d" if legacy else "%Y%m%d")
    assert parse_da(text + pad) == day


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240304083015", dt.datetime(2024, 3, 4, 8, 30, 15)),
        ("20240304083015.25", dt.datetime(2024, 3, 4, 8, 30, 15, 250000)),
        ("20240304083015.123456+0100", dt.datetime(2024, 3, 4, 8, 30, 15, 123456)),
        ("202403040830-0500 ", dt.datetime(2024, 3, 4, 8, 30)),
        ("2024030408", dt.datetime(2024, 3, 4, 8)),
        (b"20240304083015\x00", dt.datetime(2024, 3, 4, 8, 30, 15)),
        (DT("20240304083015+0100"), dt.datetime(2024, 3, 4, 8, 30, 15)),
    ],
)
def test_parse_dt_gives_the_local_time_without_its_offset(
    value: object, expected: dt.datetime
) -> None:
    got = parse_dt(value)
    assert got == expected and got is not None and got.tzinfo is None


@pytest.mark.parametrize(
    "value",
    ["", "20240304", "2024", "20241304083015", "20240304256000", "2024-03-04T08:30", None, 5],
)
def test_parse_dt_without_a_usable_time_of_day_is_none(value: object) -> None:
    assert parse_dt(value) is None
