"""The report shell: pages from the study table, PDF through kaleido + Chromium, HTML.

* :func:`build_page` reads the studies of one machine and period and returns a :class:`Page`
  (the plotly figure as JSON + metadata), or None when the machine has no study then.
* :func:`render_report` renders every page through ONE kaleido browser (a few tabs), merges
  them with pypdf (bookmarks report -> machine -> period, metadata, identical objects
  shared) and writes one self-contained HTML file next to the PDF.

Kaleido 1 drives a real Chromium: Debian's ``/usr/bin/chromium`` is used (the sandbox is off,
which is what choreographer does by default and what running as root needs). MathJax is
disabled: kaleido would otherwise load it from a CDN and stall without network.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import html
import io
import json
import logging
import mimetypes
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu import __version__
from pyschedvisu.config import Settings, uptake_windows
from pyschedvisu.store import SeriesStore, atomic_write_bytes, conform
from pyschedvisu_core import figures, i18n, overview, planmatch, schema, uptake_page
from pyschedvisu_core import uptake as upt
from pyschedvisu_core.errors import ReportError, StoreError
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.periods import Period, make_periods, previous_bounds
from pyschedvisu_core.schedule import parse_duration

log = logging.getLogger("pyschedvisu.render")

#: Debian's Chromium; any Chrome/Chromium on PATH is used when it is missing.
CHROMIUM = Path("/usr/bin/chromium")
#: Kaleido tabs rendering in parallel (one per core of the reference 2-core machine).
KALEIDO_TABS = 2
#: Longest time one page may take to render (s).
PAGE_TIMEOUT_S = 120.0


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


# -- pages -------------------------------------------------------------------------------


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
        if upt.is_pet(frame).any():  # a PET machine: its injection to scan page
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


@dataclass(frozen=True)
class Overview:
    """The summary and trends pages (figure JSON) and the summary table (workbook)."""

    summary_figure: str
    trends_figure: str
    summary: pl.DataFrame
    overlap_notes: tuple[str, ...] = ()  # data-quality lines of the report's week
    #: planned / performed summary page and its table (with a worklist)
    plan_summary_figure: str | None = None
    plan_summary: pl.DataFrame | None = None


def summary_periods(settings: Settings, end: dt.date) -> list[Period]:
    """The report's week, then every configured period (the week once if it is one of them)."""
    periods = report_periods(settings, end)
    defs = settings.report.period_defs
    if not any(defs[p.name].weeks == 1 for p in periods):
        weekly = [n for n, d in defs.items() if d.weeks == 1]
        if weekly:
            periods = report_periods(settings, end, weekly[:1]) + periods
        else:
            monday = end - dt.timedelta(days=end.weekday())
            label = "weekly" if settings.report.language == "en" else "hebdomadaire"
            periods = [Period("week", label, monday, end), *periods]
    return periods


def overview_start(settings: Settings, end: dt.date) -> dt.date:
    """First day the summary and trends pages of a report ending on ``end`` read studies of."""
    periods = summary_periods(settings, end)
    first = min(p.start for p in periods)
    earliest = min(first, trend_period(end).start)
    return earliest - dt.timedelta(days=370)  # the periods before


def trend_period(end: dt.date) -> Period:
    """The trends page's span: the 52 weeks up to ``end`` and the 52 before."""
    start = end - dt.timedelta(days=end.weekday(), weeks=2 * overview.TREND_WEEKS - 1)
    return Period("trends", "trends", start, end)


def summary_items(
    settings: Settings,
    end: dt.date,
    retrieved: Collection[dt.date],
    windows: dict[str, tuple[dt.date, dt.date]],
) -> list[overview.SummaryItem]:
    """The summary page's rows: every machine x the report's week and each period, each
    against the period before (``retrieved``, ``windows``: see :func:`build_page`)."""
    items: list[overview.SummaryItem] = []
    for per in summary_periods(settings, end):
        d = settings.report.period_defs.get(per.name)
        prev = (
            previous_bounds(per.start, per.end, weeks=d.weeks, anchor=d.anchor)
            if d is not None
            else previous_bounds(per.start, per.end, weeks=1)
        )
        for key in settings.display_machines():
            window = service_window(settings, key, windows)
            data = windows.get(settings.machine_names()[key], (None, None))[0]
            spec = page_spec(
                settings, key, per, retrieved=retrieved, window=window, first_data=data
            )
            before = None
            if prev is not None:
                shifted = Period(per.name, per.label, prev[0], prev[1])
                before = page_spec(
                    settings, key, shifted, retrieved=retrieved, window=window, first_data=data
                )
            items.append(overview.SummaryItem(per.name, spec, before))
    return items


def trend_specs(
    settings: Settings,
    end: dt.date,
    retrieved: Collection[dt.date],
    windows: dict[str, tuple[dt.date, dt.date]],
) -> list[figures.PageSpec]:
    """One page spec per machine (config order) over :func:`trend_period`: the trends page's."""
    trend = trend_period(end)
    return [
        page_spec(
            settings,
            key,
            trend,
            retrieved=retrieved,
            window=service_window(settings, key, windows),
        )
        for key in settings.display_machines()
    ]


