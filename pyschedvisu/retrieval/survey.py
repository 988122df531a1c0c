"""What a PACS holds over some days, for ``pyschedvisu discover`` (no file moved unless asked).

:func:`survey_day` asks the STUDY and SERIES levels the way a retrieval does (the same client,
pacing and :class:`DayPlanner`: day-wide where the PACS allows it, per study otherwise), plus
the equipment attributes (ManufacturerModelName, StationName, DeviceSerialNumber) where the
PACS indexes them, and applies the study and series filters of the config. With ``headers``,
one instance header per kept series tells the equipment (and InstitutionName) the index does
not: IMAGE-level C-FIND of instance 1 when it answers ManufacturerModelName, else that
instance moved by C-GET / C-MOVE. Patient ids are only used to ask; the frames hold none.
The aggregation is :mod:`pyschedvisu_core.survey`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl
from pydicom.dataset import Dataset

from pyschedvisu.config import Settings
from pyschedvisu.retrieval.capabilities import record_for
from pyschedvisu.retrieval.headers import HeaderReader
from pyschedvisu.retrieval.jobs import Pool, SeriesJob
from pyschedvisu.retrieval.picks import UID_LIST_MAX
from pyschedvisu.retrieval.planner import DayPlanner, fill_counts
from pyschedvisu_core import queries as q
from pyschedvisu_core.dayframes import series_frame
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.errors import PacsError
from pyschedvisu_core.series import filter_series, filter_studies
from pyschedvisu_core.survey import (
    HEADER_KEYWORDS,
    SURVEY_SERIES_SCHEMA,
    SURVEY_STUDY_SCHEMA,
)
from pyschedvisu_core.transport import PacsClient

log = logging.getLogger("pyschedvisu.retrieval")

#: ``progress(step)``: a short description of what a day is doing now.
StepFn = Callable[[str], None]


@dataclass(frozen=True)
class DaySurvey:
    """One day of the PACS as the config's filters see it (no patient data)."""

    day: dt.date
    studies: pl.DataFrame  # SURVEY_STUDY_SCHEMA: every STUDY answer, reason null = kept
    series: pl.DataFrame  # SURVEY_SERIES_SCHEMA: series of the kept studies, reason null = kept
    headers_read: int = 0  # series whose equipment came from an instance header


def survey_day(
    day: dt.date,
    settings: Settings,
    client: PacsClient,
    *,
    headers: bool = False,
    step: StepFn | None = None,
) -> DaySurvey:
    """Survey ``day`` (see the module docstring); PacsError subclasses go through."""
    r = settings.retrieve
    plan = DayPlanner(day, settings, client, record_for(settings))
    plan.series_extra = q.EQUIPMENT_KEYWORDS
    workers = max(1, settings.pacs.max_concurrent)
    if step:
        step("studies")
    studies = plan.studies()
    kept_st, excl_st = filter_studies(
        studies,
        patient_id_pattern=r.patient_id_pattern,
        description_exclude=r.study_description_exclude,
    )
    reasons = dict(zip(excl_st["study_uid"].to_list(), excl_st["reason"].to_list(), strict=True))
    study_rows = studies.select(
        "date",
        "study_uid",
        "study_description",
        pl.col("study_uid")
        .replace_strict(reasons, default=None, return_dtype=pl.String)
        .alias("reason"),
    )
    wanted = [
        (uid, pid, desc)
        for uid, pid, desc in kept_st.select(
            "study_uid", "patient_id", "study_description"
        ).iter_rows()
    ]
    del studies, kept_st  # the patient ids stay here
    if step:
        step("series")
    rows = plan.series_day_wide(wanted) if wanted and plan.relational is not False else None
    if rows is None:
        rows = []
        with Pool(max_workers=workers, thread_name_prefix="survey-series") as pool:
            for got in pool.map(lambda w: plan.series_of(*w), wanted):
                rows.extend(got)
    del wanted
    series, _ = series_frame(rows, day)
    extra = pl.DataFrame(
        [
            {"series_uid": row["series_uid"], **{k: row.get(k) for k in q.EQUIPMENT_KEYWORDS}}
            for row in rows
        ],
        schema={"series_uid": pl.String(), **{k: pl.String() for k in q.EQUIPMENT_KEYWORDS}},
    ).unique("series_uid", keep="first")
    series = fill_counts(plan, series, workers)
    kept_se, excl_se = filter_series(
        series,
        description_exclude=r.series_description_exclude,
        protocol_exclude=r.series_protocol_exclude,
        modalities=r.series_modalities,
    )
    read = 0
    if headers and kept_se.height:
        if step:
            step("headers")
        jobs = [SeriesJob.of(row) for row in kept_se.iter_rows(named=True)]
        found = _equipment_from_headers(plan, settings, client, jobs, workers)
        read = len(found)
        if found:
            heads = pl.DataFrame(
                [{"series_uid": uid, **values} for uid, values in found.items()],
                schema={"series_uid": pl.String(), **{k: pl.String() for k in HEADER_KEYWORDS}},
            )
            extra = extra.join(heads, on="series_uid", how="left", suffix="_h").with_columns(
                pl.coalesce(f"{k}_h", k).alias(k) for k in q.EQUIPMENT_KEYWORDS
            )
            # the file's own InstitutionName (Orthanc answers the study's for every series)
            names = heads.select("series_uid", pl.col("InstitutionName").alias("_inst"))
            kept_se = (
                kept_se.join(names, on="series_uid", how="left")
                .with_columns(
                    pl.when(pl.col("series_uid").is_in(heads["series_uid"].implode()))
                    .then(pl.col("_inst"))
                    .otherwise(pl.col("institution"))
                    .alias("institution")
                )
                .drop("_inst")
            )
    reason_of = dict(zip(excl_se["series_uid"].to_list(), excl_se["reason"].to_list(), strict=True))
    frame = (
        pl.concat(
            [
                kept_se,
                series.filter(
                    pl.col("series_uid").is_in(
                        pl.Series(list(reason_of), dtype=pl.String).implode()
                    )
                ),
            ]
        )
        .unique("series_uid", keep="first", maintain_order=True)
        .join(extra, on="series_uid", how="left")
        .with_columns(
            pl.col("series_uid")
            .replace_strict(reason_of, default=None, return_dtype=pl.String)
            .alias("reason"),
            pl.col("ManufacturerModelName").alias("model"),
            pl.col("StationName").alias("station_name"),
            pl.col("DeviceSerialNumber").alias("device_serial_number"),
        )
    )
    return DaySurvey(
        day,
        study_rows.cast(SURVEY_STUDY_SCHEMA),  # type: ignore[arg-type]
        frame.select([pl.col(c).cast(t) for c, t in SURVEY_SERIES_SCHEMA.items()]),
        read,
    )


