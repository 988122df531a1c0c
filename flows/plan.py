"""Pure planning helpers of the flows: which end date, which days, what to tell about them.

No Prefect import and no I/O: plain functions of plain values and frames, tested on their own.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from pyschedvisu_core.calendar import auto_report_end
from pyschedvisu_core.periods import period_bounds
from pyschedvisu_core.schedule import daily_counts, find_gaps

#: The department's clock: the cron and the automatic end date are in this zone.
TIMEZONE = "Europe/Zurich"


def report_end(scheduled: dt.datetime, cutoff_hour: int, tz: str = TIMEZONE) -> dt.date:
    """Automatic end date (DOMAIN §1) for a run *scheduled* at ``scheduled`` (aware datetime)."""
    if scheduled.tzinfo is None:
        raise ValueError("scheduled time must be timezone-aware")
    local = dt.datetime.fromtimestamp(scheduled.timestamp(), tz=ZoneInfo(tz))
    return auto_report_end(local, cutoff_hour)


def first_needed_day(
    end: dt.date, periods: Iterable[tuple[int | None, str | None]], year_start: int
) -> dt.date:
    """Jan 1 of the first year any of ``periods`` (``(weeks, anchor)`` pairs) reaches back to."""
    starts = [period_bounds(end, weeks=w, anchor=a, year_start=year_start)[0] for w, a in periods]
    first = min(starts, default=period_bounds(end, weeks=1)[0])
    return dt.date(first.year, 1, 1)


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


def quality_rows(outcomes: Iterable[DayOutcome]) -> list[dict[str, Any]]:
    """One row per day for the data-quality table artifact (counts only, no patient data)."""
    rows = []
    for o in sorted(outcomes, key=lambda o: o.day):
        s = o.summary
        rows.append(
            {
                "day": o.day.isoformat(),
                "status": "ok" if o.ok else "FAILED",
                "studies": s.get("studies") if o.ok else None,
                "series kept": s.get("series") if o.ok else None,
                "excluded": s.get("excluded") if o.ok else None,
                "failed series": s.get("failed") if o.ok else None,
                "reasons": _reasons_text(s.get("reasons")) if o.ok else o.error,
                "method": s.get("method", "") if o.ok else "",
                "from cache": bool(s.get("from_cache", False)) if o.ok else False,
            }
        )
    return rows


def missing_days(outcomes: Iterable[DayOutcome]) -> list[dt.date]:
    """Days that could not be retrieved, sorted."""
    return sorted(o.day for o in outcomes if not o.ok)


def missing_days_note(days: list[dt.date], language: str = "fr") -> str | None:
    """The data-quality note printed in the report and the e-mail, or None when complete."""
    if not days:
        return None
    listed = ", ".join(d.strftime("%d/%m/%Y") for d in days)
    if language == "fr":
        return f"Données incomplètes : {len(days)} jour(s) n'ont pas pu être lus au PACS ({listed}) ; leurs examens manquent dans ce rapport."
    return f"Incomplete data: {len(days)} day(s) could not be read from the PACS ({listed}); their studies are missing from this report."


def rows_worth_showing(rows: list[dict[str, Any]], keep_from: dt.date) -> list[dict[str, Any]]:
    """Rows of the report week, plus any day fetched in this run or failed (cache hits elsewhere are noise)."""
    first = keep_from.isoformat()
    return [r for r in rows if r["day"] >= first or r["status"] != "ok" or not r["from cache"]]


def week_summary(
    studies: pl.DataFrame,
    days: list[dt.date],
    machines: Mapping[str, tuple[str, list[int], int]],
) -> list[dict[str, Any]]:
    """Per display machine over ``days``: studies, slots, utilisation %, gaps (count, hours).

    ``studies`` is a frame of ``schema.STUDY_SCHEMA``; ``machines`` maps the minified machine
    key to ``(display name, slots Mon..Fri, gap minutes)``. Same rules as the report's count
    table (``schedule.find_gaps`` / ``daily_counts``): slots count only on days with data.
    """
    frame = studies.filter(pl.col("date").is_in(days)).with_columns(
        _key=pl.col("machine").str.replace_all(r"[\s_]+", "").str.to_lowercase()
    )
    out = []
    for key, (name, slots, gap_minutes) in machines.items():
        mine = frame.filter(pl.col("_key") == key)
        gaps = find_gaps(mine, gap_minutes)
        daily = daily_counts(mine, gaps, days, slots)
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


@dataclass
class PhaseClock:
    """Wall time of the named phases of a run (seconds, in order), for logs and the benchmark."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)

    def text(self) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())
