"""Series to studies: DOMAIN §3 as vectorised polars transforms (LazyFrame in, LazyFrame out).

Every rule works within one day: a day's studies depend only on that day's series, which is what
lets the shell recompute only the days that changed.

Output (``build_studies``; ``schema.STUDY_SCHEMA``, one row per study take, sorted by date,
machine, start, study_key):

=====================  ============  ===========================================================
column                 dtype         meaning
=====================  ============  ===========================================================
date                   Date          day of the series
machine                String        display machine (group without ``_NoCT``), or ``mixed cases``
machine_group          String        group from ``[machines]`` (e.g. ``PET Siemens_NoCT``)
study_uid              String        Study Instance UID
take                   Int32         1, 2, … (retakes of one UID the same day)
study_key              String        ``study_uid + "_" + take``
description            String        consensus label, or ``OTHER``
start, end             Datetime(us)  first series start, last series end (raw acquisition span)
start_prep, end_prep   Datetime(us)  span padded by the machine's prep minutes, cut at the middle
                                     of partial overlaps; equal to start/end when fully contained
patient_key            String        pseudonymised patient id (never the raw PatientID)
modalities            String        sorted distinct modalities, comma-joined
protocol_names         String        sorted distinct ProtocolNames, comma-joined ('' when none)
study_descriptions     String        sorted distinct raw StudyDescriptions, comma-joined
n_series               Int32         series counted (after duplicate removal; summed on merges)
foreign_overlaps       Int32         another patient's series reaching into an idle stretch of this
                                     study but overlapping it by more than the tolerance: not a
                                     cut, a data-quality finding (DOMAIN §3.3)
fully_contained        Boolean       the raw span lies inside another study's of the same machine
time_to_prev_s         Float64       start − previous study's end (raw); null for the first
time_to_next_s         Float64       next study's start − end (raw); null for the last
time_to_prev_prep_s    Float64       same on the padded spans
time_to_next_prep_s    Float64
accession_number       String        the study's AccessionNumber (STUDY-level C-FIND), the
                                     earliest study's for a merged VENT PERF.; null when none
tracer, radionuclide   String        the injection of the take's first PT / NM acquisition
injected_at            Datetime(us)  (see :func:`pyschedvisu_core.uptake.study_injections`)
activity_mbq           Float64       administered activity (MBq)
uptake_s               Float64       first PT / NM acquisition start − injection (s)
uptake_flag            String        injection after the scan start / more than 24 h before it
radiopharm_issue       String        why the injection could not be read (store's reason)
=====================  ============  ===========================================================

"Previous/next" is the neighbour in (start, end descending, study_key) order per machine and day.
``mixed cases`` studies (no ``[machines]`` entry for their scanner) carry extra ``models`` (the
minified, sorted, comma-joined model names), ``stations`` and ``serials`` columns (their
StationName / DeviceSerialNumber values when an entry names identifiers for that model set) and
are meant to be kept apart from reports.

Choices where DOMAIN §3 leaves room (good sense, documented): duplicate studies (§3.9) are
dropped *before* padding and neighbour times, so a copy never looks "contained"; a padded span
is never cut inside its own acquisition span (when raw spans overlap the padding there is
dropped); the interleave window of a take split is ``[latest end so far, start)``, widened by
the overlap tolerance for series that reach into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import polars as pl

from pyschedvisu_core import schema
from pyschedvisu_core.labels import (
    OTHER,
    label_expr,
    label_order,
    minify_description,
    minify_machine_expr,
)
from pyschedvisu_core.machines import (
    MachineValue,
    identified_models,
    identifier_expr,
    match_groups,
    specs_frame,
)
from pyschedvisu_core.takes import OVERLAP_TOLERANCE_S, assign_takes
from pyschedvisu_core.uptake import INJECTION_COLUMNS, study_injections

MIXED = "mixed cases"
VENT_PERF = "VENT PERF."
NO_CT_SUFFIX = "_NoCT"
#: Engine for the materialised stages of :func:`build_studies` (see there).
ENGINE: Final = "in-memory"
#: Bumped whenever a rule changes, so stored study tables are recomputed.
#: 2: takes measured from the latest end so far, not the previous series' end;
#: 3: only another patient's series cut a study into takes, not the same patient's other study;
#: 4: accents dropped from StudyDescription (and label patterns) before matching;
#: 5: another patient's series overlapping ours by more than a tolerance no longer cuts a take
#: (a data-quality finding, ``foreign_overlaps``)
#: 6: a machine may be named by StationName / DeviceSerialNumber too (identical scanners)
#: 7: ``accession_number`` in the study table (planned against performed, DOMAIN §7)
#: 8: the injection of the take's first PT / NM acquisition and the uptake time (DOMAIN §8)
RULES_VERSION = 8

_SERIES_COLUMNS = [
    "date",
    "patient_key",
    "study_uid",
    "series_uid",
    "study_description",
    "protocol_name",
    "institution",
    "modality",
    "machine",
    "start",
    "end",
    "station_name",
    "device_serial_number",
    "accession_number",
    # the injection of PT / NM series (DOMAIN §8, pyschedvisu_core.uptake)
    *INJECTION_COLUMNS,
]
_LANE_KEYS = ["date", "lane"]  # one scanner on one day: interleaving, padding, neighbours
_LANE = ["_lid"]  # its integer id (see study_machines)
_MACHINE_COLUMNS = [
    "models",
    "stations",
    "serials",
    "machine_group",
    "machine",
    "machine_key",
    "lane",
    "_lid",
]


def _lazy(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _union_joined(col: str) -> pl.Expr:
    """Union of comma-joined value sets of ``col`` in a group, comma-joined again."""
    return (
        pl.col(col)
        .str.join(",")
        .str.split(",")
        .list.eval(pl.element().filter(pl.element() != ""))
        .list.unique()
        .list.sort()
        .list.join(",")
    )


def clean_series(series: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """DOMAIN §3.1: drop rows without institution, machine, UID or times; order start <= end."""
    lazy = _lazy(series)
    present = lazy.collect_schema().names()
    # series stored before StationName / DeviceSerialNumber / AccessionNumber (or the
    # injection) were kept lack those columns: null there
    columns = [
        pl.col(c) if c in present else pl.lit(None, dtype=schema.SERIES_SCHEMA[c]).alias(c)
        for c in _SERIES_COLUMNS
    ]
    return (
        lazy.select(columns)  # only what the rules read: projection reaches a parquet scan
        .filter(
            pl.col("institution").is_not_null()
            & (pl.col("institution") != "")
            & pl.col("machine").is_not_null()
            & (pl.col("machine").str.strip_chars() != "")
            & pl.col("study_uid").is_not_null()
            & pl.col("start").is_not_null()
            & pl.col("end").is_not_null()
        )
        # Retrieval already swaps reversed instance times; guard so no duration is ever negative.
        .with_columns(
            pl.min_horizontal("start", "end").alias("start"),
            pl.max_horizontal("start", "end").alias("end"),
        )
    )


def machine_lookup(machines: Mapping[str, MachineValue]) -> pl.DataFrame:
    """``models -> machine_group`` of the entries naming no StationName / serial number."""
    specs = specs_frame(machines).filter(pl.col("_spec") == 0)
    first = specs.group_by("models", maintain_order=True).agg(pl.col("machine_group").first())
    return first.select("models", "machine_group")


def add_study_ids(series: pl.LazyFrame) -> pl.LazyFrame:
    """Rename the raw ManufacturerModelName to ``model``; add ``_sid`` (one per date and UID).

    ``_sid = date (days) * 2**32 + dense rank of the UID``: unique per (date, study_uid), ordered
    like it, and computed per row without joining on long UID strings. Later stages sort and
    group on such integer ids.
    """
    return series.rename({"machine": "model"}).with_columns(
        (
            pl.col("date").cast(pl.Int32).cast(pl.Int64) * 2**32
            + pl.col("study_uid").rank("dense").cast(pl.Int64)
        ).alias("_sid")
    )


def study_machines(series: pl.LazyFrame, machines: Mapping[str, MachineValue]) -> pl.LazyFrame:
    """DOMAIN §3.2, one row per ``_sid``: ``models``, ``stations``, ``serials``,
    ``machine_group``, ``machine`` (display), ``machine_key`` (minified display), ``lane`` and
    its integer id ``_lid``.

    The group is looked up from the sorted set of minified model names, and, where a
    ``[machines]`` entry names them, the study's StationName / DeviceSerialNumber values
    (:mod:`pyschedvisu_core.machines`); no match gives ``mixed cases``. ``stations`` /
    ``serials`` (sorted, comma-joined) are filled for the studies whose model set an entry
    names identifiers for (null otherwise). ``lane`` is the display machine, or
    ``mixed:<models>[@<stations>/<serials>]`` so that unrelated mixed studies never
    interleave with each other or with real machines.
    """
    # Distinct (study, model) rows first: far fewer strings to minify and sort.
    models = (
        series.select("_sid", "date", "model")
        .unique()
        .with_columns(minify_machine_expr(pl.col("model")).alias("_m"))
        .unique(["_sid", "_m"])
        .sort("_sid", "_m")
        .group_by("_sid", maintain_order=True)
        .agg(pl.col("date").first(), pl.col("_m").str.join(",").alias("models"))
    )
    identified = sorted(identified_models(machines))
    mixed_lane = pl.lit("mixed:") + pl.col("models")
    if identified:
        # identifiers only where an entry names them: other studies keep the plain lookup
        ids = (
            series.select(
                "_sid",
                identifier_expr(pl.col("station_name")).alias("_st"),
                identifier_expr(pl.col("device_serial_number")).alias("_se"),
            )
            .unique()
            .group_by("_sid")
            .agg(
                pl.col("_st").drop_nulls().unique().sort().alias("stations"),
                pl.col("_se").drop_nulls().unique().sort().alias("serials"),
            )
        )
        models = models.join(ids, on="_sid", how="left").with_columns(
            pl.col(c).fill_null(pl.lit([], dtype=pl.List(pl.String())))
            for c in ("stations", "serials")
        )
        groups = models.join(match_groups(models, machines), on="_sid", how="left")
        shown = pl.col("models").is_in(pl.Series(identified, dtype=pl.String()).implode())
        groups = groups.with_columns(
            *(
                pl.when(shown).then(pl.col(c).list.join(",")).alias(c)
                for c in ("stations", "serials")
            )
        )
        mixed_lane = (
            pl.when(shown)
            .then(mixed_lane + "@" + pl.col("stations") + "/" + pl.col("serials"))
            .otherwise(mixed_lane)
        )
    else:  # the model set alone decides (as in 2019): no identifier read at all
        groups = models.join(match_groups(models, machines), on="_sid", how="left")
        groups = groups.with_columns(
            pl.lit(None, dtype=pl.String()).alias("stations"),
            pl.lit(None, dtype=pl.String()).alias("serials"),
        )
    groups = groups.with_columns(pl.col("machine_group").fill_null(pl.lit(MIXED)))
    display = pl.col("machine_group").str.strip_suffix(NO_CT_SUFFIX)
    groups = groups.with_columns(
        display.alias("machine"),
        pl.when(pl.col("machine_group") != MIXED)
        .then(minify_machine_expr(display))
        .alias("machine_key"),
        pl.when(pl.col("machine_group") != MIXED).then(display).otherwise(mixed_lane).alias("lane"),
    )
    lanes = groups.select(_LANE_KEYS).unique().sort(_LANE_KEYS).with_row_index("_lid")
    return groups.join(lanes, on=_LANE_KEYS, how="left").drop("date")


def assign_machines(series: pl.LazyFrame, machines: Mapping[str, MachineValue]) -> pl.LazyFrame:
    """Series with their study's machine columns (see :func:`study_machines`) and ``_sid``."""
    with_ids = add_study_ids(series)
    return with_ids.join(study_machines(with_ids, machines), on="_sid", how="left")


