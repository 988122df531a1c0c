"""One day's PACS answers into the frames the series store keeps (DOMAIN §2), as pure transforms.

The retrieval (shell) asks the PACS; everything it then builds from the answers is here:
the STUDY and SERIES rows, the series of the day, and, once every kept series is timed from
its instance headers, the day's kept / failed / excluded frames with the institution rule
applied again on the names the headers told.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydicom.dataset import Dataset

from pyschedvisu_core import schema
from pyschedvisu_core.dicomtime import parse_da, parse_tm
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.plausibility import StudyLimits, implausible_studies
from pyschedvisu_core.queries import MAX_INSTANCE_NUMBER
from pyschedvisu_core.schema import Reason
from pyschedvisu_core.series import filter_institutions, series_timing

#: Columns of the STUDY-level rows of a day.
STUDY_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "study_uid": pl.String(),
    "patient_id": pl.String(),
    "study_description": pl.String(),
    "study_time": pl.String(),
    "accession_number": pl.String(),
}
#: Columns of the SERIES-level rows of a day (before timing).
SERIES_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "study_uid": pl.String(),
    "series_uid": pl.String(),
    "modality": pl.String(),
    "series_description": pl.String(),
    "protocol_name": pl.String(),
    "institution": pl.String(),
    "n_instances": pl.Int32(),
    "series_date": pl.Date(),
    "series_time": pl.Time(),
    "study_description": pl.String(),
}


def int_value(ds: Dataset, keyword: str) -> int | None:
    """An integer value (IS, or a number written as text); None when absent or garbage."""
    text = text_value(ds, keyword)
    try:
        return int(float(text)) if text is not None else None
    except (ValueError, OverflowError):
        return None


def answered_count(ds: Dataset, keyword: str) -> int | None:
    """A count the PACS answered (Number of ... Related ...); 0 or garbage did not count: None."""
    n = int_value(ds, keyword)
    return n if n is not None and 0 < n <= MAX_INSTANCE_NUMBER else None


def study_row(day: dt.date, ds: Dataset) -> dict[str, Any] | None:
    """A STUDY-level answer as a row of :data:`STUDY_ROWS_SCHEMA` (None without a UID)."""
    uid = text_value(ds, "StudyInstanceUID")
    if uid is None:
        return None
    return {
        "date": day,
        "study_uid": uid,
        "patient_id": text_value(ds, "PatientID"),
        "study_description": text_value(ds, "StudyDescription"),
        "study_time": text_value(ds, "StudyTime"),
        "accession_number": text_value(ds, "AccessionNumber"),
    }


def series_row(
    day: dt.date, study_uid: str, ds: Dataset, study_description: str | None
) -> dict[str, Any] | None:
    """A SERIES-level answer as a row of :data:`SERIES_ROWS_SCHEMA` (None without a UID)."""
    uid = text_value(ds, "SeriesInstanceUID")
    if uid is None:
        return None
    return {
        "date": day,
        "study_uid": study_uid,
        "series_uid": uid,
        "modality": (text_value(ds, "Modality") or "").upper() or None,
        "series_description": text_value(ds, "SeriesDescription"),
        "protocol_name": text_value(ds, "ProtocolName"),
        "institution": text_value(ds, "InstitutionName"),
        "n_instances": answered_count(ds, "NumberOfSeriesRelatedInstances"),
        "series_date": parse_da(text_value(ds, "SeriesDate")),
        "series_time": parse_tm(text_value(ds, "SeriesTime")),
        # several descriptions in one study reach the extraction's vote
        "study_description": text_value(ds, "StudyDescription") or study_description,
    }


def studies_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The day's STUDY rows as a frame."""
    return pl.DataFrame(list(rows), schema=STUDY_ROWS_SCHEMA)