def build_overview(
    settings: Settings,
    studies: pl.DataFrame | str | Path,
    end: dt.date,
    retrieved: Collection[dt.date] = (),
    windows: dict[str, tuple[dt.date, dt.date]] | None = None,
    plan: PlanData | str | Path | None = None,
) -> Overview:
    """The summary page (every machine x the report's week and each period, against the period
    before) and the trends page (last 52 weeks against the 52 before), from the study table;
    with a worklist, the planned / performed summary page too."""
    lang = settings.report.language
    if windows is None:
        windows = service_windows(studies)
    earliest = overview_start(settings, end)
    frame = (
        load_studies(studies, start=earliest, end=end)
        if isinstance(studies, str | Path)
        else studies.filter(pl.col("date").is_between(earliest, end))
    )
    items = summary_items(settings, end, retrieved, windows)
    table = overview.summary_table(frame, items)
    specs = trend_specs(settings, end, retrieved, windows)
    # the report's week: which machines had studies overlapped by another patient's series
    monday = end - dt.timedelta(days=end.weekday())
    notes: list[str] = []
    week = frame.filter(pl.col("date") >= monday)
    for key in settings.display_machines():
        name = settings.machine_names()[key]
        days = figures.overlap_days(week.filter(pl.col("machine") == name))
        if days:
            listed = ", ".join(i18n.fmt_date(d) for d in days)
            notes.append(f"{name} – " + i18n.text("overlaps_note", lang, days=listed))
    title = settings.report.title
    summary = overview.summary_dict(table, title=title, end=end, lang=lang)
    trends = overview.trends_dict(frame, specs, title=title, end=end, lang=lang)
    plan_data = load_plan(settings, plan) if plan is not None else None
    plan_figure, plan_table = None, None
    if plan_data is not None:
        plan_table = overview.plan_summary_table(plan_data.matches, plan_data.coverage, items)
        plan_figure = figure_json(
            overview.plan_summary_dict(plan_table, title=title, end=end, lang=lang)
        )
    return Overview(
        figure_json(summary),
        figure_json(trends),
        table,
        tuple(notes),
        plan_figure,
        plan_table,
    )


# -- PDF -----------------------------------------------------------------------------------


def chromium_path() -> str:
    """The Chromium kaleido drives: Debian's, else one on PATH."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise ReportError(
        "no Chromium found: install the Debian package 'chromium' (kaleido 1 needs it)"
    )


def _run(coro: Any) -> Any:
    """Run a coroutine to completion, also from code that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="kaleido")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _kaleido_class() -> Any:
    """Kaleido whose tabs are not reloaded between pages.

    Kaleido reloads a tab (and re-parses the 4.8 MB plotly.js) after every figure: about
    0.5 s of CPU per page, a third of a 35-page run. Our figures are all of one kind (same
    background, same page size) and the tab's renderer replaces its output on every call,
    so the reload buys nothing here. Falls back to plain Kaleido if its internals change.
    """
    import kaleido

    if not hasattr(kaleido.Kaleido, "_return_kaleido_tab"):
        return kaleido.Kaleido

    class _ReusingKaleido(kaleido.Kaleido):  # type: ignore[misc]
        async def _return_kaleido_tab(self, tab: Any) -> None:
            await self.tabs_ready.put(tab)

    return _ReusingKaleido


async def _render_all(
    prepare: Callable[[], Sequence[dict[str, Any]]],
    count: int,
    tabs: int,
    timeout: float,
    meanwhile: Callable[[], Any] | None = None,
) -> tuple[list[bytes], Any]:
    """PDF pages of the figures ``prepare()`` returns, and the result of ``meanwhile()``.

    Chromium takes seconds to start and load plotly.js in each tab, and waits on it; the
    figures are prepared (a thread) while it starts, and ``meanwhile`` (the HTML) runs in a
    thread while the pages render.
    """
    opts = {"format": "pdf", "width": figures.PAGE_WIDTH, "height": figures.PAGE_HEIGHT}
    prepared = asyncio.ensure_future(asyncio.to_thread(prepare))
    try:
        async with _kaleido_class()(
            n=max(1, min(tabs, count)), path=chromium_path(), mathjax=False, timeout=timeout
        ) as k:
            figs = await prepared
            side = asyncio.ensure_future(asyncio.to_thread(meanwhile or (lambda: None)))
            try:
                # One browser for the whole run; the tab queue spreads the pages over the tabs.
                pdfs = list(await asyncio.gather(*(k.calc_fig(f, opts=opts) for f in figs)))
            finally:
                side_result = await side
            return pdfs, side_result
    finally:
        if not prepared.done():
            prepared.cancel()


def _render(
    prepare: Callable[[], Sequence[dict[str, Any]]],
    count: int,
    tabs: int,
    timeout: float,
    meanwhile: Callable[[], Any] | None = None,
) -> tuple[list[bytes], Any]:
    try:
        return _run(_render_all(prepare, count, tabs, timeout, meanwhile))  # type: ignore[no-any-return]
    except ReportError:
        raise
    except Exception as exc:  # kaleido / choreographer / Chromium errors of every kind
        raise ReportError(
            f"PDF rendering with kaleido failed: {type(exc).__name__}: {exc}"
        ) from exc