def study_labels(
    series: pl.LazyFrame,
    machine_keys: pl.LazyFrame,
    labels: Mapping[str, Mapping[str, Sequence[str]]],
) -> pl.LazyFrame:
    """DOMAIN §3.5: ``_tk, description`` for every take (``_tk``: see :func:`group_studies`).

    Each series' StudyDescription gets the first label of its machine (``machine_keys``:
    ``_sid -> machine_key``) that fully matches, else OTHER; the take's description is its most
    frequent non-OTHER label (ties: config order).
    """
    counts = (
        series.group_by("_tk", "study_description")
        .agg(pl.col("_sid").first(), pl.len().alias("_n"))
        .join(machine_keys, on="_sid", how="left")
    )
    # Regexes run once per distinct (machine, description), not once per series.
    pairs = (
        counts.select("machine_key", "study_description")
        .unique()
        .with_columns(
            label_expr(
                pl.col("machine_key"), minify_description(pl.col("study_description")), labels
            ).alias("label")
        )
    )
    best = (
        counts.join(pairs, on=["machine_key", "study_description"], how="left", nulls_equal=True)
        .filter(pl.col("label") != OTHER)
        .group_by("_tk", "machine_key", "label")
        .agg(pl.col("_n").sum())
        .join(label_order(labels).lazy(), on=["machine_key", "label"], how="left")
        .sort(["_tk", "_n", "label_rank"], descending=[False, True, False])
        .group_by("_tk", maintain_order=True)
        .agg(pl.col("label").first().alias("description"))
    )
    return (
        series.select("_tk")
        .unique()
        .join(best, on="_tk", how="left")
        .with_columns(pl.col("description").fill_null(pl.lit(OTHER)))
    )


