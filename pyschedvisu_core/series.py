"""Retrieval rules (DOMAIN.md §2): which studies and series are kept, and series timing.

The frame filters are vectorised polars; the header rules read pydicom Datasets without ever
raising on a garbled value (the series is then *failed* with a reason saying which tag).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl
from pydicom.dataset import Dataset

from pyschedvisu_core.dicomtime import combine, parse_da, parse_dt, parse_tm
from pyschedvisu_core.dicomvalues import (
    PAD,
    count,
    n_values,
    number,
    raw_value,
    sequence_items,
    strings,
    text_value,
)
from pyschedvisu_core.labels import unaccented
from pyschedvisu_core.schema import EXCLUDED_SCHEMA, Reason

__all__ = [
    "SeriesTiming",
    "brain_fdg_minutes",
    "filter_institutions",
    "filter_series",
    "filter_studies",
    "instances_needed",
    "needs_file_headers",
    "normalise_institution",
    "series_timing",
]

_MIXED = "mixed"
#: Longest acquisition we believe (an NM duration beyond this is a garbled header; two
#: instance times further apart than this crossed midnight, or cannot be ordered).
_MAX_DURATION = dt.timedelta(hours=12)


# --------------------------------------------------------------------------- names


def normalise_institution(name: str | None) -> str | None:
    """InstitutionName as compared with the accepted list; "" -> None.

    Lower case, accents stripped, every whitespace (and NUL padding) removed: the same hospital
    is written "Médecine Nucléaire CHUV" or "Medecine  Nucleaire CHUV" depending on the scanner.
    """
    if name is None:
        return None
    out = re.sub(r"[\s\x00]+", "", unaccented(name)).lower()
    return out or None


# --------------------------------------------------------------------------- frame filters


def _col(frame: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    """Column ``name`` cast to ``dtype`` (null when the frame lacks it, e.g. an empty frame)."""
    if name in frame.columns:
        return pl.col(name).cast(dtype, strict=False)
    return pl.lit(None, dtype=dtype)


def _python_mask(values: pl.Series, test: Callable[[str], bool]) -> pl.Series:
    """Evaluate ``test`` once per distinct value (fallback for regexes polars cannot compile)."""
    uniques = values.drop_nulls().unique().to_list()
    hits = [v for v in uniques if test(v)]
    return values.is_in(_one_list(hits)).fill_null(False)


def _one_list(values: Sequence[str]) -> pl.Series:
    """``values`` as one list value for ``is_in`` (a bare Series is ambiguous in polars 2)."""
    return pl.Series(list(values), dtype=pl.String).implode()


def _regex_mask(values: pl.Series, rust_pattern: str, test: Callable[[str], bool]) -> pl.Series:
    """``values`` matching ``rust_pattern`` (nulls never match).

    Patterns are validated by Python's ``re`` in the config; the few Python-only constructs
    (look-arounds, back-references) are rejected by polars' regex engine, so fall back to ``re``
    on the distinct values rather than fail the day.
    """
    try:
        return values.str.contains(rust_pattern).fill_null(False)
    except pl.exceptions.ComputeError:
        return _python_mask(values, test)


def _excluded(frame: pl.DataFrame, level: str) -> pl.DataFrame:
    """Rows of ``frame`` (with a ``_reason`` column) in the EXCLUDED_SCHEMA shape."""
    return frame.select(
        _col(frame, "date", pl.Date()).alias("date"),
        pl.lit(level, dtype=pl.String).alias("level"),
        _col(frame, "study_uid", pl.String()).alias("study_uid"),
        (
            _col(frame, "series_uid", pl.String())
            if level == "series"
            else pl.lit(None, dtype=pl.String)
        ).alias("series_uid"),
        pl.col("_reason").alias("reason"),
    ).cast(pl.Schema(EXCLUDED_SCHEMA))


def _split(frame: pl.DataFrame, reason: pl.Series, level: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows whose reason is null, EXCLUDED rows for the others)."""
    keep = reason.is_null()
    kept = frame.filter(keep)
    excluded = _excluded(frame.with_columns(reason.alias("_reason")).filter(~keep), level)
    return kept, excluded


