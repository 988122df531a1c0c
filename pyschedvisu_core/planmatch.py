"""Planned against performed (DOMAIN §7): worklist steps matched to the studies of the study
table, and the numbers a report shows of them. Pure polars.

:func:`match_plan` matches, day by day, each planned step (``worklist.PLANNED_SCHEMA``) to at
most one study take 1 (``schema.STUDY_SCHEMA``), and each study to at most one step, by three
rules in turn, each on what the previous left over:

1. ``uid``: the step's pre-assigned Study Instance UID is the study's;
2. ``accession``: the step's accession number is the study's;
3. ``patient``: same patient key, same machine, and the study started within ``window_s`` of
   the step's scheduled start.

Within a rule, several candidates are settled by the nearest start: pairs are taken in order
of ``|actual start − scheduled start|`` (then step and study keys), each step and study
once, which is what a greedy assignment does. Later takes of a study (retakes) are never
matched on their own: they count as ``retakes`` of their take 1's row, planned or not.

Output (:data:`PLAN_MATCH_SCHEMA`), one row per planned step (``performed`` or ``no_show``)
and per study take 1 that no step matched on a day and machine with a plan (``unplanned``).
A day without a plan for a machine has no row: "no plan" is not "no shows".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Final

import polars as pl

from pyschedvisu_core import schedule as sch
from pyschedvisu_core.labels import (
    OTHER,
    label_expr,
    minify_description,
    minify_machine_expr,
)
from pyschedvisu_core.schema import DT
from pyschedvisu_core.worklist import PLANNED_SCHEMA

PERFORMED: Final = "performed"
NO_SHOW: Final = "no_show"
UNPLANNED: Final = "unplanned"
STATUSES: Final = (PERFORMED, NO_SHOW, UNPLANNED)
#: The rules, in the order they are applied.
RULES: Final = ("uid", "accession", "patient")
#: Default of ``worklist.match_window_minutes``.
WINDOW_S: Final = 3 * 3600
#: Label of the totals row of :func:`plan_table`.
TOTAL: Final = "TOTAL"

#: ``<data_dir>/plan_matches.parquet``.
PLAN_MATCH_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "machine": pl.String(),  # the step's (planned) machine; the study's for unplanned rows
    "status": pl.String(),  # performed | no_show | unplanned
    "study_key": pl.String(),  # the matched take 1; null for a no-show
    "accession_number": pl.String(),  # the step's; the study's for unplanned rows
    "scheduled_start": DT,  # as last seen
    "actual_start": DT,  # the study's (take 1)
    "actual_end": DT,
    "delay_s": pl.Float64(),  # actual − scheduled start; negative: started early
    "scheduled_duration_s": pl.Float64(),  # scheduled end − start, when the worklist gives it
    "overrun_s": pl.Float64(),  # actual duration − scheduled duration
    "scheduled_description": pl.String(),  # as the RIS wrote it
    "description": pl.String(),  # our label (the study's; a no-show's from its description)
    "step_key": pl.String(),  # worklist.step_key; null for unplanned rows
    "match": pl.String(),  # uid | accession | patient; null unless performed
    "retakes": pl.Int32(),  # later takes of the matched study
    "added_same_day": pl.Boolean(),  # booked on the day itself (null for unplanned rows)
    "rescheduled": pl.Boolean(),
    "first_scheduled_start": DT,
}
#: Which machines had a plan on which days (``date``, ``machine``).
COVERAGE_SCHEMA: dict[str, pl.DataType] = {"date": pl.Date(), "machine": pl.String()}

#: One row of :func:`plan_table` (per description, then the total).
PLAN_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "label": pl.String(),
    "planned": pl.Int64(),
    "performed": pl.Int64(),
    "no_shows": pl.Int64(),
    "unplanned": pl.Int64(),
    "added_same_day": pl.Int64(),
    "realised_pct": pl.Float64(),  # performed / planned
    "util_plan_pct": pl.Float64(),  # (performed + unplanned) / planned: exams against the plan
    "delay_median_s": pl.Float64(),
    "delay_p90_s": pl.Float64(),
}


def latest_plan(planned: pl.DataFrame) -> pl.DataFrame:
    """One row per step: a step seen on several days (moved to another day) counts on the
    day whose snapshots saw it last, not as a no-show on the others."""
    if planned.height == 0:
        return planned
    return planned.sort("last_seen", "date", nulls_last=False).unique(
        "step_key", keep="last", maintain_order=False
    )


def _us(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds()


def _seconds(expr: pl.Expr) -> pl.Expr:
    return expr.dt.total_microseconds().cast(pl.Float64) / 1e6


def assign_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """The greedy one-to-one assignment of candidate ``pairs`` (``_step``, ``_study``,
    ``_cost``): pairs in order of cost (then step, then study), each step and study once.

    Computed by rounds: every pair that is the best of both its step and its study is taken
    (the greedy takes it too: no earlier pair touches either), and the rest goes on.
    """
    chosen: list[pl.DataFrame] = []
    rest = pairs.select("_step", "_study", "_cost")
    while rest.height:
        ordered = rest.sort("_cost", "_step", "_study")
        by_step = ordered.unique("_step", keep="first", maintain_order=True)
        by_study = ordered.unique("_study", keep="first", maintain_order=True)
        mutual = by_step.join(by_study, on=["_step", "_study", "_cost"], how="inner")
        chosen.append(mutual.select("_step", "_study"))
        rest = rest.filter(
            ~pl.col("_step").is_in(mutual["_step"].implode())
            & ~pl.col("_study").is_in(mutual["_study"].implode())
        )
    if not chosen:
        return pl.DataFrame(schema={"_step": pl.UInt32(), "_study": pl.UInt32()})
    return pl.concat(chosen)


def _no_show_labels(
    frame: pl.DataFrame, labels: Mapping[str, Mapping[str, Sequence[str]]] | None
) -> pl.Expr:
    if not labels:
        return pl.lit(OTHER)
    return label_expr(
        minify_machine_expr(pl.col("machine")),
        minify_description(pl.col("scheduled_description").fill_null("")),
        labels,
    )


def match_plan(
    planned: pl.DataFrame,
    studies: pl.DataFrame,
    coverage: pl.DataFrame,
    *,
    window_s: float = WINDOW_S,
    labels: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> pl.DataFrame:
    """Planned steps against the study table (see the module docstring).

    ``planned``: steps of every day with a plan (``worklist.PLANNED_SCHEMA``); ``studies``:
    the study table; ``coverage``: the (date, machine) pairs that had a plan (a snapshot
    that succeeded), those without any step included; ``labels``: the config's description
    patterns (display machine key -> label -> patterns), to label a no-show from its
    scheduled description. Returns :data:`PLAN_MATCH_SCHEMA`, sorted by date, machine, time.
    """
    steps = latest_plan(planned.select(list(PLANNED_SCHEMA))).with_row_index("_step")
    cover = coverage.select(list(COVERAGE_SCHEMA)).cast(COVERAGE_SCHEMA).unique()  # type: ignore[arg-type]
    plan_dates = cover["date"].unique().implode()
    takes = studies.filter(pl.col("date").is_in(plan_dates))
    firsts = takes.filter(pl.col("take") <= 1).with_row_index("_study")
    retakes = (
        takes.filter(pl.col("take") > 1)
        .group_by("date", "study_uid")
        .agg(pl.len().cast(pl.Int32).alias("retakes"))
    )
    cost = (_us(pl.col("start") - pl.col("scheduled_start"))).abs().alias("_cost")
    matched: list[pl.DataFrame] = []
    step_cols = ["_step", "date", "machine", "scheduled_start", "study_uid", "accession_number"]
    step_cols.append("patient_key")
    study_cols = ["_study", "date", "machine", "start", "study_uid", "accession_number"]
    study_cols.append("patient_key")
    left_steps = steps.select(step_cols)
    left_studies = firsts.select(study_cols)
    for rule in RULES:
        if rule == "uid":
            on = ["date", "study_uid"]
        elif rule == "accession":
            on = ["date", "accession_number"]
        else:
            on = ["date", "machine", "patient_key"]
        pairs = (
            left_steps.filter(pl.col(on[-1]).is_not_null())
            .join(left_studies.filter(pl.col(on[-1]).is_not_null()), on=on, how="inner")
            .with_columns(cost)
        )
        if rule == "patient":
            pairs = pairs.filter(pl.col("_cost") <= int(window_s * 1e6))
        got = assign_pairs(pairs).with_columns(pl.lit(rule).alias("match"))
        matched.append(got)
        left_steps = left_steps.filter(~pl.col("_step").is_in(got["_step"].implode()))
        left_studies = left_studies.filter(~pl.col("_study").is_in(got["_study"].implode()))
    pairs = pl.concat(matched)

    study_part = firsts.select(
        "_study",
        pl.col("date").alias("_sdate"),
        pl.col("machine").alias("_smachine"),
        "study_key",
        "study_uid",
        pl.col("accession_number").alias("_sacc"),
        pl.col("start").alias("actual_start"),
        pl.col("end").alias("actual_end"),
        pl.col("description").alias("_sdesc"),
    )
    planned_rows = (
        steps.join(pairs, on="_step", how="left")
        .join(study_part, on="_study", how="left")
        .with_columns(
            pl.when(pl.col("_study").is_not_null())
            .then(pl.lit(PERFORMED))
            .otherwise(pl.lit(NO_SHOW))
            .alias("status"),
        )
    )
    # a no-show's label from its scheduled description: the regexes run once per distinct
    # (machine, description), not once per step (ten years: 0.65 s -> 0.01 s)
    named = ["machine", "scheduled_description"]
    no_show_labels = (
        planned_rows.filter(pl.col("_study").is_null())
        .select(named)
        .unique()
        .pipe(lambda f: f.with_columns(_no_show_labels(f, labels).alias("_nlabel")))
    )
    planned_rows = planned_rows.join(
        no_show_labels, on=named, how="left", nulls_equal=True
    ).with_columns(
        pl.coalesce(pl.col("_sdesc"), pl.col("_nlabel")).alias("description"),
        pl.col("date").alias("_rdate"),
        pl.col("study_uid_right").alias("_ruid"),  # the matched study's (retakes)
    )
    unplanned = (
        firsts.filter(~pl.col("_study").is_in(pairs["_study"].implode()))
        .join(cover, on=["date", "machine"], how="semi")
        .select(
            "date",
            "machine",
            pl.lit(UNPLANNED).alias("status"),
            "study_key",
            "accession_number",
            pl.lit(None, dtype=DT).alias("scheduled_start"),
            pl.col("start").alias("actual_start"),
            pl.col("end").alias("actual_end"),
            pl.lit(None, dtype=pl.Float64()).alias("scheduled_duration_s"),
            pl.lit(None, dtype=pl.String()).alias("scheduled_description"),
            "description",
            pl.lit(None, dtype=pl.String()).alias("step_key"),
            pl.lit(None, dtype=pl.String()).alias("match"),
            pl.lit(None, dtype=pl.Boolean()).alias("added_same_day"),
            pl.lit(None, dtype=pl.Boolean()).alias("rescheduled"),
            pl.lit(None, dtype=DT).alias("first_scheduled_start"),
            pl.col("date").alias("_rdate"),
            pl.col("study_uid").alias("_ruid"),
        )
    )
    performed_or_not = planned_rows.select(
        "date",
        "machine",
        "status",
        "study_key",
        "accession_number",
        "scheduled_start",
        "actual_start",
        "actual_end",
        "scheduled_duration_s",
        "scheduled_description",
        "description",
        "step_key",
        "match",
        "added_same_day",
        "rescheduled",
        "first_scheduled_start",
        "_rdate",
        "_ruid",
    )
    rows = pl.concat([performed_or_not, unplanned], how="vertical_relaxed")
    rows = rows.join(
        retakes.rename({"date": "_rdate", "study_uid": "_ruid"}),
        on=["_rdate", "_ruid"],
        how="left",
    )
    actual = pl.col("actual_end") - pl.col("actual_start")
    out = rows.with_columns(
        _seconds(pl.col("actual_start") - pl.col("scheduled_start")).alias("delay_s"),
        (_seconds(actual) - pl.col("scheduled_duration_s")).alias("overrun_s"),
        pl.when(pl.col("study_key").is_not_null())
        .then(pl.col("retakes").fill_null(0))
        .otherwise(pl.lit(None, dtype=pl.Int32()))
        .alias("retakes"),
    )
    order = pl.coalesce("scheduled_start", "actual_start")
    return (
        out.with_columns(order.alias("_t"))
        .sort("date", "machine", "_t", "step_key", "study_key", nulls_last=True)
        .select(list(PLAN_MATCH_SCHEMA))
        .cast(PLAN_MATCH_SCHEMA)  # type: ignore[arg-type]
    )


def empty_matches() -> pl.DataFrame:
    """A plan-match frame without rows."""
    return pl.DataFrame(schema=PLAN_MATCH_SCHEMA)


# -- the report's numbers -------------------------------------------------------------------


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(100 * num / den).otherwise(None)


def _table_aggs() -> list[pl.Expr]:
    status = pl.col("status")
    planned = status.is_in([PERFORMED, NO_SHOW]).sum().cast(pl.Int64)
    performed = (status == PERFORMED).sum().cast(pl.Int64)
    no_show = (status == NO_SHOW).sum().cast(pl.Int64)
    unplanned = (status == UNPLANNED).sum().cast(pl.Int64)
    delays = pl.col("delay_s").filter(status == PERFORMED)
    return [
        planned.alias("planned"),
        performed.alias("performed"),
        no_show.alias("no_shows"),
        unplanned.alias("unplanned"),
        (pl.col("added_same_day").fill_null(False) & status.is_in([PERFORMED, NO_SHOW]))
        .sum()
        .cast(pl.Int64)
        .alias("added_same_day"),
        delays.median().alias("delay_median_s"),
        delays.quantile(0.9, "linear").alias("delay_p90_s"),
    ]


def plan_table(
    matches: pl.DataFrame, order: Sequence[str], days: Collection[dt.date] | None = None
) -> pl.DataFrame:
    """Per description (the machine's ``order``, unknown after, OTHER last), then ``TOTAL``:
    planned, performed, no-shows, unplanned, added the same day, % realised (performed /
    planned), utilisation against the plan ((performed + unplanned) / planned) and the
    median and 90th percentile of the start delays of performed steps.

    ``matches``: :func:`match_plan` rows of one machine; ``days``: only these (all when None).
    """
    f = matches if days is None else matches.filter(pl.col("date").is_in(list(days)))
    if f.height == 0:
        return pl.DataFrame(schema=PLAN_TABLE_SCHEMA)
    per = f.group_by(pl.col("description").fill_null(OTHER).alias("label")).agg(_table_aggs())
    labels = sch.label_order(order, per["label"].to_list())
    rank = {lab: i for i, lab in enumerate(labels)}
    per = per.with_columns(
        pl.col("label").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_r")
    ).sort("_r", "label")
    total = f.select(pl.lit(TOTAL).alias("label"), *_table_aggs())
    table = pl.concat([per.drop("_r"), total], how="vertical_relaxed")
    return (
        table.with_columns(
            _ratio(pl.col("performed"), pl.col("planned")).alias("realised_pct"),
            _ratio(pl.col("performed") + pl.col("unplanned"), pl.col("planned")).alias(
                "util_plan_pct"
            ),
        )
        .select(list(PLAN_TABLE_SCHEMA))
        .cast(PLAN_TABLE_SCHEMA)  # type: ignore[arg-type]
    )


def plan_days(coverage: pl.DataFrame, machine: str, days: Collection[dt.date]) -> list[dt.date]:
    """The ``days`` on which ``machine`` had a plan, sorted."""
    wanted = set(days)
    got = coverage.filter(pl.col("machine") == machine)["date"].to_list()
    return sorted(d for d in set(got) if d in wanted)