def _take_key() -> pl.Expr:
    # One Int64 per (date, study_uid, take): single-column group-bys are much cheaper.
    return (pl.col("_sid") * 1024 + pl.col("take").clip(0, 1023)).alias("_tk")


def group_studies(
    series: pl.LazyFrame,
    labels: Mapping[str, Mapping[str, Sequence[str]]],
    machines: pl.LazyFrame | None = None,
    *,
    sorted_takes: bool = False,
) -> pl.LazyFrame:
    """DOMAIN §3.4-3.5: one row per (date, study_uid, take) with span, sets and consensus label.

    ``machines``: the :func:`study_machines` frame, when ``series`` does not carry its columns.
    ``sorted_takes``: rows come as :func:`~pyschedvisu_core.takes.assign_takes` leaves them
    (by study, then start, so each take's rows are contiguous): the group-by then runs on a
    sorted key.
    """
    tk = _take_key()
    series = series.with_columns(tk.set_sorted() if sorted_takes else tk)
    if machines is None:
        machines = series.select("_sid", *_MACHINE_COLUMNS).unique("_sid")
    sets = {"modality": "modalities", "protocol_name": "protocol_names"}
    sets["study_description"] = "study_descriptions"
    studies = series.group_by("_tk").agg(
        pl.col("_sid", "take", "date", "study_uid").first(),
        pl.col("patient_key").min(),  # one patient per study; min() keeps it order-free
        pl.col("accession_number").min(),  # one per study (STUDY level); order-free too
        pl.col("start").min(),
        pl.col("end").max(),
        pl.len().cast(pl.Int32).alias("n_series"),
        pl.col("_overlaps").sum().cast(pl.Int32).alias("foreign_overlaps"),
        *(pl.col(col).drop_nulls().unique().alias(alias) for col, alias in sets.items()),
    )
    return (
        studies.with_columns(pl.col(a).list.sort().list.join(",") for a in sets.values())
        .join(machines.select("_sid", *_MACHINE_COLUMNS), on="_sid", how="left")
        .join(
            study_labels(series, machines.select("_sid", "machine_key"), labels),
            on="_tk",
            how="left",
        )
        .with_columns(
            (pl.col("study_uid") + "_" + pl.col("take").cast(pl.String)).alias("study_key")
        )
        .drop("_tk")
    )


