"""What happened in a run, told without patient data: per-day outcomes, data quality, the week.

Plain values and frames in, plain rows and text out: the flows' artifacts and the CLI tables
are built from these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pyschedvisu_core.dropped import day_status
from pyschedvisu_core.labels import minify_machine_expr
from pyschedvisu_core.schedule import daily_counts, find_gaps


@dataclass
class DayOutcome:
    """What happened to one day in a run: the retrieval summary, or why it failed."""

    day: dt.date
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _reasons_text(reasons: Any) -> str:
    if not reasons:
        return ""
    if isinstance(reasons, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: str(kv[0])))
    if isinstance(reasons, str):
        return reasons
    if isinstance(reasons, Iterable):
        return ", ".join(str(r) for r in reasons)
    return str(reasons)


def _names_text(summary: Mapping[str, Any], top: int = 3) -> str:
    """The institutions a day's studies were excluded for, most studies first."""
    names = (summary.get("dropped") or {}).get("institutions") or {}
    ranked = sorted(names.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    text = ", ".join(f"{k} ({v})" for k, v in ranked[:top])
    return text + (f", … {len(ranked) - top} more" if len(ranked) > top else "")


def quality_rows(outcomes: Iterable[DayOutcome]) -> list[dict[str, Any]]:
    """One row per day for the data-quality table artifact (counts only, no patient data).

    ``status``: ``FAILED`` (not retrieved), ``ok``, or a warning of
    :mod:`pyschedvisu_core.dropped` (a business day with no study found, or none kept);
    ``institutions not accepted``: the names the day's excluded studies carried.
    """
    rows = []
    for o in sorted(outcomes, key=lambda o: o.day):
        s = o.summary
        rows.append(
            {
                "day": o.day.isoformat(),
                "status": day_status(s) if o.ok else "FAILED",
                "studies": s.get("studies") if o.ok else None,
                "series kept": s.get("series") if o.ok else None,
                "excluded": s.get("excluded") if o.ok else None,
                "failed series": s.get("failed") if o.ok else None,
                "reasons": _reasons_text(s.get("reasons")) if o.ok else o.error,
                "method": s.get("method", "") if o.ok else "",
                "from cache": bool(s.get("from_cache", False)) if o.ok else False,
                "institutions not accepted": _names_text(s) if o.ok else "",
            }
        )
    return rows


def missing_days(outcomes: Iterable[DayOutcome]) -> list[dt.date]:
    """Days that could not be retrieved, sorted."""
    return sorted(o.day for o in outcomes if not o.ok)


def rows_worth_showing(rows: list[dict[str, Any]], keep_from: dt.date) -> list[dict[str, Any]]:
    """Rows of the report week, plus any day fetched in this run or failed (cache hits elsewhere
    are noise: a warning of a day read back from the store was told when it was fetched)."""
    first = keep_from.isoformat()
    return [r for r in rows if r["day"] >= first or r["status"] == "FAILED" or not r["from cache"]]


@dataclass(frozen=True)
class MachinePlan:
    """What the week summary needs of one machine's configuration (plain values)."""

    name: str
    slots: Sequence[int]
    gap_minutes: int
    service: tuple[dt.date | None, dt.date | None] = (None, None)


def week_summary(
    studies: pl.DataFrame,
    days: list[dt.date],
    machines: Mapping[str, MachinePlan],
    retrieved: Collection[dt.date] = (),
) -> list[dict[str, Any]]:
    """Per display machine over ``days``: studies, slots, utilisation %, gaps (count, hours).

    ``studies`` is a frame of ``schema.STUDY_SCHEMA``; ``machines`` maps the minified machine
    key to its :class:`MachinePlan`. Same rules as the report's count table
    (``schedule.find_gaps`` / ``daily_counts``): a day counts its slots when it has studies,
    or when it is ``retrieved`` (final in the store) inside the machine's service window.
    """
    frame = studies.filter(pl.col("date").is_in(days)).with_columns(
        _key=minify_machine_expr(pl.col("machine"))
    )
    out = []
    for key, plan in machines.items():
        name = plan.name
        mine = frame.filter(pl.col("_key") == key)
        gaps = find_gaps(mine, plan.gap_minutes)
        daily = daily_counts(mine, gaps, days, plan.slots, retrieved, plan.service)
        n_slots = int(daily["slots"].sum())
        out.append(
            {
                "machine": name,
                "studies": mine.height,
                "slots": n_slots,
                "utilisation_pct": round(100.0 * mine.height / n_slots, 1) if n_slots else None,
                "gaps": gaps.height,
                "gap_hours": round(float(gaps["duration_s"].sum() or 0) / 3600.0, 1),
            }
        )
    return out


def week_markdown(end: dt.date, rows: list[dict[str, Any]], missing: list[dt.date]) -> str:
    """Markdown artifact: one line per machine for the report week (counts only)."""
    lines = [
        f"# Week ending {end.isoformat()} (ISO week {end.isocalendar().week})",
        "",
        "| machine | studies | slots | utilisation | gaps | gap time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        util = "–" if r["utilisation_pct"] is None else f"{r['utilisation_pct']:.1f} %"
        lines.append(
            f"| {r['machine']} | {r['studies']} | {r['slots']} | {util} | {r['gaps']} | {r['gap_hours']:.1f} h |"
        )
    if missing:
        lines += [
            "",
            f"**Missing days** (not retrieved): {', '.join(d.isoformat() for d in missing)}",
        ]
    return "\n".join(lines) + "\n"
