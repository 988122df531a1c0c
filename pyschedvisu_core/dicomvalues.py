"""The one reader of raw DICOM values: C-FIND answers and instance headers alike.

pydicom validates DA/TM/IS values when it converts them (a warning, or an error, per bad
value); the rules parse values robustly themselves (:mod:`pyschedvisu_core.dicomtime`), so text
elements are taken as the raw bytes they arrived as and decoded here. Nothing here raises on
content: a garbled element reads as absent.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final

from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

__all__ = [
    "MISSING",
    "codec",
    "count",
    "decode_text",
    "n_values",
    "number",
    "raw_value",
    "sequence_items",
    "strings",
    "text_value",
]

#: DICOM pads text with spaces or NUL.
PAD: Final = " \x00"
#: Largest count (frames, instances) we believe: a signed 32-bit int, as DICOM IS allows.
MAX_COUNT: Final = 2**31 - 1
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UT"}
)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: What :func:`raw_value` returns for an element the dataset does not hold.
MISSING: Final = _Missing()


def raw_value(ds: Dataset, keyword: str) -> object:
    """Value of ``keyword`` in ``ds`` without triggering pydicom's validation.

    Text elements still raw (as read from a file or a C-FIND/C-STORE stream) come back as
    bytes, to be parsed by us; :data:`MISSING` when absent; None when unreadable.
    """
    tag = tag_for_keyword(keyword)
    if tag is None:
        return MISSING
    try:
        elem = ds.get_item(tag)
        if elem is None:
            return MISSING
        if isinstance(elem, RawDataElement) and dictionary_VR(tag) in _TEXT_VRS:
            return elem.value if isinstance(elem.value, bytes) else None
        if isinstance(elem, RawDataElement):
            return ds[tag].value
        return getattr(elem, "value", None)
    except Exception:  # a broken element is as good as no element
        return None


def decode_text(value: bytes, codec_name: str | None = None) -> str:
    """Text of raw bytes: the declared codec; else (absent or wrong) UTF-8, then latin-1."""
    for name in (codec_name, "utf-8"):
        if name is None:
            continue
        try:
            return value.decode(name)
        except (UnicodeDecodeError, LookupError):
            pass
    return value.decode("latin-1")  # decodes any byte


def strings(value: object, codec_name: str | None = None) -> list[str]:
    """A (possibly multi-valued) text value as a list of stripped, non-empty strings."""
    if value is MISSING or value is None:
        return []
    if isinstance(value, bytes):
        value = decode_text(value, codec_name)
    if isinstance(value, str):
        parts = value.split("\\")
    elif isinstance(value, list | tuple | MultiValue):
        parts = [decode_text(v, codec_name) if isinstance(v, bytes) else str(v) for v in value]
    else:
        parts = [str(value)]
    return [p.strip(PAD) for p in parts if p.strip(PAD)]


def codec(ds: Dataset) -> str | None:
    """Python codec of the dataset's SpecificCharacterSet; None when absent or not understood.

    Only a single-valued charset is honoured: ISO 2022 code extensions (several values) switch
    codecs inside a value, which the UTF-8 / latin-1 fallback handles well enough for names.
    """
    terms = strings(raw_value(ds, "SpecificCharacterSet"))
    if len(terms) != 1:
        return None
    found = python_encoding.get(terms[0].upper())
    return str(found) if found is not None else None


def text_value(ds: Dataset, keyword: str) -> str | None:
    """A text value, stripped (values of a multi-valued one joined by ``\\``); None when empty."""
    items = strings(raw_value(ds, keyword), codec(ds))
    return "\\".join(items) if items else None


def number(value: object) -> float | None:
    """A finite, non-negative number from IS/DS/US/str/bytes values; else None."""
    if value is MISSING or value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float | Decimal):
            num = float(value)
        else:
            items = strings(value)
            if len(items) != 1:
                return None
            num = float(items[0])
    except (ValueError, ArithmeticError):  # "abc", an int beyond float range (OverflowError)
        return None
    if not math.isfinite(num) or num < 0:
        return None
    return num


def count(value: object) -> int | None:
    """A count (NumberOfFrames, InstanceNumber...): integral, 0..2**31-1; else None."""
    num = number(value)
    if num is None or num > MAX_COUNT or not num.is_integer():
        return None
    return int(num)


def n_values(value: object) -> int:
    """How many values a multi-valued element holds (RadialPosition)."""
    if value is MISSING or value is None:
        return 0
    if isinstance(value, bytes | str):
        return len(strings(value))
    if isinstance(value, list | tuple | MultiValue):
        return len(value)
    return 1


def sequence_items(ds: Dataset, keyword: str) -> list[Dataset] | None:
    """Items of a sequence; None when absent or unreadable."""
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return None
    try:
        value = ds[tag].value
    except Exception:
        return None
    if value is None:
        return None
    try:
        return [item for item in value if isinstance(item, Dataset)]
    except TypeError:
        return None