def merge_label(studies: pl.LazyFrame, label: str = VENT_PERF) -> pl.LazyFrame:
    """DOMAIN §3.6: merge studies with ``label`` of one patient, day and machine into one.

    The earliest-starting study gives study_uid/take/study_key; start = min, end = max,
    n_series summed, modalities / protocols / descriptions unioned.
    """
    target = (pl.col("description") == label) & (pl.col("machine") != MIXED)
    rest = studies.filter(~target)
    merged = (
        studies.filter(target)
        .sort("start", "study_key")
        .group_by(["date", "machine", "patient_key"], maintain_order=True)  # machine, not lane
        .agg(
            pl.col(
                "_sid", "study_uid", "take", "study_key", "machine_group", "machine_key"
            ).first(),
            pl.col("lane", "_lid", "models").first(),
            pl.col("description").first(),
            pl.col("accession_number").first(),  # the earliest study's, like its uid
            pl.col("start").min(),
            pl.col("end").max(),
            pl.col("n_series").sum().cast(pl.Int32),
            pl.col("foreign_overlaps").sum().cast(pl.Int32),
            _union_joined("modalities").alias("modalities"),
            _union_joined("protocol_names").alias("protocol_names"),
            _union_joined("study_descriptions").alias("study_descriptions"),
        )
    )
    return pl.concat([rest, merged], how="diagonal")


