"""The queries the retrieval sends, as pure data, and the checks of what comes back.

Every adapter (pynetdicom in :mod:`pyschedvisu.adapters.dimse`, the demo PACS in tests) asks
exactly these identifiers; the answers are checked here before the retrieval trusts them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pyschedvisu_core.dicomvalues import text_value

Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
Root = Literal["study", "patient"]


#: Attributes an IMAGE-level C-FIND asks for to time a series (DOMAIN §2.3), and the
#: equipment identifiers that tell identical scanners apart (DOMAIN §7).
TIMING_KEYWORDS: tuple[str, ...] = (
    "SOPInstanceUID",
    "InstanceNumber",
    "AcquisitionDate",
    "AcquisitionTime",
    "ManufacturerModelName",
    "ImageType",
    "ActualFrameDuration",
    "NumberOfFrames",
    "StationName",
    "DeviceSerialNumber",
)
#: NM sequences asked for at IMAGE level (empty sequence = "return it").
TIMING_SEQUENCES: tuple[str, ...] = ("PhaseInformationSequence", "RotationInformationSequence")

STUDY_KEYWORDS: tuple[str, ...] = (
    "StudyInstanceUID",
    "StudyTime",
    "PatientID",
    "StudyDescription",
    "InstitutionName",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "AccessionNumber",  # planned against performed (DOMAIN §7)
)
#: What tells a scanner apart, asked where the PACS indexes it (``pyschedvisu discover``).
EQUIPMENT_KEYWORDS: tuple[str, ...] = ("ManufacturerModelName", "StationName", "DeviceSerialNumber")

SERIES_KEYWORDS: tuple[str, ...] = (
    "SeriesInstanceUID",
    "SeriesDate",
    "SeriesTime",
    "SeriesDescription",
    "ProtocolName",
    "InstitutionName",
    "NumberOfSeriesRelatedInstances",
    "StudyDescription",
    "Modality",
)


def da(day: dt.date) -> str:
    """A date as a DICOM DA value."""
    return day.strftime("%Y%m%d")


def _identifier(level: Level, filters: dict[str, Any], keys: Iterable[str]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in keys:
        setattr(ds, keyword, "")
    for keyword, value in filters.items():
        setattr(ds, keyword, value)
    return ds


def study_query(day: dt.date, modality: str) -> Dataset:
    """STUDY-level C-FIND identifier: studies of ``day`` with ``modality`` in the study."""
    return _identifier(
        "STUDY", {"StudyDate": da(day), "ModalitiesInStudy": modality}, STUDY_KEYWORDS
    )


def series_query(
    day: dt.date, study_uid: str, patient_id: str | None, extra: Sequence[str] = ()
) -> Dataset:
    """SERIES-level identifier for one study (``extra``: more attributes asked for).

    No SeriesDate / Modality filter on purpose: some series lack SeriesDate (their
    AcquisitionDate counts), and other modalities must be seen to be excluded with a reason.
    """
    filters: dict[str, Any] = {"StudyDate": da(day), "StudyInstanceUID": study_uid}
    if patient_id:
        filters["PatientID"] = patient_id
    return _identifier("SERIES", filters, (*SERIES_KEYWORDS, *extra))


def image_query(
    study_uid: str,
    series_uid: str,
    *,
    timing: bool,
    instance: int | None = None,
    extra: Sequence[str] = (),
) -> Dataset:
    """IMAGE-level identifier for one series (empty ``series_uid``: the whole study).

    Minimal keys, or the timing attributes, plus ``extra``; ``instance`` matches one
    InstanceNumber only (first / last instance: two answers a series instead of all of them).
    """
    keys = (*(TIMING_KEYWORDS if timing else ("SOPInstanceUID", "InstanceNumber")), *extra)
    filters: dict[str, Any] = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}
    if instance is not None:
        filters["InstanceNumber"] = str(instance)
    ds = _identifier("IMAGE", filters, keys)
    if timing:
        for keyword in TIMING_SEQUENCES:
            setattr(ds, keyword, DicomSequence([]))
    return ds


def study_image_query(study_uid: str, *, timing: bool, instance: int | None = 1) -> Dataset:
    """IMAGE-level identifier for instance ``instance`` of every series of one study.

    One query per study instead of one per series: fewer operations for the PACS. A
    strictly hierarchical PACS may refuse it; the caller then asks series by series.
    """
    return image_query(study_uid, "", timing=timing, instance=instance)


def listed_image_query(study_uid: str, sop_instance_uids: Sequence[str]) -> Dataset:
    """IMAGE-level identifier with the timing keys of the listed instances of one study.

    UID list matching (PS3.4 C.2.2.2.2): the first and last instances of every series of a
    study in one query, and the PACS opens only those files.
    """
    ds = image_query(study_uid, "", timing=True)
    uids = list(dict.fromkeys(sop_instance_uids))
    ds.SOPInstanceUID = uids if len(uids) > 1 else uids[0]
    return ds


def _uid_value(uids: Sequence[str]) -> str | list[str]:
    """A UI value: one UID, or a list (PS3.4 C.2.2.2.2 list of UID matching)."""
    unique = list(dict.fromkeys(uids))
    return unique if len(unique) > 1 else unique[0]


def day_series_query(day: dt.date, study_uids: Sequence[str], extra: Sequence[str] = ()) -> Dataset:
    """SERIES-level identifier for every series of the listed studies of ``day`` at once.

    Relational-style (PS3.4 C.4.1.3.2): the study key holds a UID list, which a strictly
    hierarchical PACS refuses or misreads; callers check every answer with
    :func:`check_day_series` and fall back to :func:`series_query` per study.
    """
    ds = _identifier(
        "SERIES",
        {"StudyDate": da(day)},
        (*SERIES_KEYWORDS, "StudyInstanceUID", "PatientID", *extra),
    )
    ds.StudyInstanceUID = _uid_value(study_uids)
    return ds


def day_image_query(series_uids: Sequence[str]) -> Dataset:
    """IMAGE-level identifier, minimal keys, of every instance of the listed series.

    The study key stays universal (relational-style): every answer would otherwise carry
    the StudyInstanceUID too, a fifth of this listing's bytes, and the SeriesInstanceUID
    already tells which series (and so which study) an instance belongs to.
    """
    ds = _identifier("IMAGE", {}, ("SOPInstanceUID", "InstanceNumber", "SeriesInstanceUID"))
    ds.SeriesInstanceUID = _uid_value(series_uids)
    return ds


def day_timing_query(sop_instance_uids: Sequence[str]) -> Dataset:
    """IMAGE-level identifier with the timing keys of the listed instances, any series.

    SOP Instance UIDs are unique across the archive, so the list alone selects; the study
    and series keys stay universal to keep them out of every answer.
    """
    ds = image_query("", "", timing=True)
    del ds.StudyInstanceUID
    del ds.SeriesInstanceUID
    ds.SOPInstanceUID = _uid_value(sop_instance_uids)
    return ds


def day_series_timing_query(series_uids: Sequence[str]) -> Dataset:
    """IMAGE-level identifier with the timing keys of every instance of the listed series.

    For series whose every instance is needed anyway (one instance; two for CT/PT): their
    timing in one query, with no instance listing first.
    """
    ds = image_query("", "", timing=True)
    del ds.StudyInstanceUID
    ds.SeriesInstanceUID = _uid_value(series_uids)
    return ds


def day_pick_query(
    series_uids: Sequence[str], number: int, *, timing: bool, extra: Sequence[str] = ()
) -> Dataset:
    """IMAGE-level identifier of the instance numbered ``number`` in each listed series.

    DOMAIN §2.3 reads instance 1 and instance N (N = NumberOfSeriesRelatedInstances): one
    answer per series and number, where listing a series costs one answer per instance.
    InstanceNumber is a required matching key at IMAGE level (PS3.4 C.6.1.1.5). ``extra``:
    more attributes asked for (``discover --headers`` asks the equipment of instance 1).
    """
    keys = (*(TIMING_KEYWORDS if timing else ("SOPInstanceUID", "InstanceNumber")), *extra)
    ds = _identifier("IMAGE", {"InstanceNumber": str(number)}, keys)
    ds.SeriesInstanceUID = _uid_value(series_uids)
    if timing:
        for keyword in TIMING_SEQUENCES:
            setattr(ds, keyword, DicomSequence([]))
    return ds


def check_day_picks(
    answers: Sequence[Dataset], series_uids: Sequence[str], number: int
) -> tuple[dict[str, Dataset], str | None]:
    """Answers of :func:`day_pick_query` by series, where exactly one instance answered.

    A series with no instance so numbered (numbering from 0) or several (numbering
    restarted) is left out, to be listed. An answer of a series not asked for, or with
    another number (a PACS ignoring the key), makes the whole answer untrustworthy: the
    reason is returned with nothing.
    """
    wanted = set(series_uids)
    found: dict[str, dict[str, Dataset]] = {}
    for i, ds in enumerate(answers):
        series = text_value(ds, "SeriesInstanceUID")
        if series is None or series not in wanted:
            return {}, f"an instance of a series not asked for ({series})"
        if instance_number(ds) != number:
            got = text_value(ds, "InstanceNumber")
            return {}, f"instance numbered {got!r} answered to InstanceNumber={number}"
        found.setdefault(series, {})[sop_uid(ds) or f"#{i}"] = ds
    return {uid: next(iter(d.values())) for uid, d in found.items() if len(d) == 1}, None


def check_day_series(answers: Sequence[Dataset], expected: dict[str, int | None]) -> str | None:
    """Why a day-wide SERIES answer cannot be trusted, or None when it can.

    ``expected`` maps each requested study to its NumberOfStudyRelatedSeries (None when the
    PACS did not say). Every answer must belong to a requested study, every requested study
    must be answered (a study exists because it has series), and known counts must match:
    a PACS that ignored or misread the list fails one of these.
    """
    got: dict[str, set[str]] = {}
    for ds in answers:
        study = text_value(ds, "StudyInstanceUID")
        series = text_value(ds, "SeriesInstanceUID")
        if study is None or series is None:
            return "an answer without StudyInstanceUID or SeriesInstanceUID"
        if study not in expected:
            return f"series of a study not asked for ({study})"
        got.setdefault(study, set()).add(series)
    for study, count in expected.items():
        found = len(got.get(study, ()))
        if not found:
            return f"no series answered for study {study}"
        if count is not None and count > 0 and found != count:
            return f"study {study}: {found} series answered, {count} announced"
    return None


def check_day_images(
    answers: Sequence[Dataset], expected: dict[str, int | None]
) -> tuple[dict[str, list[Dataset]], str | None]:
    """Day-wide IMAGE answers grouped by series, keeping only the series they fully cover.

    ``expected`` maps each requested series to its instance count (None: unknown). An
    answer of a series not asked for makes the whole answer untrustworthy (reason
    returned); a series whose count differs, is unknown, or that got no answer, is left out
    (asked again the hierarchical way): a PACS may cut a long answer at a result limit
    without saying so, and only the announced count shows it.
    """
    grouped: dict[str, list[Dataset]] = {}
    for ds in answers:
        series = text_value(ds, "SeriesInstanceUID")
        if series is None or series not in expected:
            return {}, f"an instance of a series not asked for ({series})"
        grouped.setdefault(series, []).append(ds)
    counts = instance_counts(answers)
    ok = {
        uid: lst
        for uid, lst in grouped.items()
        if expected[uid] is not None and counts.get(uid) == expected[uid]
    }
    return ok, None


def instance_counts(answers: Sequence[Dataset]) -> dict[str, int]:
    """Instances answered per SeriesInstanceUID (distinct SOPInstanceUIDs when present)."""
    seen: dict[str, set[str]] = {}
    for i, ds in enumerate(answers):
        uid = text_value(ds, "SeriesInstanceUID")
        if uid:
            seen.setdefault(uid, set()).add(sop_uid(ds) or f"#{i}")
    return {uid: len(sops) for uid, sops in seen.items()}


def group_by_series(answers: Sequence[Dataset]) -> dict[str, list[Dataset]]:
    """IMAGE-level answers grouped by their SeriesInstanceUID (answers without one dropped)."""
    out: dict[str, list[Dataset]] = {}
    for ds in answers:
        uid = text_value(ds, "SeriesInstanceUID")
        if uid:
            out.setdefault(uid, []).append(ds)
    return out


def retrieve_identifier(
    study_uid: str, series_uid: str, sop_instance_uids: Sequence[str] | None
) -> Dataset:
    """C-GET / C-MOVE identifier: listed instances of a series, or the whole series (None)."""
    if not sop_instance_uids:
        return series_retrieve_identifier(study_uid, [series_uid])
    ds = _identifier("IMAGE", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}, ())
    uids = list(dict.fromkeys(sop_instance_uids))
    ds.SOPInstanceUID = uids if len(uids) > 1 else uids[0]
    return ds


def series_retrieve_identifier(study_uid: str, series_uids: Sequence[str]) -> Dataset:
    """C-GET / C-MOVE identifier: every instance of the listed series of one study.

    Hierarchical retrieve allows a list of UIDs at the retrieve level (PS3.4 C.4.2.2.1), one
    value above it: several whole series of a study in one request, even where a PACS
    refuses relational-style identifiers.
    """
    ds = _identifier("SERIES", {"StudyInstanceUID": study_uid}, ())
    ds.SeriesInstanceUID = _uid_value(series_uids)
    return ds


def retrieve_many_identifier(wanted: Sequence[tuple[str, str, Sequence[str]]]) -> Dataset:
    """C-GET / C-MOVE identifier of listed instances of several series (relational-style)."""
    ds = _identifier("IMAGE", {}, ())
    ds.StudyInstanceUID = _uid_value([w[0] for w in wanted])
    ds.SeriesInstanceUID = _uid_value([w[1] for w in wanted])
    ds.SOPInstanceUID = _uid_value([u for w in wanted for u in w[2]])
    return ds


#: Largest InstanceNumber (IS is a signed 32-bit integer): beyond is garbage.
MAX_INSTANCE_NUMBER = 2**31 - 1


def instance_number(ds: Dataset) -> int | None:
    """InstanceNumber of a response or header, None when missing, garbled or out of range."""
    text = text_value(ds, "InstanceNumber")
    try:
        number = int(float(text)) if text is not None else None
    except (ValueError, OverflowError):
        return None
    if number is None or abs(number) > MAX_INSTANCE_NUMBER:
        return None
    return number


def pick_instances(responses: Sequence[Dataset], count: int) -> list[Dataset]:
    """The first (``count`` 1) or first and last (``count`` 2) instances of a series.

    First and last are the lowest and highest InstanceNumber answered, not literally 1 and
    N: numbering may start at 0 or have gaps (deleted instances). Without any usable number
    the PACS order decides. Duplicates (one instance) are dropped.
    """
    if not responses:
        return []
    numbered = [(n, r) for r in responses if (n := instance_number(r)) is not None]
    if numbered:
        lowest = min(numbered, key=lambda nr: nr[0])[1]
        highest = max(numbered, key=lambda nr: nr[0])[1]
    else:
        lowest, highest = responses[0], responses[-1]
    return _dedupe([lowest, highest] if count > 1 else [lowest])


def _dedupe(items: Sequence[Dataset]) -> list[Dataset]:
    seen: set[int] = set()
    out: list[Dataset] = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def sop_uid(ds: Dataset) -> str | None:
    """SOPInstanceUID of a response, None when missing."""
    return text_value(ds, "SOPInstanceUID")


def has_timing(ds: Dataset) -> bool:
    """True when an IMAGE-level response carries an AcquisitionTime value (probe test)."""
    return text_value(ds, "AcquisitionTime") is not None
