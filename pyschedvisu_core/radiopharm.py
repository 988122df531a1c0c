"""What a PT / NM header says of the injection (DOMAIN §8): the Radiopharmaceutical Information
Sequence (0054,0016), read robustly.

Its first item gives the radiopharmaceutical (Radiopharmaceutical, else the code meaning of the
RadiopharmaceuticalCodeSequence), the radionuclide (code meaning of the
RadionuclideCodeSequence), the injection start (RadiopharmaceuticalStartDateTime, else
RadiopharmaceuticalStartTime on the series' date), the total dose and the half-life.

The total dose is in **Bq** in PET images (PS3.3 C.8.9.2, PET Isotope Module) but in **MBq** in
NM images (PS3.3 C.8.4.10.1.7, NM Isotope Module): it is read by the modality's unit and kept in
MBq. A value out of 0.1 MBq .. 20 GBq (a dose written in the other unit, a typo) is not believed.

Nothing here raises on content: a field that cannot be read is None, and :attr:`Radiopharm.issue`
says why (``"code: detail"`` parts joined by ``"; "``, codes from :class:`Issue`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pydicom.dataset import Dataset

from pyschedvisu_core.dicomtime import combine, parse_da, parse_dt, parse_tm
from pyschedvisu_core.dicomvalues import PAD, raw_value, sequence_items, strings, text_value

__all__ = [
    "MAX_ACTIVITY_MBQ",
    "MIN_ACTIVITY_MBQ",
    "MODALITIES",
    "SEQUENCE",
    "Issue",
    "Radiopharm",
    "issue_codes",
    "read_radiopharm",
]

#: The sequence's keyword (asked at IMAGE level where the PACS returns it).
SEQUENCE: Final = "RadiopharmaceuticalInformationSequence"
#: Modalities whose headers carry the sequence (PET and NM Isotope Modules).
MODALITIES: Final = ("PT", "NM")
#: Administered activities believed, MBq: below is a dose in the wrong unit or a typo (a
#: radioiodine uptake capsule is a few MBq), above no diagnostic nor therapeutic dose goes.
MIN_ACTIVITY_MBQ: Final = 0.1
MAX_ACTIVITY_MBQ: Final = 20_000.0
#: Longest half-life believed (s): a few years (beyond: a garbled value).
MAX_HALF_LIFE_S: Final = 1e9
#: Characters of a bad value quoted in an issue.
_QUOTE = 24


class Issue:
    """Why a radiopharmaceutical field is null (the first part of each issue)."""

    NOT_RETURNED = "radiopharm_not_returned"  # IMAGE-level answers of a PACS that lacks it
    NO_SEQUENCE = "no_radiopharm_sequence"  # the header has no (0054,0016)
    EMPTY_SEQUENCE = "radiopharm_sequence_empty"  # present, no item
    NO_TRACER = "radiopharmaceutical_missing"
    NO_RADIONUCLIDE = "radionuclide_missing"
    INJECTION_MISSING = "injection_time_missing"
    INJECTION_UNPARSEABLE = "injection_time_unparseable"
    DOSE_MISSING = "total_dose_missing"
    DOSE_UNPARSEABLE = "total_dose_unparseable"
    DOSE_NOT_POSITIVE = "total_dose_not_positive"
    DOSE_IMPLAUSIBLE = "total_dose_implausible"
    HALF_LIFE_MISSING = "half_life_missing"
    HALF_LIFE_UNUSABLE = "half_life_unusable"

    #: Issues that leave every field null.
    WHOLE = (NOT_RETURNED, NO_SEQUENCE, EMPTY_SEQUENCE)


@dataclass(frozen=True)
class Radiopharm:
    """The injection as one series' header tells it (None: not read; see ``issue``)."""

    tracer: str | None = None
    radionuclide: str | None = None
    injected_at: dt.datetime | None = None
    activity_mbq: float | None = None
    half_life_s: float | None = None
    issue: str | None = None


def issue_codes(issue: str | None) -> list[str]:
    """The codes of a stored issue, in order (``"a: x; b"`` -> ``["a", "b"]``)."""
    if not issue:
        return []
    return [part.split(":", 1)[0].strip() for part in issue.split("; ") if part.strip()]


def _quoted(values: Sequence[str]) -> str:
    text = "\\".join(values)
    return repr(text[:_QUOTE] + ("…" if len(text) > _QUOTE else ""))


def _code_meaning(item: Dataset, keyword: str) -> str | None:
    codes = sequence_items(item, keyword)
    return text_value(codes[0], "CodeMeaning") if codes else None