def drop_duplicate_studies(studies: pl.LazyFrame) -> pl.LazyFrame:
    """DOMAIN §3.9: one study per (date, machine, patient, start, end); the lowest study_key stays."""
    return studies.sort("study_key").unique(
        subset=["_lid", "patient_key", "start", "end"], keep="first", maintain_order=True
    )


def pad_preparation(studies: pl.LazyFrame, prep_minutes: Mapping[str, int]) -> pl.LazyFrame:
    """DOMAIN §3.7-3.8: ``start_prep``, ``end_prep``, ``fully_contained``.

    Per lane and day, in (start, end descending, study_key) order: a study whose raw span lies
    inside an earlier one's is ``fully_contained`` and keeps its raw times. Other studies are
    padded by the machine's prep minutes; where two consecutive padded spans overlap, both are
    cut at the middle of the overlap, but never inside their own acquisition span (when the raw
    spans themselves overlap, the padding there is simply dropped).
    """
    prep = pl.DataFrame(
        {"machine_key": list(prep_minutes), "_prep_min": list(prep_minutes.values())},
        schema={"machine_key": pl.String(), "_prep_min": pl.Int64()},
    ).lazy()
    sorted_ = studies.join(prep, on="machine_key", how="left").sort(
        ["_lid", "start", "end", "study_key"], descending=[False, False, True, False]
    )
    pad = pl.duration(minutes=pl.col("_prep_min").fill_null(0))
    start, end = pl.col("start"), pl.col("end")
    prev_max_end = end.shift(1).cum_max().over(_LANE)
    with_flags = sorted_.with_columns(
        (prev_max_end >= end).fill_null(False).alias("fully_contained")
    ).with_columns(
        pl.when(~pl.col("fully_contained"))
        .then(end)
        .shift(1)
        .forward_fill()
        .over(_LANE)
        .alias("_prev_end"),
        pl.when(~pl.col("fully_contained"))
        .then(start)
        .shift(-1)
        .backward_fill()
        .over(_LANE)
        .alias("_next_start"),
    )
    # The middle of the padded overlap of A=[.., a_end+p] and B=[b_start-p, ..] is (a_end+b_start)/2.
    mid_prev = pl.col("_prev_end") + (start - pl.col("_prev_end")) / 2
    mid_next = end + (pl.col("_next_start") - end) / 2
    overlap_prev = pl.col("_prev_end").is_not_null() & (pl.col("_prev_end") + pad > start - pad)
    overlap_next = pl.col("_next_start").is_not_null() & (end + pad > pl.col("_next_start") - pad)
    return with_flags.with_columns(
        pl.when(pl.col("fully_contained"))
        .then(start)
        .when(overlap_prev)
        .then(pl.min_horizontal(start, mid_prev))
        .otherwise(start - pad)
        .alias("start_prep"),
        pl.when(pl.col("fully_contained"))
        .then(end)
        .when(overlap_next)
        .then(pl.max_horizontal(end, mid_next))
        .otherwise(end + pad)
        .alias("end_prep"),
    ).drop("_prep_min", "_prev_end", "_next_start")