def _values(ds: Dataset) -> dict[str, str | None]:
    return {k: text_value(ds, k) for k in HEADER_KEYWORDS}


def _equipment_from_headers(
    plan: DayPlanner,
    settings: Settings,
    client: PacsClient,
    jobs: Sequence[SeriesJob],
    workers: int,
) -> dict[str, dict[str, str | None]]:
    """Equipment and InstitutionName of one instance per series (see the module docstring)."""
    out: dict[str, dict[str, str | None]] = {}
    uids = [j.series_uid for j in jobs]
    if plan.relational and plan.record.allows("direct_picks"):
        # instance 1 of every series in a few day-wide IMAGE-level queries
        for i in range(0, len(uids), UID_LIST_MAX):
            chunk = uids[i : i + UID_LIST_MAX]
            query = q.day_pick_query(chunk, 1, timing=False, extra=HEADER_KEYWORDS)
            try:
                answers = client.find("IMAGE", query, limit=4 * len(chunk) + 20)
            except PacsError as exc:
                log.info("%s: instance 1 by InstanceNumber not answered (%s)", plan.day, exc)
                break
            found, why = q.check_day_picks(answers, chunk, 1)
            if why is not None:
                log.info("%s: instance 1 by InstanceNumber not trusted (%s)", plan.day, why)
                break
            for uid, ds in found.items():
                plan.first_picks[uid] = ds
                if text_value(ds, "ManufacturerModelName"):
                    out[uid] = _values(ds)
    rest = [j for j in jobs if j.series_uid not in out]
    if not rest:
        return out
    sample = next((j for j in rest if j.modality in ("CT", "PT")), rest[0])
    resolved = plan.record.resolve(
        settings.pacs.retrieval, client, (sample.study_uid, sample.series_uid)
    )
    reader = HeaderReader(plan, resolved.method, resolved.fallbacks)

    def one(job: SeriesJob) -> tuple[str, list[Dataset]]:
        try:
            if not reader.file_methods():
                answers = client.find(
                    "IMAGE",
                    q.image_query(
                        job.study_uid,
                        job.series_uid,
                        timing=False,
                        instance=1,
                        extra=HEADER_KEYWORDS,
                    ),
                )
                return job.series_uid, answers[:1]
            return job.series_uid, reader.file_headers(job)[:1]
        except PacsError as exc:
            log.info("%s: no header for series %s (%s)", plan.day, job.series_uid, exc)
            return job.series_uid, []

    with Pool(max_workers=workers, thread_name_prefix="survey-headers") as pool:
        for uid, heads in pool.map(one, rest):
            if heads:
                out[uid] = _values(heads[0])
    return out


def survey_frames(days: Sequence[DaySurvey]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(studies, series) of every surveyed day, in their schemas."""
    studies = [d.studies for d in days]
    series = [d.series for d in days]
    return (
        pl.concat(studies) if studies else pl.DataFrame(schema=SURVEY_STUDY_SCHEMA),
        pl.concat(series) if series else pl.DataFrame(schema=SURVEY_SERIES_SCHEMA),
    )


__all__ = ["DaySurvey", "StepFn", "survey_day", "survey_frames"]