def _injection(item: Dataset, day: dt.date) -> tuple[dt.datetime | None, tuple[str, str] | None]:
    """(injection start, None) or (None, (code, detail))."""
    raw_dt = strings(raw_value(item, "RadiopharmaceuticalStartDateTime"))
    if len(raw_dt) == 1:
        stamp = parse_dt(raw_dt[0])
        if stamp is not None:
            return stamp, None
    raw_tm = strings(raw_value(item, "RadiopharmaceuticalStartTime"))
    if len(raw_tm) == 1:
        tm = parse_tm(raw_tm[0])
        if tm is not None:
            return combine(day, tm), None
    if not raw_dt and not raw_tm:
        return None, (Issue.INJECTION_MISSING, "no RadiopharmaceuticalStart(Date)Time")
    bad = [f"DT {_quoted(raw_dt)}"] if raw_dt else []
    bad += [f"TM {_quoted(raw_tm)}"] if raw_tm else []
    return None, (Issue.INJECTION_UNPARSEABLE, ", ".join(bad))


def _activity(item: Dataset, modality: str) -> tuple[float | None, tuple[str, str] | None]:
    """(MBq, None) or (None, (code, detail)); Bq in PET, MBq in NM (module docstring)."""
    values = strings(raw_value(item, "RadionuclideTotalDose"))
    if not values:
        return None, (Issue.DOSE_MISSING, "no RadionuclideTotalDose")
    unit = "Bq" if modality == "PT" else "MBq"
    try:
        if len(values) != 1:
            raise ValueError
        value = float(values[0])
    except (ValueError, OverflowError):
        return None, (Issue.DOSE_UNPARSEABLE, _quoted(values))
    if not math.isfinite(value):
        return None, (Issue.DOSE_UNPARSEABLE, _quoted(values))
    if value <= 0:
        return None, (Issue.DOSE_NOT_POSITIVE, f"{values[0]} {unit}")
    mbq = value / 1e6 if unit == "Bq" else value
    if not MIN_ACTIVITY_MBQ <= mbq <= MAX_ACTIVITY_MBQ:
        return None, (Issue.DOSE_IMPLAUSIBLE, f"{values[0]} {unit}")
    return mbq, None


def _half_life(item: Dataset) -> tuple[float | None, tuple[str, str] | None]:
    values = strings(raw_value(item, "RadionuclideHalfLife"))
    if not values:
        return None, (Issue.HALF_LIFE_MISSING, "no RadionuclideHalfLife")
    try:
        value = float(values[0]) if len(values) == 1 else math.nan
    except (ValueError, OverflowError):
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_HALF_LIFE_S):
        return None, (Issue.HALF_LIFE_UNUSABLE, _quoted(values))
    return value, None


def _date_of(headers: Sequence[Dataset], day: dt.date, series_date: dt.date | None) -> dt.date:
    """The date a RadiopharmaceuticalStartTime is on: the series' (SERIES level, else its
    header's SeriesDate), else the study's, else the day retrieved."""
    if series_date is not None:
        return series_date
    for keyword in ("SeriesDate", "StudyDate"):
        for ds in headers:
            found = parse_da(raw_value(ds, keyword))
            if found is not None:
                return found
    return day


def read_radiopharm(
    modality: str,
    day: dt.date,
    headers: Sequence[Dataset],
    series_date: dt.date | None = None,
    *,
    returned: bool = True,
) -> Radiopharm | None:
    """The injection of one PT / NM series from its headers (None for other modalities).

    ``headers``: the instance headers (or IMAGE-level answers) read for its timing; the first
    one holding the sequence counts. ``returned``: False when they are IMAGE-level answers of
    a PACS that does not return the sequence (nothing to read: a reason, no field). Never
    raises on header content.
    """
    mod = modality.strip(PAD).upper()
    if mod not in MODALITIES:
        return None
    if not returned:
        return Radiopharm(issue=f"{Issue.NOT_RETURNED}: not asked at IMAGE level")
    found = [items for ds in headers if (items := sequence_items(ds, SEQUENCE)) is not None]
    if not found:
        return Radiopharm(issue=f"{Issue.NO_SEQUENCE}: no (0054,0016) in the header")
    items = next((f for f in found if f), [])
    if not items:
        return Radiopharm(issue=f"{Issue.EMPTY_SEQUENCE}: (0054,0016) without item")
    item = items[0]
    problems: list[tuple[str, str]] = []
    tracer = text_value(item, "Radiopharmaceutical") or _code_meaning(
        item, "RadiopharmaceuticalCodeSequence"
    )
    if tracer is None:
        problems.append((Issue.NO_TRACER, "no Radiopharmaceutical nor its code"))
    nuclide = _code_meaning(item, "RadionuclideCodeSequence")
    if nuclide is None:
        problems.append((Issue.NO_RADIONUCLIDE, "no RadionuclideCodeSequence meaning"))
    injected, why = _injection(item, _date_of(headers, day, series_date))
    activity, why_dose = _activity(item, mod)
    half_life, why_half = _half_life(item)
    problems += [p for p in (why, why_dose, why_half) if p is not None]
    return Radiopharm(
        tracer=tracer,
        radionuclide=nuclide,
        injected_at=injected,
        activity_mbq=activity,
        half_life_s=half_life,
        issue="; ".join(f"{code}: {detail}" for code, detail in problems) or None,
    )