def neighbour_times(studies: pl.LazyFrame) -> pl.LazyFrame:
    """DOMAIN §3.8: seconds to the previous / next study per lane and day (raw and padded)."""

    def seconds(expr: pl.Expr) -> pl.Expr:
        return expr.dt.total_microseconds().cast(pl.Float64) / 1e6

    return studies.sort(
        ["_lid", "start", "end", "study_key"], descending=[False, False, True, False]
    ).with_columns(
        seconds(pl.col("start") - pl.col("end").shift(1)).over(_LANE).alias("time_to_prev_s"),
        seconds(pl.col("start").shift(-1) - pl.col("end")).over(_LANE).alias("time_to_next_s"),
        seconds(pl.col("start_prep") - pl.col("end_prep").shift(1))
        .over(_LANE)
        .alias("time_to_prev_prep_s"),
        seconds(pl.col("start_prep").shift(-1) - pl.col("end_prep"))
        .over(_LANE)
        .alias("time_to_next_prep_s"),
    )


def build_studies(
    series: pl.LazyFrame | pl.DataFrame,
    *,
    machines: Mapping[str, MachineValue],
    labels: Mapping[str, Mapping[str, Sequence[str]]],
    prep_minutes: Mapping[str, int],
    retake_split_s: int,
    overlap_tolerance_s: int = OVERLAP_TOLERANCE_S,
) -> pl.LazyFrame:
    """Every rule of DOMAIN §3 on series rows (``schema.SERIES_SCHEMA``).

    ``machines``: group -> model names (or a table naming them and the scanner's StationName /
    DeviceSerialNumber values, see :mod:`pyschedvisu_core.machines`); ``labels``: minified display machine -> label -> patterns
    (ordered); ``prep_minutes``: minified display machine -> minutes. Returns the study table
    (``schema.STUDY_SCHEMA`` plus ``models``, ``stations``, ``serials``), ``mixed cases`` rows
    included (see
    :func:`split_mixed`).
    """

    # Each stage reads its input twice (self-joins, filters); materialising between stages keeps
    # polars from re-running the whole upstream plan per branch (measured: 3-4x faster). The
    # stages are sorts, group-bys and windows on in-memory frames: the in-memory engine runs
    # them with less CPU than the streaming one (measured: about 1.5x on ten years).
    def stage(frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.collect(engine=ENGINE).lazy()

    staged = stage(add_study_ids(clean_series(series)))
    by_study = stage(study_machines(staged, machines))
    # Only the ids travel with the series rows; the machine columns are joined per study.
    staged = staged.join(by_study.select("_sid", "_lid"), on="_sid", how="left")
    staged = stage(assign_takes(staged, retake_split_s, overlap_tolerance_s))
    studies = stage(group_studies(staged, labels, by_study, sorted_takes=True))
    studies = stage(drop_duplicate_studies(merge_label(studies, VENT_PERF)))
    # the injection of each take (a merged VENT PERF row: of its first study, as the rest)
    studies = studies.join(study_injections(staged), on=["_sid", "take"], how="left")
    studies = neighbour_times(pad_preparation(studies, prep_minutes))
    columns = [*schema.STUDY_SCHEMA, "models", "stations", "serials"]
    return (
        studies.select(columns)
        .with_columns([pl.col(c).cast(t) for c, t in schema.STUDY_SCHEMA.items()])
        .sort(["date", "machine", "start", "study_key"])
    )


def split_mixed(studies: pl.LazyFrame | pl.DataFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """``(reportable, mixed)``: reportable rows in ``STUDY_SCHEMA``; mixed ones keep ``models``,
    ``stations`` and ``serials``."""
    lazy = _lazy(studies)
    is_mixed = pl.col("machine_group") == MIXED
    return lazy.filter(~is_mixed).select(list(schema.STUDY_SCHEMA)), lazy.filter(is_mixed)
