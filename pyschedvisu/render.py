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
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu import __version__
from pyschedvisu.config import Settings, minify_machine
from pyschedvisu.store import SeriesStore, atomic_write_bytes, conform, read_manifest
from pyschedvisu_core import figures, i18n, schema
from pyschedvisu_core.errors import ReportError, StoreError
from pyschedvisu_core.periods import Period, make_periods
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

    @property
    def title(self) -> str:
        return f"{self.machine} – {self.period_label}"


# -- pages -------------------------------------------------------------------------------


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
    """Days from ``start`` to ``end`` retrieved for good: final in the series store.

    A day still within ``retrieve.final_after_hours`` may yet change: it counts its slots
    only once final (or when it has studies). Unreadable manifests count as not retrieved.
    """
    store = SeriesStore(data_dir)
    out: list[dt.date] = []
    for year in range(start.year, end.year + 1):
        for path in sorted((store.root / f"{year:04d}").glob("*.manifest.json")):
            try:
                day = dt.date.fromisoformat(path.name.split(".")[0])
            except ValueError:
                continue
            if not start <= day <= end:
                continue
            try:
                man = read_manifest(path)
            except StoreError as exc:
                log.warning("%s", exc)
                continue
            if isinstance(man, dict) and man.get("final", True):
                out.append(day)
    return out