def render_pdf_pages(
    figs: Sequence[dict[str, Any]], *, tabs: int = KALEIDO_TABS, timeout: float = PAGE_TIMEOUT_S
) -> list[bytes]:
    """One single-page PDF per figure dict, all through one kaleido browser."""
    if not figs:
        return []
    return _render(lambda: figs, len(figs), tabs, timeout)[0]


def merge_pdf(
    page_pdfs: Sequence[bytes],
    pages: Sequence[Page],
    *,
    title: str,
    subject: str,
    keywords: str,
    front: Sequence[str] = (),
    aliases: Sequence[tuple[Page, Page]] = (),
    uptake_title: str = "Injection → scan",
) -> bytes:
    """Merge single-page PDFs; outline ``title`` -> [front pages] -> machine -> period
    [-> ``uptake_title``]; metadata; compression.

    ``front``: titles of the leading pages (summary, trends), before those of ``pages``.
    ``aliases``: (page not repeated, the identical page shown instead): its period's outline
    entry points at the page shown. A page with an ``uptake_figure`` is followed by that
    page (DOMAIN §8), outlined under its period.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PyPdfError

    writer = PdfWriter()
    try:
        for data in page_pdfs:
            reader = PdfReader(io.BytesIO(data))
            for pdf_page in reader.pages:
                writer.add_page(pdf_page)
    except PyPdfError as exc:
        raise ReportError(f"a rendered page is not a valid PDF ({exc})") from exc
    root = writer.add_outline_item(title=title, page_number=0)
    for index, name in enumerate(front):
        writer.add_outline_item(title=name, page_number=index, parent=root)
    index_of: dict[int, int] = {}
    at = len(front)
    for page in pages:
        index_of[id(page)] = at
        at += 2 if page.uptake_figure else 1
    alias_of: dict[int, list[Page]] = {}
    for alias, shown in aliases:
        alias_of.setdefault(id(shown), []).append(alias)
    machine_items: dict[str, Any] = {}
    for page in pages:
        index = index_of[id(page)]
        if page.machine not in machine_items:
            machine_items[page.machine] = writer.add_outline_item(
                title=page.machine, page_number=index, parent=root
            )
        parent = machine_items[page.machine]
        item = writer.add_outline_item(title=page.period_label, page_number=index, parent=parent)
        if page.uptake_figure:
            writer.add_outline_item(title=uptake_title, page_number=index + 1, parent=item)
        for alias in alias_of.get(id(page), []):
            writer.add_outline_item(
                title=f"{alias.period_label} (= {page.period_label})",
                page_number=index,
                parent=parent,
            )
    writer.add_metadata(
        {
            "/Title": title,
            "/Subject": subject,
            "/Keywords": keywords,
            "/Author": "pySchedVisu",
            "/Creator": f"pySchedVisu {__version__} (plotly, kaleido, pypdf)",
        }
    )
    writer.page_mode = "/UseOutlines"
    # Fonts and graphic states repeat on every page: share identical objects.
    writer.compress_identical_objects(remove_duplicates=True, remove_unreferenced=True)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- HTML ----------------------------------------------------------------------------------

_CSS = """
body{margin:0;font-family:"DejaVu Sans",Arial,sans-serif;color:#1f2d3d;background:#e9edf1}
nav{position:fixed;top:0;left:0;bottom:0;width:230px;overflow:auto;background:#2f3e4e;color:#fff;
padding:16px;box-sizing:border-box;font-size:14px}
nav h1{font-size:17px;margin:0 0 4px}nav p{font-size:12px;color:#c9d3dc;margin:0 0 14px}
nav h2{font-size:14px;margin:14px 0 4px;color:#fff}
nav a{display:block;color:#c9d3dc;text-decoration:none;padding:2px 0 2px 10px}
nav a:hover{color:#fff}nav a.download{color:#fff;font-weight:bold;padding:6px 0}
main{margin-left:230px;padding:16px}
section{background:#fff;width:794px;margin:0 auto 24px;box-shadow:0 1px 4px rgba(0,0,0,.2)}
section h2{font-size:13px;margin:0;padding:6px 10px;background:#f1f4f7;color:#5b6770}
section h3{font-size:12px;margin:10px 10px 4px;color:#2f3e4e}
section p.ref{font-size:12px;margin:0;padding:8px 10px;color:#5b6770}
.fig{width:794px;height:1123px}
.tables{padding:0 10px 12px;overflow-x:auto}
table.data{border-collapse:collapse;font-size:11px;margin-bottom:8px}
table.data th{background:#2f3e4e;color:#fff;padding:3px 6px;cursor:pointer;white-space:nowrap}
table.data th:after{content:" \\2195";color:#8a96a3}
table.data td{padding:2px 6px;border-bottom:1px solid #e3e8ed;text-align:right;white-space:nowrap}
table.data td.l{text-align:left}table.data tr.sum td{background:#dde4ea;font-weight:bold}
"""

_JS = """
(function(){
  const opts={displaylogo:false,responsive:false,scrollZoom:false};
  function draw(div){
    if(div.dataset.drawn)return; div.dataset.drawn="1";
    const fig=JSON.parse(document.getElementById(div.dataset.src).textContent);
    Plotly.newPlot(div,fig.data,fig.layout,opts);
  }
  const divs=document.querySelectorAll(".fig");
  if("IntersectionObserver" in window){
    const io=new IntersectionObserver(es=>es.forEach(e=>{if(e.isIntersecting)draw(e.target);}),
      {rootMargin:"600px"});
    divs.forEach(d=>io.observe(d));
  } else { divs.forEach(draw); }
  // sortable tables: click a header; cells sort on data-v (a number) when they have one
  document.querySelectorAll("table.data th").forEach(function(th){
    th.addEventListener("click",function(){
      const table=th.closest("table"),body=table.tBodies[0],col=th.cellIndex;
      const asc=th.dataset.asc!=="1"; th.dataset.asc=asc?"1":"0";
      const rows=Array.from(body.rows).filter(r=>!r.classList.contains("sum"));
      const sums=Array.from(body.rows).filter(r=>r.classList.contains("sum"));
      const key=r=>{const c=r.cells[col];const v=c.dataset.v;
        return v!==undefined&&v!==""?parseFloat(v):c.textContent;};
      rows.sort((a,b)=>{const x=key(a),y=key(b);
        const r=(typeof x==="number"&&typeof y==="number")?x-y:String(x).localeCompare(String(y));
        return asc?r:-r;});
      rows.concat(sums).forEach(r=>body.appendChild(r));
    });
  });
})();
"""


def _script_json(data: str) -> str:
    # Inside <script type="application/json"> only "</" could end the element early.
    return data.replace("</", "<\\/")


Cell = tuple[str, float | None]  # printed text, sort value


def html_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], sums: int = 0) -> str:
    """A sortable HTML table; the last ``sums`` rows (total, mean) stay at the bottom."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for k, row in enumerate(rows):
        cls = ' class="sum"' if k >= len(rows) - sums else ""
        cells = []
        for c, (text, value) in enumerate(row):
            left = ' class="l"' if c == 0 or (value is None and not _numberish(text)) else ""
            v = "" if value is None or value != value else f' data-v="{value:g}"'
            cells.append(f"<td{left}{v}>{html.escape(text)}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (
        f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _numberish(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text in ("-", ""))


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None


def page_tables_html(page: Page, lang: str) -> str:
    """The count and duration tables of a page as real HTML tables (copyable, sortable)."""
    parts = []
    if page.counts is not None:
        keys = ["days", "slots", "exams", "gaps", "util", "no_activity", "no_data"]
        header = [i18n.text("date", lang)] + [
            i18n.text({"no_activity": "no_activity_row", "no_data": "no_data_row"}.get(k, k), lang)
            + (" (%)" if k == "util" else "")
            for k in keys
        ]
        rows = []
        for r in page.counts.iter_rows(named=True):
            kind = str(r["row"])
            label = i18n.text(kind, lang) if kind in ("total", "mean") else str(r["label"])
            cells: list[Cell] = [(label, None)]
            for k in keys:
                value = r[k]
                if k == "util":
                    text = i18n.fmt_percent(value)
                elif value is None:
                    text = "-"
                else:
                    text = f"{value:.1f}" if kind == "mean" else f"{value:.0f}"
                cells.append((text, _num(value)))
            rows.append(cells)
        parts.append(f"<h3>{html.escape(i18n.text('counts_table', lang))}</h3>")
        parts.append(html_table(header, rows, sums=2))
    if page.durations is not None:
        stats = ("mean_s", "median_s", "p90_s", "min_s", "max_s")
        header = [
            i18n.text(k, lang) for k in ("description", "n", "moy", "median", "p90", "min", "max")
        ]
        rows = []
        for r in page.durations.iter_rows(named=True):
            label = str(r["label"])
            name = (
                i18n.text("gaps_row", lang)
                if label == "GAPS"
                else i18n.description_label(label, lang)
            )
            cells = [(name, None), (str(r["n"]), _num(r["n"]))]
            cells += [(i18n.fmt_duration(r[k]), _num(r[k])) for k in stats]
            rows.append(cells)
        parts.append(f"<h3>{html.escape(i18n.text('durations_table', lang))}</h3>")
        parts.append(html_table(header, rows, sums=1))
    if page.plan is not None and page.plan.height:
        parts.append(f"<h3>{html.escape(i18n.text('plan_table', lang))}</h3>")
        parts.append(plan_table_html(page.plan, lang))
    return f'<div class="tables">{"".join(parts)}</div>' if parts else ""


def uptake_table_html(table: pl.DataFrame, lang: str) -> str:
    """The numbers of an "Injection → scan" page as a real HTML table (minutes, MBq)."""
    keys = (
        "description",
        "n",
        "uptake_median",
        "uptake_spread",
        "window",
        "in_window",
        "activity_median",
        "activity_p90",
        "activity_ref",
        "flagged",
        "no_injection",
    )
    header = [i18n.text(k, lang) for k in keys]

    def minutes(v: Any) -> Cell:
        return ("-" if v is None else f"{v / 60:.0f}", _num(v / 60) if v is not None else None)

    def mbq(v: Any) -> Cell:
        return ("-" if v is None else f"{v:.0f}", _num(v))

    rows = []
    for r in table.iter_rows(named=True):
        label = str(r["label"])
        name = uptake_page.row_name(label, lang)
        window = "-"
        if r["min_s"] is not None and r["max_s"] is not None:
            window = f"{r['min_s'] / 60:.0f}–{r['max_s'] / 60:.0f}"
        spread = "-"
        if r["p10_s"] is not None:
            spread = f"{r['p10_s'] / 60:.0f}–{r['p90_s'] / 60:.0f}"
        rows.append(
            [
                (name, None),
                (str(r["n"]), _num(r["n"])),
                minutes(r["median_s"]),
                (spread, None),
                (window, None),
                (i18n.fmt_percent(r["in_window_pct"]), _num(r["in_window_pct"])),
                mbq(r["activity_median_mbq"]),
                mbq(r["activity_p90_mbq"]),
                mbq(r["activity_ref_mbq"]),
                (str(r["flagged"]), _num(r["flagged"])),
                (str(r["no_injection"]), _num(r["no_injection"])),
            ]
        )
    title = html.escape(i18n.text("uptake_table", lang))
    sums = table.filter(pl.col("label").is_in([upt.WINDOWED, upt.TOTAL])).height
    return f'<div class="tables"><h3>{title}</h3>{html_table(header, rows, sums=sums)}</div>'


#: Columns of a planned / performed table (its header keys and how a value prints).
_PLAN_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("planned", "planned", str),
    ("performed", "performed", str),
    ("no_shows", "no_shows", str),
    ("unplanned", "unplanned", str),
    ("added_same_day", "added_same_day", str),
    ("realised_pct", "realised_pct", i18n.fmt_percent),
    ("util_plan_pct", "util_plan", i18n.fmt_percent),
    ("delay_median_s", "delay_median", i18n.fmt_delay),
    ("delay_p90_s", "delay_p90", i18n.fmt_delay),
)


def plan_table_html(table: pl.DataFrame, lang: str) -> str:
    """A page's planned / performed table (per description, then the total) as HTML."""
    header = [i18n.text("description", lang)] + [i18n.text(k, lang) for _, k, _ in _PLAN_COLUMNS]
    rows = []
    for r in table.iter_rows(named=True):
        label = str(r["label"])
        name = (
            i18n.text("total", lang)
            if label == planmatch.TOTAL
            else i18n.description_label(label, lang)
        )
        cells: list[Cell] = [(name, None)]
        cells += [(fmt(r[col]), _num(r[col])) for col, _, fmt in _PLAN_COLUMNS]
        rows.append(cells)
    return html_table(header, rows, sums=1)


def plan_summary_table_html(summary: pl.DataFrame, lang: str) -> str:
    """The planned / performed summary page's table as a real HTML table."""
    header, printed = overview.plan_summary_cells(summary, lang)
    keys = [
        None,
        None,
        "plan_days",
        "planned",
        "performed",
        "no_shows",
        "unplanned",
        "added_same_day",
        "realised_pct",
        "util_plan_pct",
        "delay_median_s",
        "delay_p90_s",
    ]
    rows = []
    for r, texts in zip(summary.iter_rows(named=True), printed, strict=True):
        texts = [str(r["period_label"]), *texts[1:]]
        rows.append([(t, _num(r[k]) if k else None) for t, k in zip(texts, keys, strict=True)])
    return f'<div class="tables">{html_table(header, rows)}</div>'


def summary_table_html(summary: pl.DataFrame, lang: str) -> str:
    """The summary page's table as a real HTML table."""
    header, printed = overview.summary_cells(summary, lang)
    keys = [
        None,
        None,
        "exams",
        "slots",
        "utilisation_pct",
        "gaps",
        "median_duration_s",
        "retakes",
        "no_activity_days",
        "no_data_days",
        "change_pct",
        "uptake_median_s",
        "uptake_in_window_pct",
        "activity_median_mbq",
    ]
    rows = []
    for r, texts in zip(summary.iter_rows(named=True), printed, strict=True):
        texts = [str(r["period_label"]), *texts[1:]]  # every row names its period here
        rows.append([(t, _num(r[k]) if k else None) for t, k in zip(texts, keys, strict=True)])
    return f'<div class="tables">{html_table(header, rows)}</div>'


def build_html(
    pages: Sequence[Page],
    figs: Sequence[dict[str, Any]],
    *,
    title: str,
    subtitle: str,
    lang: str,
    front: Sequence[tuple[str, dict[str, Any], str]] = (),
    aliases: Sequence[tuple[Page, Page]] = (),
    workbook: str | None = None,
    uptake_figs: Sequence[dict[str, Any] | None] = (),
) -> str:
    """One self-contained HTML file: plotly.js inlined once, every page with its tables as
    real HTML tables, a machine/period menu and a link to the workbook.

    ``front``: (title, figure, HTML below it) of the leading pages (summary, trends).
    ``aliases``: pages not repeated, shown as a reference to the identical one.
    ``workbook``: file name of the Excel workbook beside the HTML file.
    ``uptake_figs``: per page, its "Injection → scan" figure shown after it (or None).
    """
    from plotly.offline import get_plotlyjs

    nav: list[str] = []
    if workbook:
        nav.append(
            f'<a class="download" href="{html.escape(workbook)}" download>'
            f"⬇ {html.escape(i18n.text('workbook', lang))}</a>"
        )
    sections = []
    data = []
    n = 0

    def section(head: str, fig: dict[str, Any], below: str) -> None:
        nonlocal n
        sections.append(
            f'<section id="page-{n}"><h2>{html.escape(head)}</h2>'
            f'<div class="fig" data-src="fig-{n}"></div>{below}</section>'
        )
        payload = _script_json(json.dumps(fig, separators=(",", ":")))
        data.append(f'<script type="application/json" id="fig-{n}">{payload}</script>')
        n += 1

    for head, fig, below in front:
        nav.append(f'<a href="#page-{n}">{html.escape(head)}</a>')
        section(head, fig, below)
    current = None
    anchors: dict[int, int] = {}
    for k, (page, fig) in enumerate(zip(pages, figs, strict=True)):
        if page.machine != current:
            current = page.machine
            nav.append(f"<h2>{html.escape(page.machine)}</h2>")
        anchors[id(page)] = n
        nav.append(f'<a href="#page-{n}">{html.escape(page.period_label)}</a>')
        section(page.title, fig, page_tables_html(page, lang))
        uptake_fig = uptake_figs[k] if k < len(uptake_figs) else None
        if uptake_fig is not None:
            label = i18n.text("uptake_bookmark", lang)
            nav.append(f'<a href="#page-{n}">&nbsp;&nbsp;↳ {html.escape(label)}</a>')
            below = uptake_table_html(page.uptake, lang) if page.uptake is not None else ""
            section(f"{page.title} – {label}", uptake_fig, below)
        for alias, shown in aliases:
            if shown is page:
                ref = i18n.text(
                    "same_as",
                    lang,
                    machine=alias.machine,
                    period=alias.period_label,
                    other=page.period_label,
                )
                nav.append(
                    f'<a href="#page-{anchors[id(page)]}">{html.escape(alias.period_label)} '
                    f"(= {html.escape(page.period_label)})</a>"
                )
                sections.append(
                    f'<section><h2>{html.escape(alias.title)}</h2><p class="ref">'
                    f'<a href="#page-{anchors[id(page)]}">{html.escape(ref)}</a></p></section>'
                )
    return "".join(
        [
            f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>",
            f"<script>{get_plotlyjs()}</script></head><body>",
            f"<nav><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>",
            f"<h2>{html.escape(i18n.text('navigation', lang))}</h2>",
            *nav,
            "</nav><main>",
            *sections,
            "</main>",
            *data,
            f"<script>{_JS}</script></body></html>",
        ]
    )


# -- the report ----------------------------------------------------------------------------


def output_paths(output_dir: Path, end: dt.date, generated_at: dt.datetime) -> tuple[Path, Path]:
    """``<output_dir>/<YYYY>/pyschedvisu_report_<end>_<YYYYmmdd-HHMMSS>.pdf`` and ``.html``
    (the workbook is the same name with ``.xlsx``)."""
    stem = f"pyschedvisu_report_{end.isoformat()}_{generated_at:%Y%m%d-%H%M%S}"
    folder = Path(output_dir) / f"{end.year:04d}"
    return folder / f"{stem}.pdf", folder / f"{stem}.html"


def _ordered(settings: Settings, pages: Sequence[Page]) -> list[Page]:
    machines = {k: i for i, k in enumerate(settings.display_machines())}
    periods = {p: i for i, p in enumerate(settings.report.periods)}
    return sorted(
        pages,
        key=lambda p: (
            machines.get(p.machine_key, len(machines)),
            p.machine,
            periods.get(p.period, len(periods)),
            p.start,
        ),
    )


def identical_pages(pages: Sequence[Page]) -> tuple[list[Page], list[tuple[Page, Page]]]:
    """(pages to show, [(page not repeated, the identical page shown)]).

    Two pages of one machine over the same business days show the same studies with the
    same rules: the same page (a yearly and a long-term page when the data start this year).
    The first in report order is shown, the others become a one-line reference to it.
    """
    shown: list[Page] = []
    aliases: list[tuple[Page, Page]] = []
    seen: dict[tuple[str, dt.date, dt.date], Page] = {}
    for page in pages:
        key = (page.machine_key, page.start, page.end)
        if key in seen:
            aliases.append((page, seen[key]))
        else:
            seen[key] = page
            shown.append(page)
    return shown, aliases


def skipped_pages(settings: Settings, pages: Sequence[Page], end: dt.date) -> list[str]:
    """``machine / period`` of every configured page that has no data (so was not built)."""
    have = {(p.machine_key, p.period) for p in pages}
    labels = {p.name: p.label for p in report_periods(settings, end)}
    names = settings.machine_names()
    return [
        f"{names[m]} / {labels[p]}"
        for m in settings.display_machines()
        for p in settings.report.periods
        if (m, p) not in have
    ]


def plan_sheets(
    pages: Sequence[Page],
    plan_summary: pl.DataFrame | None,
    plan: PlanData | None,
    machines: Sequence[str],
    first: dt.date,
    end: dt.date,
) -> dict[str, pl.DataFrame]:
    """The planned / performed sheets (none without a worklist; see :mod:`pyschedvisu.workbook`)."""
    from pyschedvisu import workbook as wbk

    if plan is None:
        return {}
    tables = [wbk.plan_rows(p.machine, p.period, p.plan) for p in pages if p.plan is not None]
    return {
        "plan_summary": plan_summary
        if plan_summary is not None
        else schema.empty(overview.PLAN_SUMMARY_SCHEMA),
        "plan": pl.concat(tables) if tables else schema.empty(wbk.PLAN_SCHEMA),
        "plan_matches": wbk.plan_match_rows(plan.matches, machines, first, end),
    }


def workbook_sheets(pages: Sequence[Page], summary: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    """The ``counts``, ``durations``, ``summary`` and ``uptake`` sheets (see
    :mod:`pyschedvisu.workbook`)."""
    from pyschedvisu import workbook as wbk

    counts = [wbk.counts_rows(p.machine, p.period, p.counts) for p in pages if p.counts is not None]
    durations = [
        wbk.durations_rows(p.machine, p.period, p.durations)
        for p in pages
        if p.durations is not None
    ]
    uptake = [wbk.uptake_rows(p.machine, p.period, p.uptake) for p in pages if p.uptake is not None]
    return {
        "counts": pl.concat(counts) if counts else schema.empty(wbk.COUNTS_SCHEMA),
        "durations": pl.concat(durations) if durations else schema.empty(wbk.DURATIONS_SCHEMA),
        "summary": summary if summary is not None else schema.empty(overview.SUMMARY_SCHEMA),
        "uptake": pl.concat(uptake) if uptake else schema.empty(wbk.UPTAKE_SCHEMA),
    }


def start_workbook(
    scratch: Path,
    out: Path,
    studies: pl.DataFrame | str | Path | None,
    machines: Sequence[str],
    first: dt.date,
    end: dt.date,
    sheets: dict[str, pl.DataFrame],
    extra: dict[str, pl.DataFrame] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m pyschedvisu.workbook`` writing the report's workbook to ``out``.

    The small sheets (and the study table when given as a frame) go through Parquet files
    in ``scratch``, which must outlive the process. ``extra``: sheets after the others
    (the planned / performed ones).
    """
    spec: dict[str, Any] = {
        "out": str(out),
        "studies": None,
        "machines": list(machines),
        "first": first.isoformat(),
        "end": end.isoformat(),
    }
    if isinstance(studies, str | Path):
        spec["studies"] = str(studies)
    elif studies is not None:
        spec["studies"] = str(scratch / "studies.parquet")
        studies.write_parquet(spec["studies"])
    for name, frame in sheets.items():
        spec[name] = str(scratch / f"{name}.parquet")
        frame.write_parquet(spec[name])
    if extra:
        spec["extra"] = {}
        for name, frame in extra.items():
            spec["extra"][name] = str(scratch / f"extra-{name}.parquet")
            frame.write_parquet(spec["extra"][name])
    spec_path = scratch / "workbook.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "pyschedvisu.workbook", str(spec_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish_workbook(process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    """Wait for the workbook process; its error (last lines) as an OSError."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise OSError(f"the workbook took more than {timeout:.0f} s") from None
    if process.returncode != 0:
        tail = " | ".join(err.decode("utf-8", "replace").strip().splitlines()[-3:])
        raise OSError(f"the workbook could not be written: {tail}")


def render_report(
    settings: Settings,
    pages: Sequence[Page | None],
    end: dt.date,
    notes: Sequence[str] | None = None,
    *,
    studies: pl.DataFrame | str | Path | None = None,
    overview_pages: Overview | None = None,
    retrieved: Collection[dt.date] = (),
    windows: dict[str, tuple[dt.date, dt.date]] | None = None,
    generated_at: dt.datetime | None = None,
    tabs: int = KALEIDO_TABS,
    plan: PlanData | str | Path | None = None,
) -> dict[str, Any]:
    """Render the summary, the trends and ``pages`` into the PDF, HTML and Excel report.

    Returns ``{"pdf", "html" (or None), "xlsx", "pages", "skipped": [machine / period],
    "identical": [machine / period shown as a reference]}``. ``notes``: data-quality lines
    printed on every page (e.g. missing days). ``studies``: the study table (or its path):
    the summary and trends pages (unless ``overview_pages`` is given) and the workbook's
    ``studies`` sheet come from it; without it the report has neither. ``plan``: planned
    against performed (:func:`load_plan`; with a worklist configured): its summary page after
    the summary, its sheets in the workbook.
    """

    lang = settings.report.language
    real = _ordered(settings, [p for p in pages if p is not None])
    skipped = skipped_pages(settings, real, end)
    if not real:
        raise ReportError(f"no page to render for {end}: no machine has studies in any period")
    shown, aliases = identical_pages(real)
    plan_data = load_plan(settings, plan) if plan is not None else None
    if overview_pages is None and studies is not None:
        overview_pages = build_overview(settings, studies, end, retrieved, windows, plan_data)
    when = generated_at or dt.datetime.now()
    pdf_path, html_path = output_paths(settings.paths.output_dir, end, when)
    xlsx_path = pdf_path.with_suffix(".xlsx")
    title = f"{settings.report.title} – {i18n.fmt_date(end)}"
    generated = i18n.text("generated", lang, when=i18n.fmt_datetime(when))
    footer = i18n.text("saved", lang, path=str(pdf_path))
    references = [
        i18n.text("same_as", lang, machine=a.machine, period=a.period_label, other=b.period_label)
        for a, b in aliases
    ]
    front_titles: list[str] = []
    front_figs: list[dict[str, Any]] = []
    front_below: list[str] = []  # the HTML under each front page
    if overview_pages is not None:
        front_titles = [i18n.text("summary_title", lang), i18n.text("trends_title", lang)]
        front_figs = [
            json.loads(overview_pages.summary_figure),
            json.loads(overview_pages.trends_figure),
        ]
        front_below = [summary_table_html(overview_pages.summary, lang), ""]
        if overview_pages.plan_summary_figure is not None:
            front_titles.insert(1, i18n.text("plan_summary_title", lang))
            front_figs.insert(1, json.loads(overview_pages.plan_summary_figure))
            plan_html = (
                plan_summary_table_html(overview_pages.plan_summary, lang)
                if overview_pages.plan_summary is not None
                else ""
            )
            front_below.insert(1, plan_html)
    stamped: list[dict[str, Any]] = []

    # The workbook is written by a process of its own from the start: ten years of studies
    # are seconds of xlsxwriter's pure Python, which a thread would hold the GIL for while
    # this process drives Chromium and builds the HTML.
    sheets = workbook_sheets(real, overview_pages.summary if overview_pages else None)
    first = min(p.start for p in report_periods(settings, end))
    names = [settings.machine_names()[k] for k in settings.display_machines()]
    extra = plan_sheets(
        real,
        overview_pages.plan_summary if overview_pages else None,
        plan_data,
        names,
        first,
        end,
    )
    with tempfile.TemporaryDirectory(prefix="pyschedvisu-workbook-") as scratch:
        workbook = start_workbook(
            Path(scratch), xlsx_path, studies, names, first, end, sheets, extra
        )

        def prepare() -> list[dict[str, Any]]:
            extra = [*(overview_pages.overlap_notes if overview_pages else ()), *references]
            for k, fig in enumerate(front_figs):
                stamped.append(
                    figures.stamp(
                        fig,
                        generated=generated,
                        footer=footer,
                        extra_notes=[*(notes or ()), *(extra if k == 0 else ())],
                    )
                )
            for p in shown:
                for figure in (p.figure, p.uptake_figure):
                    if figure is None:
                        continue
                    stamped.append(
                        figures.stamp(
                            json.loads(figure),
                            generated=generated,
                            footer=footer,
                            extra_notes=list(notes or ()),
                        )
                    )
            return [figures.printable(f) for f in stamped]

        def html_doc() -> str | None:
            if not settings.report.html:
                return None
            k = len(front_figs)
            front = list(zip(front_titles, stamped[:k], front_below, strict=True))
            page_figs: list[dict[str, Any]] = []
            uptake_figs: list[dict[str, Any] | None] = []
            rest = iter(stamped[k:])
            for p in shown:  # each page's figure, then its uptake page's when it has one
                page_figs.append(next(rest))
                uptake_figs.append(next(rest) if p.uptake_figure else None)
            return build_html(
                shown,
                page_figs,
                title=title,
                subtitle=generated,
                lang=lang,
                front=front,
                aliases=aliases,
                workbook=xlsx_path.name,
                uptake_figs=uptake_figs,
            )

        machines = list(dict.fromkeys(p.machine for p in shown))
        periods = list(dict.fromkeys(p.period_label for p in shown))
        count = len(front_figs) + len(shown) + sum(1 for p in shown if p.uptake_figure)
        log.info(
            "rendering %d pages (%d skipped, %d identical) with kaleido",
            count,
            len(skipped),
            len(aliases),
        )
        page_pdfs, doc = _render(prepare, count, tabs, PAGE_TIMEOUT_S, html_doc)
        pdf = merge_pdf(
            page_pdfs,
            shown,
            title=title,
            subject=i18n.text("report", lang, period=", ".join(periods)).capitalize()
            + f" {i18n.text('from_to', lang, start=i18n.fmt_date(min(p.start for p in shown)), end=i18n.fmt_date(end))}",
            keywords=", ".join(["pySchedVisu", *machines, *periods]),
            front=front_titles,
            aliases=aliases,
            uptake_title=i18n.text("uptake_bookmark", lang),
        )
        try:
            atomic_write_bytes(pdf_path, pdf)
            html_out = None
            if doc is not None:
                atomic_write_bytes(html_path, doc.encode("utf-8"))
                html_out = str(html_path)
            finish_workbook(workbook)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise ReportError(
                f"cannot write the report under {settings.paths.output_dir}: {exc}"
            ) from exc
    log.info("report written: %s (%d bytes) and %s", pdf_path, len(pdf), xlsx_path.name)
    return {
        "pdf": str(pdf_path),
        "html": html_out,
        "xlsx": str(xlsx_path),
        "pages": count,
        "skipped": skipped,
        "identical": [f"{a.machine} / {a.period_label}" for a, _ in aliases],
    }
