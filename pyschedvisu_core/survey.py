"""What a PACS holds, told against a config (``pyschedvisu discover``): frames in, frames out.

The shell (:mod:`pyschedvisu.retrieval.survey`) brings, per surveyed day, every STUDY answer
and the series of the studies the study filters kept, each with the reason a filter left it
out (null: kept) and the equipment that identifies its scanner. No patient data: not in the
frames, so never in what is printed or drafted.

Here, the tables ``discover`` prints: the institution names (raw and normalised, accepted or
not), the scanner model combinations per study (which ``[machines]`` group they match),
StationName / DeviceSerialNumber per model, the study descriptions per machine (which label
they get), what the filters excluded. The department's config drafted from the same frames
is :mod:`pyschedvisu_core.surveydraft`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from pyschedvisu_core.labels import label_expr, minify_description, minify_machine_expr
from pyschedvisu_core.machines import MachineValue, identifier_expr, match_groups
from pyschedvisu_core.queries import EQUIPMENT_KEYWORDS
from pyschedvisu_core.series import filter_institutions, normalise_institution

#: What ``discover --headers`` reads from one instance per series.
HEADER_KEYWORDS: tuple[str, ...] = (*EQUIPMENT_KEYWORDS, "InstitutionName")

#: Every STUDY answer of a surveyed day (``reason``: why the study filters left it out).
SURVEY_STUDY_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "study_uid": pl.String(),
    "study_description": pl.String(),
    "reason": pl.String(),
}
#: The series of the studies kept (``reason``: why the series filters left it out).
SURVEY_SERIES_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "study_uid": pl.String(),
    "series_uid": pl.String(),
    "modality": pl.String(),
    "series_description": pl.String(),
    "protocol_name": pl.String(),
    "institution": pl.String(),
    "n_instances": pl.Int32(),
    "study_description": pl.String(),
    "model": pl.String(),
    "station_name": pl.String(),
    "device_serial_number": pl.String(),
    "reason": pl.String(),
}

#: The suffix of the ``[machines]`` group of a scanner in a study without its CT models.
NO_CT = "_NoCT"


def _span(col: str = "date") -> list[pl.Expr]:
    return [pl.col(col).min().alias("first"), pl.col(col).max().alias("last")]


def kept(series: pl.DataFrame) -> pl.DataFrame:
    """The series no filter left out."""
    return series.filter(pl.col("reason").is_null())


# -- institutions ----------------------------------------------------------------------------


def accepted_studies(series: pl.DataFrame, accepted: Sequence[str]) -> pl.DataFrame:
    """``study_uid`` of the studies the institution rule keeps (kept series only)."""
    rows = kept(series).select("date", "study_uid", "series_uid", "institution")
    ok, _ = filter_institutions(rows, accepted=list(accepted))
    return ok.select("study_uid").unique()


def institutions(series: pl.DataFrame, accepted: Sequence[str]) -> pl.DataFrame:
    """``institution, normalised, accepted, studies, first, last`` per InstitutionName found.

    Over the kept series: a name counts the studies one of whose series carries it.
    ``accepted``: the name alone passes the institution rule (a study carrying it with other
    names is ``mixed``). No name at all: one row ``(none)``.
    """
    ok = {n for a in accepted if (n := normalise_institution(a)) is not None}
    rows = kept(series).select("date", "study_uid", pl.col("institution").fill_null(""))
    raw = rows["institution"].unique().to_list()
    norm = {r: normalise_institution(r) for r in raw}
    out = (
        rows.with_columns(
            pl.col("institution")
            .replace_strict(norm, default=None, return_dtype=pl.String)
            .alias("normalised")
        )
        .group_by("institution", "normalised")
        .agg(pl.col("study_uid").n_unique().alias("studies"), *_span())
        .with_columns(
            pl.col("normalised")
            .is_in(pl.Series(sorted(ok), dtype=pl.String).implode())
            .fill_null(False)
            .alias("accepted"),
            pl.when(pl.col("normalised").is_null())
            .then(pl.lit("(none)"))
            .otherwise(pl.col("institution"))
            .alias("institution"),
        )
    )
    return out.select("institution", "normalised", "accepted", "studies", "first", "last").sort(
        ["studies", "institution"], descending=[True, False]
    )


# -- scanners --------------------------------------------------------------------------------


def study_scanners(series: pl.DataFrame) -> pl.DataFrame:
    """One row per study with a known model: ``date, study_uid, models`` (the lookup key),
    ``names`` (raw model names), ``stations`` / ``serials`` (identifiers as compared),
    ``station_names`` / ``serial_numbers`` (as written)."""
    rows = kept(series).filter(pl.col("model").is_not_null() & (pl.col("model") != ""))
    strings = pl.List(pl.String())
    if rows.is_empty():
        return pl.DataFrame(
            schema={
                "date": pl.Date(),
                "study_uid": pl.String(),
                "models": pl.String(),
                "names": strings,
                "stations": strings,
                "serials": strings,
                "station_names": strings,
                "serial_numbers": strings,
            }
        )
    return (
        rows.with_columns(
            minify_machine_expr(pl.col("model")).alias("_m"),
            identifier_expr(pl.col("station_name")).alias("_st"),
            identifier_expr(pl.col("device_serial_number")).alias("_se"),
        )
        .group_by("study_uid")
        .agg(
            pl.col("date").first(),
            pl.col("_m").unique().sort().str.join(",").alias("models"),
            pl.col("model").unique().sort().alias("names"),
            pl.col("_st").drop_nulls().unique().sort().alias("stations"),
            pl.col("_se").drop_nulls().unique().sort().alias("serials"),
            pl.col("station_name")
            .filter(pl.col("_st").is_not_null())
            .unique()
            .sort()
            .alias("station_names"),
            pl.col("device_serial_number")
            .filter(pl.col("_se").is_not_null())
            .unique()
            .sort()
            .alias("serial_numbers"),
        )
        .sort("date", "study_uid")
    )


def study_groups(scanners: pl.DataFrame, machines: Mapping[str, MachineValue]) -> pl.DataFrame:
    """``study_uid, machine_group`` (null: no entry) of :func:`study_scanners` rows."""
    matched = match_groups(
        scanners.select("study_uid", "models", "stations", "serials").lazy(),
        machines,
        key="study_uid",
    )
    return matched.collect()


def combinations_table(
    series: pl.DataFrame, machines: Mapping[str, MachineValue], accepted: Sequence[str]
) -> pl.DataFrame:
    """Scanner model combinations per study, and the ``[machines]`` group each gets.

    ``models, names, station_names, serial_numbers, studies, accepted_studies, first, last,
    machine_group`` (null: no group: a mixed case); one row per (combination, group).
    Studies of series without a known model (a PACS that does not index it: ``--headers``)
    are one row with ``models`` empty.
    """
    scanners = study_scanners(series)
    ok = accepted_studies(series, accepted)["study_uid"].implode()
    groups = study_groups(scanners, machines)
    joined = scanners.join(groups, on="study_uid", how="left")
    out = (
        joined.group_by("models", "machine_group")
        .agg(
            pl.col("names").explode().unique().sort().str.join(" + ").alias("names"),
            pl.col("station_names").explode().unique().sort().str.join(", ").alias("station_names"),
            pl.col("serial_numbers")
            .explode()
            .unique()
            .sort()
            .str.join(", ")
            .alias("serial_numbers"),
            pl.len().alias("studies"),
            pl.col("study_uid").is_in(ok).sum().alias("accepted_studies"),
            *_span(),
        )
        .sort(["studies", "models"], descending=[True, False])
    )
    unknown = kept(series).filter(~pl.col("study_uid").is_in(scanners["study_uid"].implode()))
    if unknown.height:
        extra = unknown.select(
            pl.lit("").alias("models"),
            pl.lit(None, dtype=pl.String).alias("machine_group"),
            pl.lit("(unknown: the PACS does not index ManufacturerModelName; use --headers)").alias(
                "names"
            ),
            pl.lit("").alias("station_names"),
            pl.lit("").alias("serial_numbers"),
            pl.col("study_uid").n_unique().cast(pl.UInt32).alias("studies"),
            pl.col("study_uid")
            .filter(pl.col("study_uid").is_in(ok))
            .n_unique()
            .cast(pl.UInt32)
            .alias("accepted_studies"),
            *_span(),
        )
        out = pl.concat([out, extra.select(out.columns)], how="vertical_relaxed")
    return out.select(
        "models",
        "names",
        "station_names",
        "serial_numbers",
        "studies",
        "accepted_studies",
        "first",
        "last",
        "machine_group",
    )


def equipment_table(series: pl.DataFrame) -> pl.DataFrame:
    """``model, station_name, device_serial_number, series, studies, first, last``."""
    rows = kept(series)
    return (
        rows.group_by("model", "station_name", "device_serial_number")
        .agg(
            pl.len().alias("series"),
            pl.col("study_uid").n_unique().alias("studies"),
            *_span(),
        )
        .sort(["model", "station_name", "device_serial_number"], nulls_last=True)
    )


# -- descriptions ----------------------------------------------------------------------------


#: The machine and label of the descriptions of studies no group matches (``unmatched``).
UNMATCHED = "(no machine: mixed case)"


def descriptions_table(
    studies: pl.DataFrame,
    series: pl.DataFrame,
    machines: Mapping[str, MachineValue],
    labels: Mapping[str, Mapping[str, Sequence[str]]],
    accepted: Sequence[str] | None,
    *,
    unmatched: bool = False,
) -> pl.DataFrame:
    """Study descriptions per machine and the label each gets (``OTHER``: none).

    ``machine, machine_key, minified, description`` (most frequent spelling), ``studies,
    first, last, label``; over the studies a group matches (``unmatched``: the others too,
    under :data:`UNMATCHED`, with no label) and the institution rule keeps with ``accepted``
    (None: whatever their institution).
    """
    scanners = study_scanners(series)
    groups = study_groups(scanners, machines)
    if not unmatched:
        groups = groups.filter(pl.col("machine_group").is_not_null())
    rows = studies.filter(pl.col("reason").is_null()).join(
        groups, on="study_uid", how="left" if unmatched else "inner"
    )
    if accepted is not None:
        rows = rows.join(accepted_studies(series, accepted), on="study_uid", how="semi")
    rows = rows.with_columns(
        pl.col("machine_group").str.strip_suffix(NO_CT).alias("machine"),
        minify_description(pl.col("study_description").fill_null("")).alias("minified"),
    ).with_columns(minify_machine_expr(pl.col("machine")).alias("machine_key"))
    out = (
        rows.group_by("machine", "machine_key", "minified")
        .agg(
            pl.col("study_description").drop_nulls().mode().sort().first().alias("description"),
            pl.len().alias("studies"),
            *_span(),
        )
        .with_columns(
            pl.when(pl.col("machine").is_null())
            .then(pl.lit("-"))
            .otherwise(label_expr(pl.col("machine_key"), pl.col("minified"), labels))
            .alias("label"),
            pl.col("machine").fill_null(pl.lit(UNMATCHED)),
        )
    )
    return out.sort(["machine", "studies", "minified"], descending=[False, True, False])


# -- what the filters left out ---------------------------------------------------------------

#: The value shown for each exclusion reason (never a patient id).
_EXCLUDED_VALUE = {
    "study_description_excluded": "study_description",
    "modality_not_kept": "modality",
    "series_description_excluded": "series_description",
    "protocol_excluded": "protocol_name",
    "nm_multi_instance": "series_description",
}


def excluded_table(studies: pl.DataFrame, series: pl.DataFrame) -> pl.DataFrame:
    """``level, reason, value, count, first, last`` of what the filters left out.

    The value is the description, protocol or modality the filter matched; studies rejected
    for their PatientID show none (the id is patient data).
    """
    frames = []
    for level, frame in (("study", studies), ("series", series)):
        rows = frame.filter(pl.col("reason").is_not_null()).with_columns(
            pl.col("reason").str.split(":").list.first().alias("reason")
        )
        if rows.is_empty():
            continue
        value = pl.lit("", dtype=pl.String)
        for reason, col in _EXCLUDED_VALUE.items():
            if col in rows.columns:
                value = (
                    pl.when(pl.col("reason") == reason)
                    .then(pl.col(col).fill_null(""))
                    .otherwise(value)
                )
        frames.append(
            rows.group_by(pl.lit(level).alias("level"), "reason", value.alias("value")).agg(
                pl.len().alias("count"), *_span()
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "level": pl.String(),
                "reason": pl.String(),
                "value": pl.String(),
                "count": pl.UInt32(),
                "first": pl.Date(),
                "last": pl.Date(),
            }
        )
    return pl.concat(frames).sort(["level", "reason", "count"], descending=[True, False, True])


__all__ = [
    "HEADER_KEYWORDS",
    "NO_CT",
    "SURVEY_SERIES_SCHEMA",
    "SURVEY_STUDY_SCHEMA",
    "UNMATCHED",
    "accepted_studies",
    "combinations_table",
    "descriptions_table",
    "equipment_table",
    "excluded_table",
    "institutions",
    "kept",
    "study_groups",
    "study_scanners",
]
