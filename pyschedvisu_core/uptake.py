"""Injection to scan (DOMAIN §8): each study's injection and uptake time, the configured
windows, and the numbers of the report's "Injection → scan" panel.

The store keeps, per PT / NM series, what its headers say of the injection
(:mod:`pyschedvisu_core.radiopharm`). A study take gets the injection of its PT / NM
series (:func:`study_injections`): ``uptake_s`` = start of its first PT / NM acquisition −
injection. An injection after that start, or more than 24 h before it, is a clock or entry
error: flagged (``uptake_flag``), kept in the table, left out of the uptake figures.

Windows (``[uptake.<label>]`` of the config, given here as :class:`UptakeWindow`) apply per
description label, else per tracer name; a study matching none is shown without a target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from pyschedvisu_core.radiopharm import MODALITIES

__all__ = [
    "FLAG_AFTER_SCAN",
    "FLAG_OVER_24H",
    "INJECTION_COLUMNS",
    "MAX_UPTAKE_S",
    "TOTAL",
    "UPTAKE_TABLE_SCHEMA",
    "WINDOWED",
    "UptakeWindow",
    "is_pet",
    "study_injections",
    "uptake_table",
    "uptake_totals",
    "window_names",
]

#: Series columns the study rule reads (``schema.SERIES_SCHEMA``).
INJECTION_COLUMNS: Final = (
    "radiopharmaceutical",
    "radionuclide",
    "injected_at",
    "activity_mbq",
    "radiopharm_issue",
)
#: ``uptake_flag`` values.
FLAG_AFTER_SCAN: Final = "injection_after_scan"
FLAG_OVER_24H: Final = "injection_over_24h"
#: Longest uptake believed (s): one day (DOMAIN §8).
MAX_UPTAKE_S: Final = 24 * 3600
#: Labels of the rows of :func:`uptake_table` after the descriptions: the studies with a
#: window (their tracers are comparable: the summary's numbers), then every PET study.
WINDOWED: Final = "WINDOWED"
TOTAL: Final = "TOTAL"


def study_injections(series: pl.LazyFrame) -> pl.LazyFrame:
    """The injection of each study take (``_sid``, ``take``) from its PT / NM series rows.

    The take's PT / NM series in start order: the first carrying an injection time gives
    ``tracer``, ``radionuclide``, ``injected_at``, ``activity_mbq`` and ``radiopharm_issue``
    (none carries one: the first, for its issue); ``uptake_s`` = the first one's start −
    ``injected_at``; ``uptake_flag`` = :data:`FLAG_AFTER_SCAN` when the injection is after
    that start, :data:`FLAG_OVER_24H` when more than :data:`MAX_UPTAKE_S` before it. Takes
    without a PT / NM series have no row.
    """
    iso = series.filter(pl.col("modality").is_in(list(MODALITIES)))
    first = (
        iso.sort(["_sid", "take", "start", "series_uid"])
        .group_by(["_sid", "take"], maintain_order=True)
        .agg(pl.col("start").first().alias("_scan"))
    )
    chosen = (
        iso.sort(["_sid", "take", pl.col("injected_at").is_null(), "start", "series_uid"])
        .group_by(["_sid", "take"], maintain_order=True)
        .agg(
            pl.col("radiopharmaceutical").first().alias("tracer"),
            pl.col("radionuclide").first(),
            pl.col("injected_at").first(),
            pl.col("activity_mbq").first(),
            pl.col("radiopharm_issue").first(),
        )
    )
    # seconds as the exact quotient of the microseconds, rounded once (polars divides a
    # float column by a literal with its reciprocal: 7.291671999999999 for 7291672 µs)
    micro = (pl.col("_scan") - pl.col("injected_at")).dt.total_microseconds()
    uptake = (micro.cast(pl.Decimal(38, 6)) / 1_000_000).cast(pl.Float64)
    return (
        first.join(chosen, on=["_sid", "take"], how="inner")
        .with_columns(uptake.alias("uptake_s"))
        .with_columns(
            pl.when(pl.col("uptake_s") < 0)
            .then(pl.lit(FLAG_AFTER_SCAN))
            .when(pl.col("uptake_s") > MAX_UPTAKE_S)
            .then(pl.lit(FLAG_OVER_24H))
            .otherwise(pl.lit(None, dtype=pl.String()))
            .alias("uptake_flag")
        )
        .select(
            "_sid",
            "take",
            "tracer",
            "radionuclide",
            "injected_at",
            "activity_mbq",
            "uptake_s",
            "uptake_flag",
            "radiopharm_issue",
        )
    )


# -- windows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UptakeWindow:
    """One ``[uptake.<name>]`` table of the config, as plain values (seconds, MBq).

    It applies to the studies of the listed ``descriptions`` (labels; none listed: the label
    ``name``), else to those whose tracer one of ``tracers`` finds (case-insensitive
    regexes). Unset bounds: the figures show no target for them.
    """

    name: str
    descriptions: tuple[str, ...] = ()
    tracers: tuple[str, ...] = ()
    min_s: float | None = None
    target_s: float | None = None
    max_s: float | None = None
    activity_ref_mbq: float | None = None
    source: str = ""

    @property
    def has_window(self) -> bool:
        return self.min_s is not None and self.max_s is not None

    def names_description(self, label: str) -> bool:
        return label in (self.descriptions or (self.name,))

    def finds_tracer(self, tracer: str) -> bool:
        return any(re.search(p, tracer, re.IGNORECASE) for p in self.tracers)


def window_of(
    description: str | None, tracer: str | None, windows: Sequence[UptakeWindow]
) -> UptakeWindow | None:
    """The window of a study: the first naming its description, else the first finding its
    tracer, else None."""
    if description is not None:
        for w in windows:
            if w.names_description(description):
                return w
    if tracer:
        for w in windows:
            if w.finds_tracer(tracer):
                return w
    return None


def window_names(studies: pl.DataFrame, windows: Sequence[UptakeWindow]) -> pl.Series:
    """The window name of each study (``description``, ``tracer`` columns; null: none)."""
    pairs = studies.select("description", "tracer").unique()
    names = [
        w.name if (w := window_of(d, t, windows)) is not None else None
        for d, t in pairs.iter_rows()
    ]
    found = pairs.with_columns(pl.Series("_window", names, dtype=pl.String()))
    return (
        studies.select("description", "tracer")
        .join(found, on=["description", "tracer"], how="left", nulls_equal=True)
        .get_column("_window")
    )


# -- numbers -----------------------------------------------------------------------------------

#: Columns of :func:`uptake_table` (one row per description, then :data:`TOTAL`).
UPTAKE_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "label": pl.String(),
    "n": pl.Int64(),  # PET studies (a PT series) of the description
    "n_uptake": pl.Int64(),  # with an uptake time, not flagged
    "median_s": pl.Float64(),
    "p10_s": pl.Float64(),
    "p90_s": pl.Float64(),
    "window": pl.String(),  # the [uptake.<name>] of most of its studies (null: none)
    "min_s": pl.Float64(),
    "target_s": pl.Float64(),
    "max_s": pl.Float64(),
    "n_windowed": pl.Int64(),  # uptake times with a window
    "in_window": pl.Int64(),  # of those, inside [min, max]
    "in_window_pct": pl.Float64(),
    "n_activity": pl.Int64(),
    "activity_median_mbq": pl.Float64(),
    "activity_p90_mbq": pl.Float64(),
    "activity_ref_mbq": pl.Float64(),
    "flagged": pl.Int64(),  # injection after the scan start or > 24 h before
    "no_injection": pl.Int64(),  # no injection time read (radiopharm_issue says why)
}


def is_pet(studies: pl.DataFrame) -> pl.Series:
    """True for the PET studies (a PT series among their modalities)."""
    return studies.get_column("modalities").fill_null("").str.contains(r"(^|,)PT(,|$)")


def with_windows(studies: pl.DataFrame, windows: Sequence[UptakeWindow]) -> pl.DataFrame:
    """PET ``studies`` with ``_window``, ``_min``, ``_max``, ``_ok`` (a believed uptake) and
    ``_in`` (inside its window; null without one)."""
    pet = studies.filter(is_pet(studies))
    by_name = {w.name: w for w in windows}
    bounds = pl.DataFrame(
        {
            "_window": list(by_name),
            "_min": [w.min_s for w in by_name.values()],
            "_max": [w.max_s for w in by_name.values()],
        },
        schema={"_window": pl.String(), "_min": pl.Float64(), "_max": pl.Float64()},
    )
    ok = pl.col("uptake_s").is_not_null() & pl.col("uptake_flag").is_null()
    return (
        pet.with_columns(window_names(pet, windows).alias("_window"))
        .join(bounds, on="_window", how="left")
        .with_columns(ok.alias("_ok"))
        .with_columns(
            pl.when(pl.col("_ok") & pl.col("_min").is_not_null() & pl.col("_max").is_not_null())
            .then(pl.col("uptake_s").is_between(pl.col("_min"), pl.col("_max")))
            .alias("_in")
        )
    )


def _stats(frame: pl.DataFrame) -> dict[str, Any]:
    ok = frame.filter(pl.col("_ok"))
    windowed = ok.filter(pl.col("_in").is_not_null())
    act = frame.get_column("activity_mbq").drop_nulls()
    up = ok.get_column("uptake_s")
    n_in = int(windowed.get_column("_in").sum()) if windowed.height else 0

    def q(s: pl.Series, p: float) -> float | None:
        value = s.quantile(p, interpolation="linear") if s.len() else None
        return float(value) if value is not None else None

    return {
        "n": frame.height,
        "n_uptake": ok.height,
        "median_s": q(up, 0.5),
        "p10_s": q(up, 0.1),
        "p90_s": q(up, 0.9),
        "n_windowed": windowed.height,
        "in_window": n_in,
        "in_window_pct": 100 * n_in / windowed.height if windowed.height else None,
        "n_activity": act.len(),
        "activity_median_mbq": q(act, 0.5),
        "activity_p90_mbq": q(act, 0.9),
        "flagged": frame.filter(pl.col("uptake_flag").is_not_null()).height,
        "no_injection": frame.filter(pl.col("injected_at").is_null()).height,
    }


def uptake_table(
    studies: pl.DataFrame, labels: Sequence[str], windows: Sequence[UptakeWindow]
) -> pl.DataFrame:
    """Uptake and activity per description of the PET ``studies`` (``STUDY_SCHEMA``), in the
    order of ``labels`` (others after them), then a :data:`WINDOWED` row (the studies whose
    window has bounds; only when there are some) and a :data:`TOTAL` row (every PET study).

    Uptake: median and P10 / P90 (linear interpolation) of the believed uptake times; the
    share inside the window of their description (its most frequent window) out of those
    that have one. Activity: median / P90 of every PET study's activity, and the window's
    reference. Flagged studies and those without an injection time are counted apart.
    """
    frame = with_windows(studies, windows)
    if frame.height == 0:
        return pl.DataFrame(schema=UPTAKE_TABLE_SCHEMA)
    by_name = {w.name: w for w in windows}
    present = frame.get_column("description").unique().to_list()
    order = [lab for lab in labels if lab in present] + sorted(
        lab for lab in present if lab not in labels
    )
    rows: list[dict[str, Any]] = []
    for label in order:
        part = frame.filter(pl.col("description") == label)
        names = part.get_column("_window").drop_nulls()
        name = str(names.mode().sort()[0]) if names.len() else None
        w = by_name.get(name) if name is not None else None
        rows.append(
            {
                "label": label,
                "window": name,
                "min_s": w.min_s if w else None,
                "target_s": w.target_s if w else None,
                "max_s": w.max_s if w else None,
                "activity_ref_mbq": w.activity_ref_mbq if w else None,
                **_stats(part),
            }
        )
    windowed = frame.filter(pl.col("_min").is_not_null())
    if windowed.height:
        rows.append({"label": WINDOWED, "window": None, **_stats(windowed)})
    rows.append({"label": TOTAL, "window": None, **_stats(frame)})
    return pl.DataFrame(rows, schema=UPTAKE_TABLE_SCHEMA)


def uptake_totals(studies: pl.DataFrame, windows: Sequence[UptakeWindow]) -> Mapping[str, Any]:
    """The summary page's numbers: the :data:`WINDOWED` row of :func:`uptake_table` when some
    PET study has a window (FDG oncology by default: one tracer, one target), else its
    :data:`TOTAL` row; ``activity_ref_mbq``: the reference those windows share (None when
    they have none, or several)."""
    frame = with_windows(studies, windows)
    windowed = frame.filter(pl.col("_min").is_not_null())
    by_name = {w.name: w for w in windows}
    refs = {
        by_name[name].activity_ref_mbq
        for name in windowed.get_column("_window").unique().to_list()
        if name in by_name
    }
    # the reference of those studies when they share one (else none: no single number)
    ref = refs.pop() if len(refs) == 1 else None
    return {**_stats(windowed if windowed.height else frame), "activity_ref_mbq": ref}