def _stripped(frame: pl.DataFrame, name: str) -> pl.Series:
    return frame.select(_col(frame, name, pl.String()).str.strip_chars(PAD)).to_series()


def filter_studies(
    studies: pl.DataFrame, *, patient_id_pattern: str, description_exclude: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split STUDY-level C-FIND rows into (kept, excluded).

    A PatientID must *fully* match ``patient_id_pattern`` (null never does) -> else
    ``Reason.PATIENT_ID``; then a StudyDescription equal (after strip, case-insensitive) to one of
    ``description_exclude`` -> ``Reason.STUDY_DESCRIPTION``. Kept rows keep all input columns.
    """
    pid = _stripped(studies, "patient_id")
    compiled = re.compile(patient_id_pattern)
    pid_ok = _regex_mask(pid, f"^(?:{patient_id_pattern})$", lambda v: bool(compiled.fullmatch(v)))

    desc = _stripped(studies, "study_description").str.to_lowercase()
    banned = pl.Series([d.strip(PAD) for d in description_exclude], dtype=pl.String)
    desc_bad = desc.is_in(banned.str.to_lowercase().implode()).fill_null(False)

    reason = (
        pl.DataFrame({"ok": pid_ok, "bad": desc_bad})
        .select(
            pl.when(~pl.col("ok"))
            .then(pl.lit(Reason.PATIENT_ID))
            .when(pl.col("bad"))
            .then(pl.lit(Reason.STUDY_DESCRIPTION))
            .otherwise(pl.lit(None, dtype=pl.String))
        )
        .to_series()
    )
    return _split(studies, reason, "study")


def _description_mask(desc: pl.Series, patterns: list[str]) -> pl.Series:
    """Descriptions matching any pattern, case-insensitive, anchored at the start (``re.match``)."""
    if not patterns:  # an empty alternation would match everything
        return pl.Series([False] * len(desc), dtype=pl.Boolean)
    rust = "(?i)^(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    return _regex_mask(desc, rust, lambda v: any(c.match(v) for c in compiled))


def filter_series(
    series: pl.DataFrame,
    *,
    description_exclude: list[str],
    protocol_exclude: list[str],
    modalities: list[str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split SERIES-level C-FIND rows into (kept, excluded), DOMAIN §2.2.

    First rule that applies gives the reason: modality not in ``modalities`` ->
    ``MODALITY``; SeriesDescription matching a pattern (case-insensitive, anchored at its start)
    -> ``SERIES_DESCRIPTION``; ProtocolName in ``protocol_exclude`` (exact) -> ``PROTOCOL``;
    NM with more than one instance -> ``NM_DERIVED``. Values are compared without DICOM padding;
    a null description / protocol never matches.
    """
    modality = _stripped(series, "modality")
    desc = _stripped(series, "series_description")
    protocol = _stripped(series, "protocol_name")
    n_inst = series.select(_col(series, "n_instances", pl.Int64())).to_series()

    flags = pl.DataFrame(
        {
            "mod_ok": modality.is_in(_one_list(modalities)).fill_null(False),
            "desc": _description_mask(desc, description_exclude),
            "proto": protocol.is_in(_one_list(protocol_exclude)).fill_null(False),
            "nm_multi": ((modality == "NM") & (n_inst > 1)).fill_null(False),
        }
    )
    reason = flags.select(
        pl.when(~pl.col("mod_ok"))
        .then(pl.lit(Reason.MODALITY))
        .when(pl.col("desc"))
        .then(pl.lit(Reason.SERIES_DESCRIPTION))
        .when(pl.col("proto"))
        .then(pl.lit(Reason.PROTOCOL))
        .when(pl.col("nm_multi"))
        .then(pl.lit(Reason.NM_DERIVED))
        .otherwise(pl.lit(None, dtype=pl.String))
    ).to_series()
    return _split(series, reason, "series")


def filter_institutions(
    series: pl.DataFrame, *, accepted: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the institution rule per study; (kept series, excluded studies).

    Per study, the distinct normalised InstitutionNames of its series decide: none ->
    ``NO_INSTITUTION``; one -> kept if accepted; several -> ``"mixed"``, kept if ``"mixed"`` is
    accepted and at least one of the names is. Others -> ``INSTITUTION``, followed by the
    study's normalised names (``"institution_not_accepted: hopitalx, cliniquey"``: what to
    accept, if they are ours; names hold no space, so ", " parts them). Kept rows get
    ``institution`` = the study's resolved name, or null for a series without a name of its
    own (stored, then dropped from the studies by DOMAIN §3.1, as the 2019 tool did); excluded
    rows are one per study (series_uid null).
    """
    accepted_norm = sorted({n for a in accepted if (n := normalise_institution(a)) is not None})
    mixed_ok = _MIXED in accepted_norm
    raw = series.select(_col(series, "institution", pl.String())).to_series()
    # Few distinct names per day: normalise those in Python so that the rule is exactly
    # normalise_institution(), then map the column.
    distinct = raw.drop_nulls().unique().to_list()
    norm = raw.replace_strict(
        distinct,
        [normalise_institution(v) for v in distinct],
        default=None,
        return_dtype=pl.String,
    )
    work = series.with_columns(
        _col(series, "study_uid", pl.String()).alias("_study"), norm.alias("_norm")
    )
    per_study = (
        work.group_by("_study", maintain_order=True)
        .agg(
            _names=pl.col("_norm").drop_nulls().unique().sort(),
            _date=_col(work, "date", pl.Date()).first(),
        )
        .with_columns(
            _n=pl.col("_names").list.len(),
            _any=pl.col("_names")
            .list.eval(pl.element().is_in(pl.Series(accepted_norm, dtype=pl.String).implode()))
            .list.any(),
        )
        .with_columns(
            _resolved=pl.when(pl.col("_n") == 1)
            .then(pl.col("_names").list.first())
            .when(pl.col("_n") > 1)
            .then(pl.lit(_MIXED))
            .otherwise(pl.lit(None, dtype=pl.String)),
            _reason=pl.when(pl.col("_n") == 0)
            .then(pl.lit(Reason.NO_INSTITUTION))
            .when(((pl.col("_n") > 1) & (not mixed_ok)) | ~pl.col("_any"))
            .then(pl.lit(f"{Reason.INSTITUTION}: ") + pl.col("_names").list.join(", "))
            .otherwise(pl.lit(None, dtype=pl.String)),
        )
    )
    rejected = per_study.filter(pl.col("_reason").is_not_null())
    excluded = _excluded(
        rejected.rename({"_study": "study_uid", "_date": "date"}).drop("_names"), "study"
    )
    kept = (
        work.join(
            per_study.filter(pl.col("_reason").is_null()).select("_study", "_resolved"),
            on="_study",
            how="inner",
            nulls_equal=True,
            maintain_order="left",
        )
        .with_columns(
            pl.when(pl.col("_norm").is_not_null())
            .then(pl.col("_resolved"))
            .otherwise(pl.lit(None, dtype=pl.String))
            .alias("institution")
        )
        .drop("_study", "_norm", "_resolved")
    )
    # keep the caller's column order (institution may be appended when it was missing)
    order = [*series.columns, *(c for c in kept.columns if c not in series.columns)]
    return kept.select(order), excluded


# --------------------------------------------------------------------------- which instances


def instances_needed(modality: str, n_instances: int) -> list[int]:
    """InstanceNumbers whose headers timing needs: CT/PT first and last, NM (and others) the first."""
    if modality.strip(PAD).upper() in ("CT", "PT") and n_instances > 1:
        return [1, n_instances]
    return [1]


# No word boundaries: technicians write "FDGCerveau10min" as well as "FDG cerveau 10 mn".
_BRAIN_FDG_TRACER = re.compile(r"fdg")
_BRAIN_FDG_ORGAN = re.compile(r"cerveau|cerebral|brain")
# The first number (not part of a longer or decimal one) followed by a minute unit.
_BRAIN_FDG_MINUTES = re.compile(
    r"(?<![0-9.,])([0-9]{1,3})[\s_\-]*(?:min|mn|'|\u2019|\u2032)", re.ASCII
)


def brain_fdg_minutes(series_description: str | None) -> int | None:
    """Minutes of a brain-FDG series described like ``FDG Cerveau 10min``; else None.

    Case and accents are ignored; needs ``fdg``, one of ``cerveau|cerebral|brain`` and 1..120
    followed by ``min``, ``mn`` or ``'`` ("FDG Cérébral 10min", "Cerveau FDG 15'").
    """
    if not series_description:
        return None
    text = unaccented(series_description).lower()
    if not (_BRAIN_FDG_TRACER.search(text) and _BRAIN_FDG_ORGAN.search(text)):
        return None
    match = _BRAIN_FDG_MINUTES.search(text)
    if match is None:
        return None
    minutes = int(match.group(1))
    return minutes if 0 < minutes <= 120 else None


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class SeriesTiming:
    """What the instance headers say about a series.

    ``excluded`` is a Reason code when the series is left out for good (SECONDARY images);
    ``failed`` a Reason code (+ ``": detail"``) when start, end or machine is unusable. Fields
    that could be read are filled even when ``failed`` is set. ``station`` / ``serial``: the
    StationName / DeviceSerialNumber of the scanner, when a header carries them.
    """

    start: dt.datetime | None
    end: dt.datetime | None
    machine: str | None
    excluded: str | None = None
    failed: str | None = None
    station: str | None = None
    serial: str | None = None


def _is_secondary(ds: Dataset) -> bool:
    return any(v.upper() == "SECONDARY" for v in strings(raw_value(ds, "ImageType")))


def _instance_number(ds: Dataset) -> int | None:
    return count(raw_value(ds, "InstanceNumber"))


def _ordered(headers: Sequence[Dataset]) -> list[Dataset]:
    """Headers by InstanceNumber when all have one (C-MOVE delivers in any order)."""
    numbers = [_instance_number(h) for h in headers]
    if all(n is not None for n in numbers):
        order = sorted(range(len(headers)), key=lambda i: numbers[i] or 0)
        return [headers[i] for i in order]
    return list(headers)


def _acq_datetime(
    ds: Dataset, day: dt.date, series_date: dt.date | None
) -> tuple[dt.datetime | None, str]:
    """AcquisitionTime on the best date available, or (None, why).

    Without a usable AcquisitionTime, AcquisitionDateTime (what enhanced objects and some
    exports carry instead) tells the same moment.
    """
    raw = raw_value(ds, "AcquisitionTime")
    tm = parse_tm(raw)
    if tm is None:
        stamp = parse_dt(raw_value(ds, "AcquisitionDateTime"))
        if stamp is not None:
            return stamp, ""
        why = "AcquisitionTime missing" if not strings(raw) else "AcquisitionTime unparseable"
        return None, why
    date = (
        parse_da(raw_value(ds, "AcquisitionDate"))
        or series_date
        or parse_da(raw_value(ds, "SeriesDate"))
        or day
    )
    return combine(date, tm), ""


def _frame_ms(item: Dataset, fallback: Dataset | None = None) -> float | None:
    ms = number(raw_value(item, "ActualFrameDuration"))
    if ms is None and fallback is not None:
        ms = number(raw_value(fallback, "ActualFrameDuration"))
    return ms


def _nm_duration(ds: Dataset) -> tuple[dt.timedelta | None, str]:
    """NM acquisition duration (DOMAIN §2.3), or (None, why).

    A present, non-empty sequence is authoritative: when it is garbled the series fails rather
    than falling back to a less specific (and likely wrong) source.
    """
    phases = sequence_items(ds, "PhaseInformationSequence")
    if phases:
        total = 0.0
        for k, item in enumerate(phases, 1):
            ms = _frame_ms(item, ds)  # an item without its own duration uses the top level
            frames = count(raw_value(item, "NumberOfFramesInPhase"))
            if ms is None:
                return None, f"PhaseInformationSequence item {k}: ActualFrameDuration unusable"
            if frames is None:
                return None, f"PhaseInformationSequence item {k}: NumberOfFramesInPhase unusable"
            total += ms * frames
        return _checked(total, "PhaseInformationSequence")
    rotations = sequence_items(ds, "RotationInformationSequence")
    if rotations:
        total = 0.0
        for k, item in enumerate(rotations, 1):
            ms = _frame_ms(item, ds)
            frames = count(raw_value(item, "NumberOfFramesInRotation"))
            if frames is None:
                frames = n_values(raw_value(item, "RadialPosition")) or None
            if ms is None:
                return None, f"RotationInformationSequence item {k}: ActualFrameDuration unusable"
            if frames is None:
                return None, (
                    f"RotationInformationSequence item {k}: no NumberOfFramesInRotation"
                    " nor RadialPosition"
                )
            total += ms * frames
        return _checked(total, "RotationInformationSequence")
    ms = _frame_ms(ds)
    frames = count(raw_value(ds, "NumberOfFrames"))
    if ms is None or frames is None:
        return None, "no duration: no Phase/RotationInformationSequence, " + (
            "ActualFrameDuration unusable" if ms is None else "NumberOfFrames unusable"
        )
    return _checked(ms * frames, "ActualFrameDuration x NumberOfFrames")


def _checked(total_ms: float, source: str) -> tuple[dt.timedelta | None, str]:
    """The duration when plausible: 0 up to 12 h; negative, longer or not finite is a garbled
    header. Checked on the float first: a huge value overflows ``timedelta``. (0 is a number
    the rules refuse later: :data:`Reason.ZERO_DURATION`.)"""
    max_ms = _MAX_DURATION / dt.timedelta(milliseconds=1)
    if not math.isfinite(total_ms) or not 0 <= total_ms <= max_ms:
        return None, f"{source}: implausible duration {total_ms:g} ms"
    return dt.timedelta(milliseconds=total_ms), source


def _plus(start: dt.datetime | None, delta: dt.timedelta) -> dt.datetime | None:
    """``start + delta``; None when absent or past year 9999 (a garbled AcquisitionDate)."""
    if start is None:
        return None
    try:
        return start + delta
    except OverflowError:
        return None


def _ordered_span(
    start: dt.datetime, end: dt.datetime, first: Dataset, last: Dataset
) -> tuple[dt.datetime, dt.datetime, bool]:
    """First and last instance times in order: swapped if reversed (DOMAIN §2.3); and
    whether that order can be believed.

    Times alone more than 12 h apart crossed midnight (23:50 and 00:10, in either instance
    order): the earlier clock time, when its instance has no AcquisitionDate of its own, is
    the next day's, not one end of a 23-hour series. When it has one, nothing can order them
    (False: the series fails, :data:`Reason.UNORDERED_TIMES`).
    """
    a, b = (start, end) if start <= end else (end, start)
    a_header = first if start <= end else last
    if b - a > _MAX_DURATION:
        if not _own_date(a_header):
            return b, a + dt.timedelta(days=1), True
        return a, b, False
    return a, b, True


def _own_date(ds: Dataset) -> bool:
    """True when the instance dates its own acquisition time (see :func:`_acq_datetime`)."""
    if parse_da(raw_value(ds, "AcquisitionDate")) is not None:
        return True
    return (
        parse_tm(raw_value(ds, "AcquisitionTime")) is None
        and parse_dt(raw_value(ds, "AcquisitionDateTime")) is not None
    )


def series_timing(
    modality: str,
    day: dt.date,
    headers: Sequence[Dataset],
    series_description: str | None = None,
    series_date: dt.date | None = None,
    *,
    max_series: dt.timedelta | None = None,
) -> SeriesTiming:
    """Start, end and machine of one series from its instance headers (DOMAIN §2.3).

    ``headers``: CT/PT the first and last instance (by InstanceNumber; the same one when N == 1),
    NM the single instance. Never raises on header content. Times that cannot be believed fail
    the series (docs/domain.md §2.3, plausibility): a CT/PT series longer than ``max_series``
    (:data:`Reason.IMPLAUSIBLE_DURATION`), first and last times that midnight cannot order
    (:data:`Reason.UNORDERED_TIMES`), an NM acquisition of no length
    (:data:`Reason.ZERO_DURATION`); an NM duration beyond 12 h is a garbled header (no end).
    """
    if not headers:
        return SeriesTiming(None, None, None, failed=f"{Reason.NOT_RETRIEVED}: no header")
    if any(_is_secondary(h) for h in headers):
        return SeriesTiming(None, None, None, excluded=Reason.SECONDARY)

    ordered = _ordered(headers)
    first, last = ordered[0], ordered[-1]
    machine = next((m for h in ordered if (m := text_value(h, "ManufacturerModelName"))), None)
    station = next((v for h in ordered if (v := text_value(h, "StationName"))), None)
    serial = next((v for h in ordered if (v := text_value(h, "DeviceSerialNumber"))), None)
    description = series_description or text_value(first, "SeriesDescription")
    mod = modality.strip(PAD).upper()

    start, why_start = _acq_datetime(first, day, series_date)
    end: dt.datetime | None = None
    why_end = ""
    implausible = ""  # a reason code (and detail) when the times cannot be believed
    if mod == "NM":
        duration, why_end = _nm_duration(first)
        if duration is not None and not duration:
            implausible = f"{Reason.ZERO_DURATION}: {why_end} gives 0 ms"
        if start is not None and duration is not None:
            end = _plus(start, duration)
            why_end = "start + duration beyond the calendar"
    else:
        minutes = brain_fdg_minutes(description) if mod == "PT" else None
        if minutes is not None:
            # the last instance's AcquisitionTime is wrong on these series
            end = _plus(start, dt.timedelta(minutes=minutes))
            why_end = "start + description minutes beyond the calendar"
        else:
            end, why_end = _acq_datetime(last, day, series_date)
            if start is not None and end is not None:
                start, end, in_order = _ordered_span(start, end, first, last)
                if not in_order:
                    implausible = (
                        f"{Reason.UNORDERED_TIMES}: {start:%H:%M:%S} and {end:%H:%M:%S} on "
                        "their own AcquisitionDates, more than 12 h apart"
                    )
                elif max_series is not None and end - start > max_series:
                    implausible = (
                        f"{Reason.IMPLAUSIBLE_DURATION}: {_hours(end - start)} from the first "
                        f"to the last instance, more than {_hours(max_series)}"
                    )

    failed: str | None = None
    if start is None:
        failed = f"{Reason.NO_START}: {why_start}"
    elif implausible:
        failed = implausible
    elif end is None:
        failed = f"{Reason.NO_END}: {why_end}"
    elif machine is None:
        failed = f"{Reason.NO_MACHINE}: ManufacturerModelName missing"
    return SeriesTiming(start, end, machine, failed=failed, station=station, serial=serial)


def _hours(span: dt.timedelta) -> str:
    """``2 h 05 min`` (a duration in a reason, to the minute)."""
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def needs_file_headers(modality: str, header: Dataset) -> bool:
    """True when an IMAGE-level C-FIND response lacks what :func:`series_timing` needs.

    The caller then fetches the instance headers (C-GET / C-MOVE). A value that is present but
    garbled does not count: the file would carry the same value.
    """
    if not strings(raw_value(header, "AcquisitionTime")):
        return True
    if text_value(header, "ManufacturerModelName") is None:
        return True
    if not strings(raw_value(header, "ImageType")):  # absent or empty: SECONDARY unknown
        return True
    if modality.strip(PAD).upper() == "NM":
        duration, _ = _nm_duration(header)
        return duration is None
    return False
