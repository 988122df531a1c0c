"""The report's pages: a :class:`Page` of one machine and period from the study table."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import mimetypes
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu.config import Settings, uptake_windows
from pyschedvisu.store import SeriesStore, conform
from pyschedvisu_core import figures, planmatch, schema, uptake_page
from pyschedvisu_core import uptake as upt
from pyschedvisu_core.errors import ReportError, StoreError
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.periods import Period, make_periods
from pyschedvisu_core.schedule import parse_duration

log = logging.getLogger("pyschedvisu.render")


@dataclass(frozen=True)
class Page:
    """One report page: the plotly figure (JSON) and what it shows."""

    machine: str  # display name, e.g. "PET GE"
    machine_key: str  # minified, e.g. "petge"
    period: str  # period name, e.g. "hebdomadaire"
    period_label: str  # printed name in the report language
    start: dt.date
    end: dt.date
    n_studies: int
    figure: str  # plotly figure JSON (no generation time: the page is cacheable)
    counts: pl.DataFrame | None = None  # schedule.count_table of the page (workbook)
    durations: pl.DataFrame | None = None  # schedule.duration_table of the page (workbook)
    period_start: dt.date | None = None  # the configured start, when trimmed to the data
    plan: pl.DataFrame | None = None  # planmatch.plan_table of the page (with a worklist)
    #: PET machines: the "Injection → scan" page that follows this one (figure JSON), and
    #: its numbers (``uptake.uptake_table``: workbook, HTML)
    uptake_figure: str | None = None
    uptake: pl.DataFrame | None = None

    @property
    def title(self) -> str:
        return f"{self.machine} – {self.period_label}"


@dataclass(frozen=True)
class PlanData:
    """Planned against performed for the report: the plan matches and which machine had a
    plan which day (``pyschedvisu.worklist.matches``)."""

    matches: pl.DataFrame
    coverage: pl.DataFrame

    def page_plan(self, machine: str, days: Collection[dt.date]) -> figures.PagePlan:
        """What one page of ``machine`` over ``days`` shows of it."""
        wanted = list(days)
        return figures.PagePlan(
            self.matches.filter((pl.col("machine") == machine) & pl.col("date").is_in(wanted)),
            frozenset(planmatch.plan_days(self.coverage, machine, wanted)),
        )


def load_plan(settings: Settings, source: PlanData | str | Path | None = None) -> PlanData | None:
    """The plan of the report: None when no worklist is configured (the report is then as
    without one); ``source``: the data already read, or ``plan_matches.parquet`` (or its
    folder; default ``paths.data_dir``). No plan matched yet: every day is "no plan".

    The report's functions take the plan explicitly: ``plan=None`` there is the report
    without it (no worklist, or a matching that failed), whatever the data dir holds."""
    if not settings.worklist.enabled:
        return None
    if isinstance(source, PlanData):
        return source
    from pyschedvisu.worklist.matches import load_matches

    folder = Path(source) if source is not None else Path(settings.paths.data_dir)
    if folder.suffix == ".parquet":
        folder = folder.parent
    got = load_matches(folder)
    if got is None:
        return PlanData(planmatch.empty_matches(), schema.empty(planmatch.COVERAGE_SCHEMA))
    return PlanData(*got)


def _machine_key(settings: Settings, machine: str) -> str:
    names = settings.machine_names()
    key = machine if machine in names else minify_machine(machine)
    if key not in names:
        raise ReportError(f"unknown machine {machine!r}; known: {', '.join(names.values())}")
    return key


def report_periods(
    settings: Settings, end: dt.date, names: Sequence[str] | None = None
) -> list[Period]:
    """The configured periods (or ``names``) ending on ``end``, in the report language."""
    defs = {k: v.model_dump() for k, v in settings.report.period_defs.items()}
    wanted = list(names) if names is not None else list(settings.report.periods)
    unknown = [n for n in wanted if n not in defs]
    if unknown:
        raise ReportError(f"unknown period(s) {unknown}; known: {sorted(defs)}")
    return make_periods(
        end, wanted, defs, year_start=settings.report.year_start, lang=settings.report.language
    )


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.warning("logo %s unreadable (%s): left out", path, exc)
        return None
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def service_windows(studies: pl.DataFrame | str | Path) -> dict[str, tuple[dt.date, dt.date]]:
    """First and last day with studies of each display machine in the whole study table."""
    try:
        lf = pl.scan_parquet(studies) if isinstance(studies, str | Path) else studies.lazy()
        rows = (
            lf.group_by("machine")
            .agg(first=pl.col("date").min(), last=pl.col("date").max())
            .collect()
            .iter_rows()
        )
        return {str(m): (a, b) for m, a, b in rows}
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StoreError(f"{studies}: cannot read the study table ({exc})") from exc


def service_window(
    settings: Settings, machine_key: str, windows: dict[str, tuple[dt.date, dt.date]]
) -> tuple[dt.date | None, dt.date | None]:
    """The machine's service window: ``in_service_from/until`` of its draw config, defaulting
    to its first / last day with studies (None when it has none)."""
    draw = settings.draw.machine[machine_key]
    first, last = windows.get(settings.machine_names()[machine_key], (None, None))
    return draw.in_service_from or first, draw.in_service_until or last


def final_days(data_dir: str | Path, start: dt.date, end: dt.date) -> list[dt.date]:
    """Days from ``start`` to ``end`` retrieved for good: :meth:`SeriesStore.final_days`."""
    return SeriesStore(data_dir).final_days(start, end)


def page_spec(
    settings: Settings,
    machine_key: str,
    period: Period,
    *,
    retrieved: Collection[dt.date] = (),
    window: tuple[dt.date | None, dt.date | None] = (None, None),
    first_data: dt.date | None = None,
) -> figures.PageSpec:
    """Plain page values for the core, from the settings.

    ``window``: the machine's service window (:func:`service_window`); ``first_data``: its
    first day with studies. A period starting before both is trimmed to the earlier of them
    (its bins would be empty columns), and says so; studies are never trimmed away.
    """
    draw = settings.draw.machine[machine_key]
    images = [*settings.report.logos]
    if machine_key in settings.report.machine_pictures:
        images.append(settings.report.machine_pictures[machine_key])
    logos = tuple(uri for uri in (_data_uri(Path(p)) for p in images) if uri)
    first, last = window
    start = period.start
    days = tuple(settings.business_days(start, period.end))
    trim = min((d for d in (first, first_data) if d is not None), default=None)
    if trim is not None and days and days[0] < trim <= period.end:
        # business days of the period before the machine's service: trimmed (a holiday or a
        # weekend at the period's start is no reason to say so)
        start = trim
        days = tuple(d for d in days if d >= trim)
    return figures.PageSpec(
        machine=settings.machine_names()[machine_key],
        period_label=period.label,
        start=start,
        end=period.end,
        days=days,
        description_order=tuple(settings.descriptions.get(machine_key, {})),
        colors=tuple(settings.draw.colors),
        slots_per_weekday=tuple(draw.slots_per_weekday),
        gap_minutes=draw.gap_minutes,
        prep_minutes=draw.prep_minutes,
        retake_descriptions=tuple(settings.draw.retake_descriptions),
        day_start_hour=settings.draw.day_start_hour,
        day_end_hour=settings.draw.day_end_hour,
        distribution_sample_s=parse_duration(settings.draw.distribution_sample),
        distribution_smooth_s=parse_duration(settings.draw.distribution_smooth),
        language=settings.report.language,
        logos=logos,
        retrieved=frozenset(d for d in retrieved if start <= d <= period.end),
        service_from=first,
        service_until=last,
        period_start=period.start if start != period.start else None,
        uptake_windows=uptake_windows(settings),
    )


def load_studies(
    path: str | Path,
    machine: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pl.DataFrame:
    """Studies of ``path`` (``schema.STUDY_SCHEMA``), optionally of one display machine and dates."""
    try:
        lf = pl.scan_parquet(path)
        if machine is not None:
            lf = lf.filter(pl.col("machine") == machine)
        if start is not None:
            lf = lf.filter(pl.col("date") >= start)
        if end is not None:
            lf = lf.filter(pl.col("date") <= end)
        return conform(lf.collect(), schema.STUDY_SCHEMA)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StoreError(f"{path}: cannot read the study table ({exc})") from exc


def figure_json(fig: dict[str, Any]) -> str:
    """Compact JSON of a figure dict; NaN (not JSON) is refused rather than written."""
    return json.dumps(fig, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def build_page(
    settings: Settings,
    studies: pl.DataFrame | str | Path,
    machine: str,
    period: str,
    end: dt.date,
    retrieved: Collection[dt.date] = (),
    windows: dict[str, tuple[dt.date, dt.date]] | None = None,
    plan: PlanData | str | Path | None = None,
) -> Page | None:
    """The page of ``machine`` (display or minified name) for ``period`` ending on ``end``.

    ``studies``: the study table or the path of ``studies.parquet``. ``retrieved``: the days
    final in the series store (:func:`final_days`); ``windows``: :func:`service_windows` of
    the whole table (read here when not given); ``plan``: planned against performed
    (:func:`load_plan`), shown when a worklist is configured. None when the machine has no
    study on the business days of the period.
    """
    key = _machine_key(settings, machine)
    name = settings.machine_names()[key]
    (per,) = report_periods(settings, end, [period])
    if windows is None:
        windows = service_windows(studies)
    spec = page_spec(
        settings,
        key,
        per,
        retrieved=retrieved,
        window=service_window(settings, key, windows),
        first_data=windows.get(name, (None, None))[0],
    )
    if isinstance(studies, str | Path):
        frame = load_studies(studies, name, spec.start, per.end)
    else:
        frame = studies.filter(
            (pl.col("machine") == name) & pl.col("date").is_between(spec.start, per.end)
        )
    frame = frame.filter(pl.col("date").is_in(list(spec.days)))
    if frame.height == 0:
        return None
    plan_data = load_plan(settings, plan) if plan is not None else None
    page_plan = plan_data.page_plan(name, spec.days) if plan_data is not None else None
    try:
        numbers = figures.page_numbers(frame, spec, page_plan)
        payload = figure_json(figures.page_dict(frame, spec, numbers, page_plan))
        uptake, uptake_figure = None, None
        pet = frame.filter(upt.is_pet(frame))
        # a PET machine whose headers tell injections in this period: its injection to scan
        # page (a PACS that keeps no Radiopharmaceutical Information Sequence would give
        # one empty page per PET machine and period; the summary says "-" instead)
        told = pet.select(
            pl.any_horizontal(
                pl.col(c).is_not_null() for c in ("injected_at", "activity_mbq", "tracer")
            ).any()
        ).item()
        if told:
            uptake = upt.uptake_table(frame, spec.description_order, spec.uptake_windows)
            uptake_figure = figure_json(uptake_page.page_dict(frame, spec, uptake))
    except (ValueError, KeyError, pl.exceptions.PolarsError) as exc:
        raise ReportError(f"page {name} / {period}: {exc}") from exc
    return Page(
        machine=name,
        machine_key=key,
        period=period,
        period_label=per.label,
        start=spec.start,
        end=per.end,
        n_studies=frame.height,
        figure=payload,
        counts=numbers.counts,
        durations=numbers.durations,
        period_start=spec.period_start,
        plan=numbers.plan,
        uptake_figure=uptake_figure,
        uptake=uptake,
    )
