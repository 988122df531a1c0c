"""Takes of a study: DOMAIN §3.3 as vectorised polars transforms (LazyFrame in, LazyFrame out).

A Study Instance UID scanned twice the same day (a retake after a gap, or another patient
scanned in between) is cut into takes; duplicate series are dropped first. Used by
:func:`pyschedvisu_core.studies.build_studies` between the machine and the grouping stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from pyschedvisu_core import schema

#: Default of ``takes.overlap_tolerance_s``: how far another patient's series may overlap ours
#: and still count as scanned in between (clock rounding between consoles).
OVERLAP_TOLERANCE_S: Final = 60

#: Width of one group's slot on a packed Int64 key (2**40 us ~ 12.7 days of offsets).
_SLOT_US = 2**40
#: Lane times are placed relative to two days before their date (series may be dated oddly).
_BEFORE_DAY_US = 2 * 86_400 * 1_000_000


def _first_of_group(keys: Sequence[str]) -> pl.Expr:
    """True on the first row of each run of equal ``keys`` (the frame is sorted by them)."""
    return pl.any_horizontal([(pl.col(k) != pl.col(k).shift(1)).fill_null(True) for k in keys])


def _us(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds()


def _packed(group: pl.Expr, offset_us: pl.Expr) -> pl.Expr:
    """``group * slot + offset``: one Int64 that sorts by group, then by time within it.

    Offsets are clipped to one slot: only times more than 12 days from their reference (a
    study's first start, or its date for lanes) would be affected, which no scanner does.
    """
    return group.cast(pl.Int64) * _SLOT_US + offset_us.clip(0, _SLOT_US - 1)


def _count_in(sorted_keys: pl.Expr, lo: pl.Expr, hi: pl.Expr) -> pl.Expr:
    """How many ``sorted_keys`` lie in ``[lo, hi)`` (two binary searches)."""
    return sorted_keys.search_sorted(hi, side="left").cast(pl.Int64) - sorted_keys.search_sorted(
        lo, side="left"
    ).cast(pl.Int64)


def assign_takes(
    series: pl.LazyFrame, retake_split_s: int, overlap_tolerance_s: int = OVERLAP_TOLERANCE_S
) -> pl.LazyFrame:
    """DOMAIN §3.3: drop duplicate series, then number the takes of each study UID.

    With ``reach_i = max(end_1 .. end_{i-1})`` (series of the study by start), a new take starts
    at series i when ``start_i - reach_i > retake_split_s`` or when a series X of another
    patient's study on the same lane lies in the idle stretch ``[reach_i, start_i)``: it reaches
    into it (``X.start < start_i`` and ``X.end >= reach_i``) and overlaps neither side by more
    than ``overlap_tolerance_s`` (``X.start >= reach_i - tol`` and ``X.end <= start_i + tol``).
    A study's patient is its first series' ``patient_key``.

    One scanner cannot image two patients at once: a foreign series that reaches into the
    stretch but overlaps one of ours by more than the tolerance comes from a clock offset or a
    mis-assigned machine. Cutting there left seconds-long "studies" (the 2019 rule); it is
    counted instead in ``_overlaps`` (per series row, for the stretch before it), a
    data-quality finding. The latest end so far, not the previous series' end: a long series
    overlapping later short ones keeps the scanner busy, so neither a gap nor room for another
    patient opened there. Adds ``take`` (Int32) and ``_overlaps`` (Int32); ``study_key`` is made
    per study later. Rows come out sorted by study, then start.
    """
    ordered = ["_sid", "start", "end", "patient_key", "series_uid"]
    dup_keys = ["_sid", "start", "end", "patient_key"]
    # Sorted so that duplicates (same study, patient, start, end; the machine group is one per
    # study) are adjacent: the first of each run is kept (lowest series_uid, order-free).
    is_dup = pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(1)) for k in dup_keys])
    first = pl.col("_first")
    dedup = (
        series.sort(ordered, nulls_last=True)
        .filter(~is_dup)
        .with_columns(_first_of_group(["_sid"]).alias("_first"))
        .with_columns(
            first.cum_sum().alias("_g"),  # study ordinal, in sorted order
            pl.when(first).then(pl.col("start")).forward_fill().alias("_s0"),  # its first start
        )
    )
    # Each study's times as offsets from its first start, packed with its ordinal: one global
    # running max is then the running max within each study (earlier studies pack lower).
    reach = _packed(pl.col("_g"), _us(pl.col("end") - pl.col("_s0"))).cum_max().shift(1)
    reach_us = reach - pl.col("_g").cast(pl.Int64) * _SLOT_US
    with_prev = dedup.with_columns(
        pl.when(~first).then(pl.col("_s0") + pl.duration(microseconds=reach_us)).alias("_end_prev")
    ).with_columns(
        # An idle stretch only where the study's earlier series have all ended (reach < start).
        (~first & (pl.col("_end_prev") < pl.col("start"))).alias("_idle")
    )
    # Foreign series reaching into [reach, start): on the whole lane (one scanner, one day),
    # those starting before `start` less those ending before `reach` (which then also started
    # before `start`), less the same for the series of the same patient there (its own study's
    # included). The same patient is no other patient scanned in between (DOMAIN §3.3): a copy
    # of the exam archived under a second UID, or a second exam of that patient on the scanner,
    # must not cut it into takes. Four binary searches on packed integer keys per row.
    day0 = pl.col("date").cast(schema.DT)
    # A study's patient (its first series'; the study itself when unknown) mixed with its
    # lane into one integer group: hashes and a numeric rank, not strings (10 years: 765k rows).
    pk = pl.col("patient_key")
    patient = pl.when(pk.is_not_null()).then(pk.hash()).otherwise(pl.col("_sid").hash(seed=1))
    patient = pl.when(first).then(patient).forward_fill()
    lane_hash = pl.col("_lid").hash(seed=2)
    with_prev = with_prev.with_columns((patient ^ lane_hash).rank("dense").alias("_pl"))

    def key(group: str, time: pl.Expr) -> pl.Expr:
        return _packed(pl.col(group), _us(time - day0) + _BEFORE_DAY_US)

    def reaching(group: str) -> pl.Expr:
        floor = pl.col(group).cast(pl.Int64) * _SLOT_US
        start, reach = pl.col("start"), pl.coalesce("_end_prev", "start")
        starts, ends = key(group, start).sort(), key(group, pl.col("end")).sort()
        return _count_in(starts, floor, key(group, start)) - _count_in(
            ends, floor, key(group, reach)
        )

    candidates = pl.when(pl.col("_idle")).then(reaching("_lid") - reaching("_pl")).otherwise(0)
    with_prev = with_prev.with_columns(candidates.alias("_cand")).with_row_index("_rid")
    # The few stretches some foreign series reaches into: check each such series against the
    # tolerance (a join on the lane, limited to those stretches).
    tol = pl.duration(seconds=overlap_tolerance_s)
    stretches = with_prev.filter(pl.col("_cand") > 0).select(
        "_rid", "_lid", "_pl", "_end_prev", "start"
    )
    lane_series = with_prev.select(
        "_lid",
        pl.col("_pl").alias("_xpl"),
        pl.col("start").alias("_xs"),
        pl.col("end").alias("_xe"),
    )
    checked = (
        stretches.join(lane_series, on="_lid", how="inner")
        .filter(
            (pl.col("_xpl") != pl.col("_pl"))
            & (pl.col("_xs") < pl.col("start"))
            & (pl.col("_xe") >= pl.col("_end_prev"))
        )
        .with_columns(
            (
                (pl.col("_xs") >= pl.col("_end_prev") - tol)
                & (pl.col("_xe") <= pl.col("start") + tol)
            ).alias("_between")
        )
        .group_by("_rid")
        .agg(
            pl.col("_between").any().alias("_cut"),
            (~pl.col("_between")).sum().cast(pl.Int32).alias("_overlaps"),
        )
    )
    with_cuts = with_prev.join(checked, on="_rid", how="left", maintain_order="left").with_columns(
        pl.col("_cut").fill_null(False), pl.col("_overlaps").fill_null(0)
    )
    gap_us = _us(pl.col("start") - pl.col("_end_prev"))
    split = ~first & ((gap_us > retake_split_s * 1_000_000) | pl.col("_cut"))
    # take = 1 + splits since the study's first row (a running sum, reset at each study).
    cs = split.cast(pl.Int64).cum_sum()
    return with_cuts.with_columns(
        (cs - pl.when(first).then(cs).forward_fill() + 1).cast(pl.Int32).alias("take")
    ).drop("_first", "_g", "_s0", "_end_prev", "_idle", "_pl", "_cand", "_rid", "_cut")