def series_frame(
    rows: Sequence[Mapping[str, Any]], day: dt.date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the day's SERIES rows, once each; EXCLUDED rows of the series dated another day).

    A series dated another day than its study is not this day's (a late image of a study
    begun the day before, a console clock gone wrong): it is excluded with
    :data:`Reason.OTHER_DAY` and its date, never dropped unseen. One without SeriesDate is
    decided by the AcquisitionDate of its headers (see :func:`assemble_day`).
    """
    series = pl.DataFrame(list(rows), schema=SERIES_ROWS_SCHEMA).unique(
        "series_uid", keep="first", maintain_order=True
    )
    same_day = pl.col("series_date").is_null() | (pl.col("series_date") == day)
    other = series.filter(~same_day).select(
        pl.lit(day, dtype=pl.Date()).alias("date"),
        pl.lit("series", dtype=pl.String()).alias("level"),
        "study_uid",
        "series_uid",
        (
            pl.lit(f"{Reason.OTHER_DAY}: dated ") + pl.col("series_date").dt.strftime("%Y-%m-%d")
        ).alias("reason"),
    )
    return series.filter(same_day), other.cast(schema.EXCLUDED_SCHEMA)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TimedSeries:
    """One kept series of the day and what its retrieval gave.

    ``row`` is its SERIES row (:data:`SERIES_ROWS_SCHEMA`, counts filled); ``headers`` the
    instance headers read for timing, or ``error`` why they could not be had; ``institution``
    the name the rule sees (its files' when they were read, else the SERIES level's).
    """

    row: Mapping[str, Any]
    headers: Sequence[Dataset] = ()
    error: str | None = None
    institution: str | None = None


@dataclass(frozen=True)
class DayFrames:
    """What the store keeps of one day, and what was left out on the way."""

    series: pl.DataFrame
    failed: pl.DataFrame
    excluded: pl.DataFrame
    #: series without SeriesDate acquired another day (excluded: that day's, not this one's)
    other_days: int = 0
    #: series failed because their study runs longer than its machine's maximum
    implausible_studies: int = 0
    #: studies rejected on the InstitutionName of their instance headers
    rejected_on_files: int = 0


def assemble_day(
    day: dt.date,
    timed: Sequence[TimedSeries],
    patient_keys: Mapping[str, str | None],
    accepted_institutions: Sequence[str],
    excluded_before: Sequence[pl.DataFrame] = (),
    *,
    max_series: dt.timedelta | None = None,
    study_limits: StudyLimits | None = None,
    accessions: Mapping[str, str | None] | None = None,
) -> DayFrames:
    """Time every series from its headers, then apply the institution rule again.

    A series whose headers could not be had is *failed* (``not_retrieved``), and so is one
    whose times cannot be believed (see :func:`series_timing` with ``max_series``); one that
    the headers exclude (SECONDARY) joins the excluded rows, and so does one without SeriesDate
    acquired on another day (:data:`Reason.OTHER_DAY`). The institution rule (DOMAIN §2.2) then
    runs again on the names the series carry now: a study whose files all name another hospital
    is rejected though its SERIES-level name was ours. Last, with ``study_limits``, the series
    of a study longer than its machine's maximum are failed (:func:`implausible_studies`).
    ``excluded_before`` (studies, series, institution rejections of the first pass) come first
    in the excluded frame. ``accessions``: each study's AccessionNumber (STUDY level), copied
    to its series rows.
    """
    accessions = accessions or {}
    kept_rows: list[dict[str, Any]] = []
    failed_rows: list[dict[str, Any]] = []
    secondary: list[dict[str, Any]] = []
    secondary_names: dict[str, str | None] = {}
    other_day: list[dict[str, Any]] = []
    for item in timed:
        row = item.row
        uid, study = str(row["series_uid"]), str(row["study_uid"])
        modality = row["modality"] or ""
        base = {
            "date": day,
            "patient_key": patient_keys.get(study),
            "study_uid": study,
            "series_uid": uid,
            "study_description": row["study_description"],
            "series_description": row["series_description"],
            "protocol_name": row["protocol_name"],
            "institution": item.institution,
            "accession_number": accessions.get(study),
            "modality": modality,
            "n_instances": row["n_instances"],
        }
        if item.error is not None:
            failed_rows.append(
                {
                    **base,
                    "machine": None,
                    "start": None,
                    "end": None,
                    "station_name": None,
                    "device_serial_number": None,
                    "reason": f"{Reason.NOT_RETRIEVED}: {item.error}",
                }
            )
            continue
        headers = list(item.headers)
        timing = series_timing(
            modality,
            day,
            headers,
            row["series_description"],
            row["series_date"],
            max_series=max_series,
        )
        if row["series_date"] is None and timing.start is not None and timing.start.date() != day:
            other_day.append(
                {
                    "date": day,
                    "level": "series",
                    "study_uid": study,
                    "series_uid": uid,
                    "reason": f"{Reason.OTHER_DAY}: acquired {timing.start.date().isoformat()}",
                }
            )
            continue
        header_desc = next(
            (d for d in (text_value(h, "StudyDescription") for h in headers) if d), None
        )
        if header_desc:
            base["study_description"] = header_desc
        if timing.excluded:
            secondary_names[uid] = item.institution
            secondary.append(
                {
                    "date": day,
                    "level": "series",
                    "study_uid": study,
                    "series_uid": uid,
                    "reason": timing.excluded,
                }
            )
            continue
        rec = {
            **base,
            "machine": timing.machine,
            "start": timing.start,
            "end": timing.end,
            "station_name": timing.station,
            "device_serial_number": timing.serial,
        }
        if timing.failed:
            failed_rows.append({**rec, "reason": timing.failed})
        else:
            kept_rows.append(rec)

    # the same series as the first pass, less those of another day
    names = {x["series_uid"]: (x["study_uid"], x["institution"]) for x in kept_rows + failed_rows}
    names.update(
        {x["series_uid"]: (x["study_uid"], secondary_names[x["series_uid"]]) for x in secondary}
    )
    again, excl_again = filter_institutions(
        pl.DataFrame(
            [
                {"date": day, "study_uid": st, "series_uid": uid, "institution": name}
                for uid, (st, name) in names.items()
            ],
            schema={
                "date": pl.Date(),
                "study_uid": pl.String(),
                "series_uid": pl.String(),
                "institution": pl.String(),
            },
        ),
        accepted=list(accepted_institutions),
    )
    resolved = dict(again.select("series_uid", "institution").iter_rows())
    kept_rows = [
        {**x, "institution": resolved[x["series_uid"]]}
        for x in kept_rows
        if x["series_uid"] in resolved
    ]
    failed_rows = [
        {**x, "institution": resolved[x["series_uid"]]}
        for x in failed_rows
        if x["series_uid"] in resolved
    ]
    gone = set(excl_again.get_column("study_uid").to_list())
    secondary = [x for x in secondary if x["study_uid"] not in gone]
    other_day = [x for x in other_day if x["study_uid"] not in gone]
    too_long = implausible_studies(kept_rows, study_limits) if study_limits is not None else {}
    if too_long:
        failed_rows += [
            {**x, "reason": too_long[x["series_uid"]]}
            for x in kept_rows
            if x["series_uid"] in too_long
        ]
        kept_rows = [x for x in kept_rows if x["series_uid"] not in too_long]
    excluded = pl.concat(
        [
            *(f.cast(schema.EXCLUDED_SCHEMA) for f in excluded_before),  # type: ignore[arg-type]
            excl_again.cast(schema.EXCLUDED_SCHEMA),  # type: ignore[arg-type]
            pl.DataFrame(secondary, schema=schema.EXCLUDED_SCHEMA),
            pl.DataFrame(other_day, schema=schema.EXCLUDED_SCHEMA),
        ]
    )
    return DayFrames(
        series=pl.DataFrame(kept_rows, schema=schema.SERIES_SCHEMA),
        failed=pl.DataFrame(failed_rows, schema=schema.FAILED_SCHEMA),
        excluded=excluded,
        other_days=len(other_day),
        rejected_on_files=excl_again.height,
        implausible_studies=len(too_long),
    )