def page_spec(
    settings: Settings,
    machine_key: str,
    period: Period,
    *,
    retrieved: Collection[dt.date] = (),
    window: tuple[dt.date | None, dt.date | None] = (None, None),
) -> figures.PageSpec:
    """Plain page values for the core, from the settings.

    ``window``: the machine's service window (:func:`service_window`). A period starting
    before it is trimmed to it (its bins would be empty columns), and says so.
    """
    draw = settings.draw.machine[machine_key]
    images = [*settings.report.logos]
    if machine_key in settings.report.machine_pictures:
        images.append(settings.report.machine_pictures[machine_key])
    logos = tuple(uri for uri in (_data_uri(Path(p)) for p in images) if uri)
    first, last = window
    start = period.start
    if first is not None and period.start < first <= period.end:
        start = first
    days = tuple(settings.business_days(start, period.end))
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
) -> Page | None:
    """The page of ``machine`` (display or minified name) for ``period`` ending on ``end``.

    ``studies``: the study table or the path of ``studies.parquet``. ``retrieved``: the days
    final in the series store (:func:`final_days`); ``windows``: :func:`service_windows` of
    the whole table (read here when not given). None when the machine has no study on the
    business days of the period.
    """
    key = _machine_key(settings, machine)
    name = settings.machine_names()[key]
    (per,) = report_periods(settings, end, [period])
    if windows is None:
        windows = service_windows(studies)
    spec = page_spec(
        settings, key, per, retrieved=retrieved, window=service_window(settings, key, windows)
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
    try:
        numbers = figures.page_numbers(frame, spec)
        payload = figure_json(figures.page_dict(frame, spec, numbers))
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
) -> bytes:
    """Merge single-page PDFs; outline ``title`` -> machine -> period; metadata; compression."""
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
    machine_items: dict[str, Any] = {}
    for index, page in enumerate(pages):
        if page.machine not in machine_items:
            machine_items[page.machine] = writer.add_outline_item(
                title=page.machine, page_number=index, parent=root
            )
        writer.add_outline_item(
            title=page.period_label, page_number=index, parent=machine_items[page.machine]
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
nav a:hover{color:#fff}main{margin-left:230px;padding:16px}
section{background:#fff;width:794px;margin:0 auto 24px;box-shadow:0 1px 4px rgba(0,0,0,.2)}
section h2{font-size:13px;margin:0;padding:6px 10px;background:#f1f4f7;color:#5b6770}
.fig{width:794px;height:1123px}
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
})();
"""


def _script_json(data: str) -> str:
    # Inside <script type="application/json"> only "</" could end the element early.
    return data.replace("</", "<\\/")


def build_html(
    pages: Sequence[Page], figs: Sequence[dict[str, Any]], *, title: str, subtitle: str, lang: str
) -> str:
    """One self-contained HTML file: plotly.js inlined once, every page, a machine/period menu."""
    from plotly.offline import get_plotlyjs

    nav: list[str] = []
    current = None
    for i, page in enumerate(pages):
        if page.machine != current:
            current = page.machine
            nav.append(f"<h2>{html.escape(page.machine)}</h2>")
        nav.append(f'<a href="#page-{i}">{html.escape(page.period_label)}</a>')
    sections = []
    data = []
    for i, (page, fig) in enumerate(zip(pages, figs, strict=True)):
        sections.append(
            f'<section id="page-{i}"><h2>{html.escape(page.title)}</h2>'
            f'<div class="fig" data-src="fig-{i}"></div></section>'
        )
        data.append(
            f'<script type="application/json" id="fig-{i}">{_script_json(json.dumps(fig, separators=(",", ":")))}</script>'
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
    """``<output_dir>/<YYYY>/pyschedvisu_report_<end>_<YYYYmmdd-HHMMSS>.pdf`` and ``.html``."""
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


def render_report(
    settings: Settings,
    pages: Sequence[Page | None],
    end: dt.date,
    notes: Sequence[str] | None = None,
    *,
    generated_at: dt.datetime | None = None,
    tabs: int = KALEIDO_TABS,
) -> dict[str, Any]:
    """Render ``pages`` into the PDF (and HTML) report.

    Returns ``{"pdf": str, "html": str | None, "pages": int, "skipped": [machine / period]}``.
    ``notes``: data-quality lines printed on every page (e.g. missing days).
    """
    lang = settings.report.language
    real = _ordered(settings, [p for p in pages if p is not None])
    skipped = skipped_pages(settings, real, end)
    if not real:
        raise ReportError(f"no page to render for {end}: no machine has studies in any period")
    when = generated_at or dt.datetime.now()
    pdf_path, html_path = output_paths(settings.paths.output_dir, end, when)
    title = f"{settings.report.title} – {i18n.fmt_date(end)}"
    stamped: list[dict[str, Any]] = []

    def prepare() -> list[dict[str, Any]]:
        stamped.extend(
            figures.stamp(
                json.loads(p.figure),
                generated=i18n.text("generated", lang, when=i18n.fmt_datetime(when)),
                footer=i18n.text("saved", lang, path=str(pdf_path)),
                extra_notes=list(notes or ()),
            )
            for p in real
        )
        return [figures.printable(f) for f in stamped]

    def html_doc() -> str | None:
        if not settings.report.html:
            return None
        return build_html(
            real,
            stamped,
            title=title,
            subtitle=i18n.text("generated", lang, when=i18n.fmt_datetime(when)),
            lang=lang,
        )

    machines = list(dict.fromkeys(p.machine for p in real))
    periods = list(dict.fromkeys(p.period_label for p in real))
    log.info("rendering %d pages (%d skipped) with kaleido", len(real), len(skipped))
    page_pdfs, doc = _render(prepare, len(real), tabs, PAGE_TIMEOUT_S, html_doc)
    pdf = merge_pdf(
        page_pdfs,
        real,
        title=title,
        subject=i18n.text("report", lang, period=", ".join(periods)).capitalize()
        + f" {i18n.text('from_to', lang, start=i18n.fmt_date(min(p.start for p in real)), end=i18n.fmt_date(end))}",
        keywords=", ".join(["pySchedVisu", *machines, *periods]),
    )
    try:
        atomic_write_bytes(pdf_path, pdf)
        html_out = None
        if doc is not None:
            atomic_write_bytes(html_path, doc.encode("utf-8"))
            html_out = str(html_path)
    except OSError as exc:
        raise ReportError(
            f"cannot write the report under {settings.paths.output_dir}: {exc}"
        ) from exc
    log.info("report written: %s (%d bytes)", pdf_path, len(pdf))
    return {"pdf": str(pdf_path), "html": html_out, "pages": len(real), "skipped": skipped}
