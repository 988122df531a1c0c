"""Column schemas shared by the stages (series store, study table, truth).

Kept in one place so that retrieval, extraction, evaluation and the synthetic
department agree on names and dtypes.
"""

from __future__ import annotations

import polars as pl

DT = pl.Datetime("us")

#: The column every stored table carries on disk (series store day files, study tables): the
#: site (department) its rows belong to. Readers that do not ask for it never see it, and a
#: table written before it existed reads as the reader's site (:func:`site_of_rows`).
SITE_COLUMN = "site"
#: The site of a one-department config (no ``[sites.<id>]`` tables).
DEFAULT_SITE = "default"

#: One row per kept acquisition series, as stored per day by retrieval.
SERIES_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "patient_key": pl.String(),  # HMAC-SHA256 pseudonym, never the raw PatientID
    "study_uid": pl.String(),
    "series_uid": pl.String(),
    "study_description": pl.String(),
    "series_description": pl.String(),
    "protocol_name": pl.String(),
    "institution": pl.String(),  # normalised (lower case, no spaces)
    "accession_number": pl.String(),  # the study's AccessionNumber (STUDY level); null if none
    "modality": pl.String(),
    "n_instances": pl.Int32(),
    "machine": pl.String(),  # ManufacturerModelName as found in the header
    "start": DT,
    "end": DT,
    "station_name": pl.String(),  # StationName of the header (tells identical scanners apart)
    "device_serial_number": pl.String(),  # DeviceSerialNumber of the header
    # PT / NM: the Radiopharmaceutical Information Sequence (0054,0016), see core/radiopharm.py
    "radiopharmaceutical": pl.String(),
    "radionuclide": pl.String(),  # code meaning, e.g. "^18^Fluorine"
    "injected_at": DT,  # RadiopharmaceuticalStartDateTime, else StartTime on the series date
    "activity_mbq": pl.Float64(),  # RadionuclideTotalDose (PT: Bq, NM: MBq), in MBq
    "half_life_s": pl.Float64(),
    "radiopharm_issue": pl.String(),  # why a field above is null ("code: detail; ...")
}

#: Series that should have been kept but lack a usable start, end or machine.
FAILED_SCHEMA: dict[str, pl.DataType] = {**SERIES_SCHEMA, "reason": pl.String()}

#: Series / studies left out on purpose by a rule (not failures).
EXCLUDED_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "level": pl.String(),  # "study" or "series"
    "study_uid": pl.String(),
    "series_uid": pl.String(),  # null for study-level exclusions
    "reason": pl.String(),
}

#: The study table produced by extraction (``<data_dir>/studies.parquet``).
STUDY_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "machine": pl.String(),  # display machine (group without ``_NoCT``)
    "machine_group": pl.String(),
    "study_uid": pl.String(),
    "take": pl.Int32(),
    "study_key": pl.String(),  # study_uid + "_" + take
    "description": pl.String(),  # label, or "OTHER"
    "start": DT,
    "end": DT,
    "start_prep": DT,
    "end_prep": DT,
    "patient_key": pl.String(),
    "modalities": pl.String(),  # sorted, comma-joined
    "protocol_names": pl.String(),
    "study_descriptions": pl.String(),
    "n_series": pl.Int32(),
    "fully_contained": pl.Boolean(),
    # another patient's series overlapping an idle stretch of this study (not a cut, §3.3)
    "foreign_overlaps": pl.Int32(),
    "time_to_prev_s": pl.Float64(),
    "time_to_next_s": pl.Float64(),
    "time_to_prev_prep_s": pl.Float64(),
    "time_to_next_prep_s": pl.Float64(),
    # the study's AccessionNumber (planned-vs-performed matching); null when none was given
    "accession_number": pl.String(),
    # injection to scan (DOMAIN §8, core/uptake.py): the take's first PT/NM acquisition
    "tracer": pl.String(),  # radiopharmaceutical of its injection
    "radionuclide": pl.String(),
    "injected_at": DT,
    "activity_mbq": pl.Float64(),
    "uptake_s": pl.Float64(),  # first PT/NM acquisition start - injection
    "uptake_flag": pl.String(),  # injection after the scan start, or more than 24 h before it
    "radiopharm_issue": pl.String(),  # why the injection could not be read
}

#: What a perfect pipeline must report (written by the synthetic department).
TRUTH_STUDY_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "machine": pl.String(),
    "study_uid": pl.String(),
    "take": pl.Int32(),
    "description": pl.String(),
    "start": DT,
    "end": DT,
    "patient_id": pl.String(),
}

