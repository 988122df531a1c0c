"""Planned slots outlined in the schedule of weekly and 2-weekly pages (a worklist configured):
performed ones dotted, no-shows dashed in red, "no plan" on business days without one."""

from __future__ import annotations

from typing import Any

import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core import planmatch as pm
from pyschedvisu_core.figures.axes import _hours, day_positions
from pyschedvisu_core.figures.schedule_grid import _hover_points, _rect_paths
from pyschedvisu_core.figures.spec import (
    BOX_HALF,
    BOX_SHIFT,
    NO_SHOW_SLOT,
    PLANNED_SLOT,
    PagePlan,
    PageSpec,
)
from pyschedvisu_core.figures.style import Trace, _scatter, typed_array


def _slot_rows(plan: PagePlan, spec: PageSpec) -> pl.DataFrame:
    """Planned slots (performed or not) on the page's plan days, with their drawn end: the
    scheduled end, else the study's duration after the scheduled start, else 30 minutes."""
    days = [d for d in spec.days if d in plan.days]
    actual = pl.col("actual_end") - pl.col("actual_start")
    planned = pl.duration(microseconds=(pl.col("scheduled_duration_s") * 1e6).cast(pl.Int64))
    end = pl.coalesce(
        pl.col("scheduled_start") + planned,
        pl.col("scheduled_start") + actual,
        pl.col("scheduled_start") + pl.duration(minutes=30),
    )
    return (
        plan.matches.filter(
            pl.col("date").is_in(days)
            & pl.col("status").is_in([pm.PERFORMED, pm.NO_SHOW])
            & pl.col("scheduled_start").is_not_null()
        )
        .with_columns(end.alias("scheduled_end"))
        .sort("date", "scheduled_start")
    )


def plan_hours(plan: PagePlan, spec: PageSpec) -> tuple[float, float] | None:
    """Earliest start and latest end (hours of the day) of the page's planned slots."""
    slots = _slot_rows(plan, spec)
    if slots.height == 0:
        return None
    hours = slots.select(
        lo=(pl.col("scheduled_start") - pl.col("date").cast(pl.Datetime("us"))).min(),
        hi=(pl.col("scheduled_end") - pl.col("date").cast(pl.Datetime("us"))).max(),
    ).row(0)
    return hours[0].total_seconds() / 3600, hours[1].total_seconds() / 3600


def plan_outline_traces(
    plan: PagePlan, spec: PageSpec, spacer: float, top: float
) -> tuple[list[Trace], list[dict[str, Any]]]:
    """Planned slots as thin outlines behind the studies (a no-show's in red dashes), their
    hover texts (no patient data), and "no plan" written at the top of each business day
    without a plan."""
    lang = spec.language
    positions = dict(zip(spec.days, day_positions(spec.days, spacer), strict=True))
    slots = _slot_rows(plan, spec).with_columns(
        pl.col("date").replace_strict(positions, return_dtype=pl.Float64()).alias("xc"),
        _hours("scheduled_start").alias("ys"),
        _hours("scheduled_end").alias("ye"),
    )
    half = BOX_HALF + BOX_SHIFT + 0.03
    traces: list[Trace] = []
    for status, color, dash, key in (
        (pm.PERFORMED, PLANNED_SLOT, "dot", "planned_slot"),
        (pm.NO_SHOW, NO_SHOW_SLOT, "dash", "no_show_slot"),
    ):
        part = slots.filter(pl.col("status") == status)
        if part.height == 0:
            continue
        xs, ys = _rect_paths(part, half, "ys", "ye")
        traces.append(
            _scatter(
                x=typed_array(xs),
                y=typed_array(ys),
                mode="lines",
                line={"color": color, "width": 1.0, "dash": dash},
                name=i18n.text(key, lang),
                legendgroup="plan-" + status,
                showlegend=True,
                hoverinfo="skip",
                xaxis="x",
                yaxis="y",
                meta="plan-" + status,
            )
        )
    if slots.height:
        texts = []
        for r in slots.iter_rows(named=True):
            if r["status"] == pm.PERFORMED:
                state = i18n.text(
                    "hover_plan_performed",
                    lang,
                    actual=r["actual_start"].strftime("%H:%M"),
                    delay=i18n.fmt_delay(r["delay_s"]),
                )
            else:
                state = i18n.text("hover_plan_no_show", lang)
            texts.append(
                i18n.text(
                    "hover_plan",
                    lang,
                    start=r["scheduled_start"].strftime("%H:%M"),
                    end=r["scheduled_end"].strftime("%H:%M"),
                    description=i18n.description_label(str(r["description"] or ""), lang),
                    status=state,
                )
            )
        traces.append(
            _hover_points(slots["xc"] + half, (slots["ys"] + slots["ye"]) / 2, texts, size=7)
        )
    notes = [
        {
            "xref": "x",
            "yref": "y",
            "x": positions[d],
            "y": top,
            "text": f"<i>{i18n.text('no_plan', lang)}</i>",
            "showarrow": False,
            "yanchor": "top",
            "font": {"size": 8, "color": NO_SHOW_SLOT},
            "name": "no-plan",
        }
        for d in spec.days
        if d not in plan.days
    ]
    return traces, notes
