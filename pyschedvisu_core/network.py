"""The network view: several sites compared per machine type, from aggregates only (issue 20).

Each site's weekly run publishes :func:`site_aggregates` of its own report and nothing else:
the summary rows (machine x period: exams, slots, gaps, median duration, retakes, days
without activity or data, the period before) and its exams and slots per week over the trend
weeks. No study, no patient key, no time of day leaves the site. The network report reads
those rows back from every site (:func:`from_records`) and adds them up: per period and
machine type, one row per site's machine then the network's total (:func:`network_table`);
per machine type and week, each site's and the network's utilisation (:func:`network_trend`).

A network total is the sum of the sites' own numbers (exams, slots, gaps, retakes, no-shows),
and its utilisation the summed exams over the summed slots: the same rule as a site's report.
A median cannot be added up: each machine keeps its own, the total has none.

The report's pages are drawn by :mod:`pyschedvisu_core.network_pages`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from pyschedvisu_core import i18n, overview

#: A summary row of a site's report (machine x period).
PERIOD = "period"
#: A week of a site's trend (exams and slots of one machine in one ISO week).
WEEK = "week"
#: ``site`` of the total rows.
NETWORK = "network"
#: Machine type of a machine whose studies say nothing (no PT, no NM).
OTHER_TYPE = "other"

#: What a site publishes: one row per machine x period of its summary (``kind`` = ``period``)
#: and per machine x week of its trend (``kind`` = ``week``; ``period`` = the week's Monday).
AGGREGATE_SCHEMA: dict[str, pl.DataType] = {
    "site": pl.String(),
    "end": pl.Date(),  # the report's end date (a Friday)
    "kind": pl.String(),
    "period": pl.String(),
    "period_label": pl.String(),
    "machine": pl.String(),
    "machine_type": pl.String(),
    "first_day": pl.Date(),
    "last_day": pl.Date(),
    "exams": pl.Int64(),
    "slots": pl.Int64(),
    "gaps": pl.Int64(),
    "median_duration_s": pl.Float64(),
    "retakes": pl.Int64(),
    "no_activity_days": pl.Int64(),
    "no_data_days": pl.Int64(),
    "previous_exams": pl.Int64(),
    "change_pct": pl.Float64(),
    "no_shows": pl.Int64(),  # null: not known (no appointment book at that site)
    "missing_days": pl.Int64(),  # days of the report's week the site could not retrieve
}

#: The network table: per period and machine type, a row per site's machine, then the total.
NETWORK_SCHEMA: dict[str, pl.DataType] = {
    "period": pl.String(),
    "period_label": pl.String(),
    "machine_type": pl.String(),
    "row": pl.String(),  # "machine" or "network"
    "site": pl.String(),  # "network" on the total row
    "machine": pl.String(),  # null on the total row
    "first_day": pl.Date(),
    "last_day": pl.Date(),
    "exams": pl.Int64(),
    "slots": pl.Int64(),
    "utilisation_pct": pl.Float64(),
    "gaps": pl.Int64(),
    "median_duration_s": pl.Float64(),
    "retakes": pl.Int64(),
    "no_shows": pl.Int64(),
    "previous_exams": pl.Int64(),
    "change_pct": pl.Float64(),
}

#: Exams, slots and utilisation per machine type, site (or ``network``) and week.
TREND_SCHEMA: dict[str, pl.DataType] = {
    "machine_type": pl.String(),
    "site": pl.String(),
    "monday": pl.Date(),
    "exams": pl.Int64(),
    "slots": pl.Int64(),
    "utilisation_pct": pl.Float64(),
}


# -- a site's side -------------------------------------------------------------------------


def machine_type_of(modalities: Sequence[str]) -> str:
    """``PET/CT``, ``PET``, ``SPECT/CT`` or ``NM`` from the modalities a machine's studies
    used (PT first: a PET/CT's studies hold CT too); :data:`OTHER_TYPE` without PT or NM."""
    seen = {m.strip().upper() for item in modalities for m in item.split(",") if m.strip()}
    if "PT" in seen:
        return "PET/CT" if "CT" in seen else "PET"
    if "NM" in seen:
        return "SPECT/CT" if "CT" in seen else "NM"
    return OTHER_TYPE


def machine_types(
    studies: pl.DataFrame, machines: Sequence[str], configured: Mapping[str, str]
) -> dict[str, str]:
    """Type of each display machine: the configured one, else from its studies' modalities."""
    seen: dict[str, list[str]] = {}
    if studies.height:
        rows = studies.group_by("machine").agg(pl.col("modalities").unique()).iter_rows()
        seen = {str(m): [str(v) for v in mods if v is not None] for m, mods in rows}
    return {m: configured.get(m) or machine_type_of(seen.get(m, [])) for m in machines}


def site_aggregates(
    site: str,
    end: dt.date,
    summary: pl.DataFrame,
    weekly: pl.DataFrame,
    types: Mapping[str, str],
    *,
    no_shows: pl.DataFrame | None = None,
    missing_days: int = 0,
) -> pl.DataFrame:
    """What ``site`` publishes for its report ending on ``end`` (``AGGREGATE_SCHEMA``).

    ``summary``: its summary table (``overview.SUMMARY_SCHEMA``); ``weekly``: ``machine``,
    ``monday``, ``exams``, ``slots`` per week of its trend; ``types``: machine -> type;
    ``no_shows``: ``period``, ``machine``, ``no_shows`` where the site knows its plan.
    """
    periods = summary.select(
        pl.lit(site).alias("site"),
        pl.lit(end).alias("end"),
        pl.lit(PERIOD).alias("kind"),
        "period",
        "period_label",
        "machine",
        "first_day",
        "last_day",
        "exams",
        "slots",
        "gaps",
        "median_duration_s",
        "retakes",
        "no_activity_days",
        "no_data_days",
        "previous_exams",
        "change_pct",
    )
    if no_shows is not None and no_shows.height:
        periods = periods.join(
            no_shows.select("period", "machine", pl.col("no_shows").cast(pl.Int64)),
            on=["period", "machine"],
            how="left",
        )
    weeks = weekly.select(
        pl.lit(site).alias("site"),
        pl.lit(end).alias("end"),
        pl.lit(WEEK).alias("kind"),
        pl.col("monday").dt.to_string("%Y-%m-%d").alias("period"),
        pl.col("monday").dt.to_string("%Y-%m-%d").alias("period_label"),
        "machine",
        pl.col("monday").alias("first_day"),
        (pl.col("monday") + pl.duration(days=4)).alias("last_day"),
        "exams",
        "slots",
    )
    frame = pl.concat([conform(periods), conform(weeks)])
    return frame.with_columns(
        machine_type=pl.col("machine").replace_strict(
            dict(types), default=OTHER_TYPE, return_dtype=pl.String()
        ),
        missing_days=pl.lit(missing_days, dtype=pl.Int64()),
    ).select(list(AGGREGATE_SCHEMA))


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with exactly the columns of ``AGGREGATE_SCHEMA`` (missing = null), cast."""
    return frame.select(
        pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in AGGREGATE_SCHEMA.items()
    )


def to_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The aggregates as JSON-ready rows (dates as ``YYYY-MM-DD``, no NaN): a table artifact."""
    out = []
    for row in conform(frame).iter_rows(named=True):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            clean[key] = value
        out.append(clean)
    return out


def from_records(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Aggregates read back from :func:`to_records` rows (``AGGREGATE_SCHEMA``).

    Raises ``ValueError`` naming what is wrong: not a list of rows, a missing column, a value
    of the wrong type.
    """
    if not isinstance(records, Sequence) or not all(isinstance(r, Mapping) for r in records):
        raise ValueError("aggregates: a list of rows (objects) is expected")
    for name in AGGREGATE_SCHEMA:
        missing = [i for i, r in enumerate(records) if name not in r]
        if missing:
            raise ValueError(f"aggregates: row {missing[0] + 1} has no {name!r}")
    strings = {c: pl.String() for c in AGGREGATE_SCHEMA}
    try:
        raw = pl.DataFrame(
            [{c: _text(r[c]) for c in AGGREGATE_SCHEMA} for r in records], schema=strings
        )
        return raw.select(
            pl.col(c).str.to_date("%Y-%m-%d") if t == pl.Date() else pl.col(c).cast(t, strict=True)
            for c, t in AGGREGATE_SCHEMA.items()
        )
    except (pl.exceptions.PolarsError, TypeError) as exc:
        raise ValueError(f"aggregates: a value of the wrong type ({exc})") from exc


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is not a number or a text")
    return str(value)


# -- the network's side --------------------------------------------------------------------


def site_notes(
    sites: Sequence[str], aggregates: Mapping[str, pl.DataFrame], lang: str = "fr"
) -> list[str]:
    """Data-quality lines of the network report: the sites without numbers for the week, and
    those whose report lacks days it could not retrieve."""
    notes = []
    absent = [s for s in sites if s not in aggregates]
    if absent:
        notes.append(i18n.text("network_missing_sites", lang, sites=", ".join(absent)))
    for site in sites:
        frame = aggregates.get(site)
        missing = frame["missing_days"].max() if frame is not None and frame.height else None
        if isinstance(missing, int) and missing > 0:
            notes.append(i18n.text("network_missing_days", lang, site=site, n=missing))
    return notes


def _ordered_types(types: Sequence[str]) -> list[str]:
    rank = {"PET/CT": 0, "PET": 1, "SPECT/CT": 2, "NM": 3}
    return sorted(set(types), key=lambda t: (rank.get(t, 9), t))


def network_table(aggregates: pl.DataFrame, sites: Sequence[str]) -> pl.DataFrame:
    """Per period and machine type: each site's machines (in ``sites`` order, as published),
    then the network's total (``NETWORK_SCHEMA``).

    Totals: exams, slots, gaps, retakes and previous exams summed; utilisation = summed exams
    / summed slots; no-shows summed when every machine knows them, else null; the change when
    every machine has one (a period before with slots); no median.
    """
    rows = aggregates.filter(pl.col("kind") == PERIOD)
    if rows.height == 0:
        return pl.DataFrame(schema=NETWORK_SCHEMA)
    rank = {s: i for i, s in enumerate(sites)}
    rows = rows.with_row_index("_order").with_columns(
        _site=pl.col("site").replace_strict(rank, default=len(rank), return_dtype=pl.Int64())
    )
    period_order = rows.group_by("period").agg(pl.col("_order").min()).sort("_order")["period"]
    out: list[pl.DataFrame] = []
    util = pl.when(pl.col("slots") > 0).then(100 * pl.col("exams") / pl.col("slots"))
    for period in period_order.to_list():
        mine = rows.filter(pl.col("period") == period)
        label = mine["period_label"][0]
        for mtype in _ordered_types(mine["machine_type"].to_list()):
            part = mine.filter(pl.col("machine_type") == mtype).sort("_site", "_order")
            machines = part.select(
                "period",
                pl.lit(label).alias("period_label"),
                "machine_type",
                pl.lit("machine").alias("row"),
                "site",
                "machine",
                "first_day",
                "last_day",
                "exams",
                "slots",
                util.alias("utilisation_pct"),
                "gaps",
                "median_duration_s",
                "retakes",
                "no_shows",
                "previous_exams",
                "change_pct",
            )
            previous = int(part["previous_exams"].fill_null(0).sum())
            exams = int(part["exams"].sum())
            all_changes = part["change_pct"].null_count() == 0 and previous > 0
            total = pl.DataFrame(
                {
                    "period": [period],
                    "period_label": [label],
                    "machine_type": [mtype],
                    "row": [NETWORK],
                    "site": [NETWORK],
                    "machine": [None],
                    "first_day": [part["first_day"].min()],
                    "last_day": [part["last_day"].max()],
                    "exams": [exams],
                    "slots": [int(part["slots"].sum())],
                    "utilisation_pct": [None],
                    "gaps": [int(part["gaps"].fill_null(0).sum())],
                    "median_duration_s": [None],
                    "retakes": [int(part["retakes"].fill_null(0).sum())],
                    "no_shows": [
                        int(part["no_shows"].sum()) if part["no_shows"].null_count() == 0 else None
                    ],
                    "previous_exams": [previous if part["previous_exams"].count() else None],
                    "change_pct": [overview.change_pct(exams, previous) if all_changes else None],
                },
                schema=NETWORK_SCHEMA,
            ).with_columns(util.alias("utilisation_pct"))
            out += [machines.cast(NETWORK_SCHEMA), total]  # type: ignore[arg-type]
    return pl.concat(out).select(list(NETWORK_SCHEMA))


def network_trend(aggregates: pl.DataFrame, sites: Sequence[str]) -> pl.DataFrame:
    """Per machine type and week: each site's exams, slots and utilisation (its machines of
    that type together) and the network's (``site`` = ``network``), ``TREND_SCHEMA``."""
    weeks = aggregates.filter(pl.col("kind") == WEEK).with_columns(
        monday=pl.col("period").str.to_date("%Y-%m-%d")
    )
    if weeks.height == 0:
        return pl.DataFrame(schema=TREND_SCHEMA)
    by_site = weeks.group_by("machine_type", "site", "monday").agg(
        pl.col("exams").sum(), pl.col("slots").sum()
    )
    total = (
        by_site.group_by("machine_type", "monday")
        .agg(pl.col("exams").sum(), pl.col("slots").sum())
        .with_columns(site=pl.lit(NETWORK))
    )
    rank = {s: i for i, s in enumerate([*sites, NETWORK])}
    types = {t: i for i, t in enumerate(_ordered_types(by_site["machine_type"].to_list()))}
    return (
        pl.concat([by_site, total.select(by_site.columns)])
        .with_columns(
            utilisation_pct=pl.when(pl.col("slots") > 0).then(
                100 * pl.col("exams") / pl.col("slots")
            ),
            _t=pl.col("machine_type").replace_strict(types, return_dtype=pl.Int64()),
            _s=pl.col("site").replace_strict(rank, default=len(rank), return_dtype=pl.Int64()),
        )
        .sort("_t", "_s", "monday")
        .select(list(TREND_SCHEMA))
        .cast(TREND_SCHEMA)  # type: ignore[arg-type]
    )


__all__ = [
    "AGGREGATE_SCHEMA",
    "NETWORK",
    "NETWORK_SCHEMA",
    "PERIOD",
    "TREND_SCHEMA",
    "WEEK",
    "from_records",
    "machine_type_of",
    "machine_types",
    "network_table",
    "network_trend",
    "site_aggregates",
    "site_notes",
    "to_records",
]