#: The injection of each study of the truth (``DIR/truth/uptake.parquet``): what a perfect
#: extraction gives in the study table's injection columns for the same study take.
TRUTH_UPTAKE_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "machine": pl.String(),
    "study_uid": pl.String(),
    "take": pl.Int32(),
    "tracer": pl.String(),
    "radionuclide": pl.String(),
    "injected_at": DT,
    "activity_mbq": pl.Float64(),
    "uptake_s": pl.Float64(),
    "uptake_flag": pl.String(),
    "radiopharm_issue": pl.String(),  # the issue codes only, "; "-joined
}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with ``schema``."""
    return pl.DataFrame(schema=schema)


def with_site(frame: pl.DataFrame, site: str) -> pl.DataFrame:
    """``frame`` as it is stored: its ``site`` column set to ``site`` (added last, or replaced)."""
    return frame.with_columns(pl.lit(site, dtype=pl.String()).alias(SITE_COLUMN))


def site_of_rows(frame: pl.DataFrame, site: str) -> pl.DataFrame:
    """A stored table read back with its ``site`` column: rows written before the column
    existed (missing or null) belong to ``site``, the store's own."""
    if SITE_COLUMN not in frame.columns:
        return with_site(frame, site)
    return frame.with_columns(pl.col(SITE_COLUMN).cast(pl.String()).fill_null(site))


#: Per-series truth of the synthetic department (``DIR/truth/series.parquet``).
TRUTH_SERIES_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "study_uid": pl.String(),
    "series_uid": pl.String(),
    "modality": pl.String(),
    "machine": pl.String(),  # ManufacturerModelName
    "n_instances": pl.Int32(),
    "start": DT,  # what a perfect retrieval stores (null unless status == "kept")
    "end": DT,
    "station_name": pl.String(),  # StationName (null unless status == "kept")
    "device_serial_number": pl.String(),
    "status": pl.String(),  # "kept" | "excluded" | "failed"
    "reason": pl.String(),  # a Reason code for excluded / failed, else null
    # what a perfect retrieval stores of the injection (null unless status == "kept")
    "radiopharmaceutical": pl.String(),
    "radionuclide": pl.String(),
    "injected_at": DT,
    "activity_mbq": pl.Float64(),
    "half_life_s": pl.Float64(),
    "radiopharm_issue": pl.String(),  # the issue codes only, "; "-joined
}


class Reason:
    """Reason codes shared by retrieval, the store and the synthetic truth.

    Stored reasons start with one of these codes; a ``": detail"`` may follow.
    """

    # study level, excluded on purpose
    STUDY_DESCRIPTION = "study_description_excluded"  # e.g. EXTRINSEQUE
    PATIENT_ID = "patient_id_rejected"  # PatientID does not match the pattern (not all digits)
    NO_INSTITUTION = "no_institution"  # no series of the study carries an InstitutionName
    INSTITUTION = "institution_not_accepted"  # images from another hospital
    # series level, excluded on purpose
    MODALITY = "modality_not_kept"
    SERIES_DESCRIPTION = "series_description_excluded"  # reformats, fusions, captures...
    PROTOCOL = "protocol_excluded"
    NM_DERIVED = "nm_multi_instance"  # NM series with more than one instance
    SECONDARY = "secondary_image_type"  # ImageType contains SECONDARY
    OTHER_DAY = "series_other_day"  # dated (or acquired) another day than its study's
    # failed series (kept apart, with the reason)
    NO_START = "no_start"  # no usable AcquisitionTime on the first instance
    NO_END = "no_end"  # no usable end (last instance time, NM durations)
    NO_MACHINE = "no_machine"  # no ManufacturerModelName
    NOT_RETRIEVED = "not_retrieved"  # headers could not be fetched after the retries
    # failed series whose times cannot be believed (docs/domain.md §2.3, plausibility)
    IMPLAUSIBLE_DURATION = "implausible_duration"  # a CT/PT series longer than the maximum
    ZERO_DURATION = "zero_duration"  # an NM acquisition of no length (NumberOfFrames 0...)
    UNORDERED_TIMES = "unordered_times"  # > 12 h apart on their own dates: no order holds
    IMPLAUSIBLE_STUDY = "implausible_study_duration"  # its study longer than its machine's max

    EXCLUDED = (
        STUDY_DESCRIPTION,
        PATIENT_ID,
        NO_INSTITUTION,
        INSTITUTION,
        MODALITY,
        SERIES_DESCRIPTION,
        PROTOCOL,
        NM_DERIVED,
        SECONDARY,
        OTHER_DAY,
    )
    FAILED = (
        NO_START,
        NO_END,
        NO_MACHINE,
        NOT_RETRIEVED,
        IMPLAUSIBLE_DURATION,
        ZERO_DURATION,
        UNORDERED_TIMES,
        IMPLAUSIBLE_STUDY,
    )
