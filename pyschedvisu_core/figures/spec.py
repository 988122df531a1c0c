"""What one page is: its size and drawing thresholds, its :class:`PageSpec` (plain values
from the configuration), its plan, and the numbers its figure, the workbook and the summary
share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from pyschedvisu_core import planmatch as pm
from pyschedvisu_core import schedule as sch
from pyschedvisu_core import uptake as upt
from pyschedvisu_core.periods import bin_kind

#: Page size: A4 portrait at 96 dpi (kaleido turns px into PDF points at that ratio).
PAGE_WIDTH = 794
PAGE_HEIGHT = 1123
#: Above this many business days boxes are drawn by their edge only.
EDGE_ONLY_DAYS = 45
#: Above this many business days studies are drawn as an occupancy map (boxes < 1 px wide).
SEGMENT_DAYS = 252
#: Columns of the occupancy map drawn instead of boxes above SEGMENT_DAYS.
OCCUPANCY_COLUMNS = 300
#: Gap lines are drawn for periods up to ~6 months of business days.
GAP_LINES_MAX_DAYS = 126
#: The time-of-day distribution is shown from this many business days on.
DISTRIBUTION_MIN_DAYS = 84
#: Vertical domain (paper) of the schedule.
SCHEDULE_Y = (0.575, 0.905)
#: Half width of a box and the alternating left/right shift, in day units.
BOX_HALF = 0.34
BOX_SHIFT = 0.08
#: Width of the spacer after each week, in day units (none on yearly-tick pages).
WEEK_SPACER = 1.0
#: Trace ``meta`` of traces that only serve the interactive HTML (dropped for print).
HOVER_META = "hover"
#: Background of day columns by status (DOMAIN §4): retrieved without a study, not retrieved,
#: outside the service window. Pale, far from every description colour.
STATUS_FILLS = {
    sch.NO_ACTIVITY: "#fdf0d5",
    sch.NO_DATA: "#e4e8ec",
    sch.OUT_OF_SERVICE: "#f1f1f1",
}
#: Longest list of days printed in a data-quality note (the rest are counted).
NOTE_MAX_DAYS = 12
#: Planned slots are outlined in the schedule of pages up to this many business days
#: (weekly and 2-weekly pages).
PLAN_OUTLINE_DAYS = 10
#: Height (paper) of one row of the planned / performed table.
PLAN_ROW_H = 0.0118
#: Outline colours of a planned slot and of a no-show's slot.
PLANNED_SLOT = "#5b6770"
NO_SHOW_SLOT = "#b03a2e"


@dataclass(frozen=True)
class PageSpec:
    """Plain values describing one page (taken from the configuration by the shell)."""

    machine: str
    period_label: str
    start: dt.date
    end: dt.date
    days: tuple[dt.date, ...]
    description_order: tuple[str, ...]
    colors: tuple[str, ...]
    slots_per_weekday: tuple[int, ...]
    gap_minutes: int
    prep_minutes: int
    retake_descriptions: tuple[str, ...] = ()
    day_start_hour: int = 8
    day_end_hour: int = 18
    distribution_sample_s: int = 180
    distribution_smooth_s: int = 900
    language: str = "fr"
    logos: tuple[str, ...] = field(default=())  # image sources (URLs or data: URIs)
    #: business days retrieved (final in the store): they count their slots in service
    retrieved: frozenset[dt.date] = frozenset()
    #: the machine's service window (first, last day; None = open)
    service_from: dt.date | None = None
    service_until: dt.date | None = None
    #: the configured start of the period when the page was trimmed to the service window
    period_start: dt.date | None = None
    #: ``[uptake.<label>]`` windows and activity references (injection to scan, DOMAIN §8)
    uptake_windows: tuple[upt.UptakeWindow, ...] = ()


@dataclass(frozen=True)
class PagePlan:
    """Planned against performed on one page: the :func:`planmatch.match_plan` rows of its
    machine and the days (of the page) on which the machine had a plan."""

    matches: pl.DataFrame
    days: frozenset[dt.date]


@dataclass(frozen=True)
class PageNumbers:
    """The numbers of one page, shared by its figure, the workbook and the summary."""

    studies: pl.DataFrame  # studies on the page's business days
    labeled: pl.DataFrame  # :func:`schedule.with_labels`
    labels: list[str]  # in drawing order
    gaps: pl.DataFrame  # :func:`schedule.find_gaps`
    daily: pl.DataFrame  # :func:`schedule.daily_counts`
    counts: pl.DataFrame  # :func:`schedule.count_table`
    durations: pl.DataFrame  # :func:`schedule.duration_table`
    plan: pl.DataFrame | None = None  # :func:`planmatch.plan_table` (with a worklist)


def page_plan_table(plan: PagePlan, spec: PageSpec) -> pl.DataFrame:
    """The planned / performed table of a page: its plan days only."""
    days = [d for d in spec.days if d in plan.days]
    return pm.plan_table(plan.matches, spec.description_order, days)


def page_numbers(
    studies: pl.DataFrame, spec: PageSpec, plan: PagePlan | None = None
) -> PageNumbers:
    """Labels, gaps, day statuses, count and duration tables of one machine and period
    (and, with ``plan``, its planned / performed table)."""
    day_set = list(spec.days)
    studies = studies.filter(pl.col("date").is_in(day_set))
    labeled = sch.with_labels(studies, spec.retake_descriptions)
    labels = sch.label_order(
        spec.description_order, labeled["label"].unique().to_list(), spec.retake_descriptions
    )
    gaps = sch.find_gaps(studies, spec.gap_minutes)
    daily = sch.daily_counts(
        studies,
        gaps,
        day_set,
        spec.slots_per_weekday,
        spec.retrieved,
        (spec.service_from, spec.service_until),
    )
    counts = sch.count_table(daily, sch.day_bins(day_set, bin_kind(len(day_set)), spec.language))
    durations = sch.duration_table(labeled, gaps, labels)
    table = page_plan_table(plan, spec) if plan is not None else None
    return PageNumbers(studies, labeled, labels, gaps, daily, counts, durations, table)
