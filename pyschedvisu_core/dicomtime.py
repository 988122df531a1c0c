"""DICOM date (DA), time (TM) and date-time (DT) values, parsed robustly.

Real headers carry truncated times (``"0830"``, ``"08"``), fractions of any length, legacy
``HH:MM:SS`` / ``YYYY.MM.DD`` forms, padding (spaces, NUL) and plain garbage. Nothing here raises:
an unusable value is ``None`` and the caller decides what that means.
"""

from __future__ import annotations

import datetime as dt
import re

# ASCII digits only: str.isdigit() would accept "²" or Arabic-Indic digits.
_TM_RE = re.compile(
    r"(?P<h>[0-9]{2})(?:(?P<m>[0-9]{2})(?:(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]*))?)?)?",
    re.ASCII,
)
_TM_LEGACY_RE = re.compile(
    r"(?P<h>[0-9]{2}):(?P<m>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]*))?)?",
    re.ASCII,
)
_DA_RE = re.compile(r"(?P<y>[0-9]{4})\.?(?P<m>[0-9]{2})\.?(?P<d>[0-9]{2})", re.ASCII)
_DT_RE = re.compile(r"(?P<d>[0-9]{8})(?P<t>[0-9][0-9.]*)?(?P<z>[+-][0-9]{4})?", re.ASCII)
# DICOM pads with a trailing space (or NUL); some writers also add leading spaces.
_PADDING = " \x00\t\r\n"


def _text(value: object) -> str | None:
    """The value as stripped text, or None for anything that is not text-like."""
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    return value.strip(_PADDING)


def parse_tm(value: object) -> dt.time | None:
    """Parse a DICOM TM value (str, bytes, ``datetime.time`` or pydicom ``TM``); garbage -> None.

    Accepts ``HH``, ``HHMM``, ``HHMMSS``, ``HHMMSS.F{1,6}`` (longer fractions are truncated
    to microseconds) and the legacy ``HH:MM[:SS[.F]]``. A leap second (60) becomes 59.
    """
    if isinstance(value, dt.time):
        # pydicom's TM subclasses time; hand back a plain, naive time.
        return dt.time(value.hour, value.minute, value.second, value.microsecond)
    text = _text(value)
    if not text:
        return None
    match = _TM_RE.fullmatch(text) or _TM_LEGACY_RE.fullmatch(text)
    if match is None:
        return None
    hour = int(match["h"])
    minute = int(match["m"] or 0)
    second = int(match["s"] or 0)
    fraction = match["f"] or ""
    micro = int((fraction[:6]).ljust(6, "0")) if fraction else 0
    if second == 60:  # leap second, allowed by the standard
        second = 59
    if hour > 23 or minute > 59 or second > 59:
        return None
    return dt.time(hour, minute, second, micro)


def parse_da(value: object) -> dt.date | None:
    """Parse a DICOM DA value (``YYYYMMDD``, legacy ``YYYY.MM.DD``, a date); garbage -> None."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    text = _text(value)
    if not text:
        return None
    match = _DA_RE.fullmatch(text)
    if match is None or (("." in text) and text.count(".") != 2):
        return None
    try:
        return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:  # month 13, Feb 30, year 0...
        return None


def parse_dt(value: object) -> dt.datetime | None:
    """Parse a DICOM DT value (``YYYYMMDDHH[MM[SS[.F]]][&ZZXX]``) into a naive local datetime.

    A value without its hour says nothing of the time of day: None. The UTC offset is dropped,
    as TM values carry none: both are the scanner's local time.
    """
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    text = _text(value)
    if not text:
        return None
    match = _DT_RE.fullmatch(text)
    if match is None or not match["t"]:
        return None
    return combine(parse_da(match["d"]), parse_tm(match["t"]))


def combine(day: dt.date | None, tm: dt.time | None) -> dt.datetime | None:
    """A naive datetime from a date and a time; None when either is missing."""
    if day is None or tm is None:
        return None
    return dt.datetime.combine(day, tm.replace(tzinfo=None))
