"""The report: the pages ordered, rendered to PDF and HTML, and its workbook written."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu.render.htmldoc import build_html, plan_summary_table_html, summary_table_html
from pyschedvisu.render.pages import (
    Page,
    PlanData,
    load_plan,
    report_periods,
)
from pyschedvisu.render.pdf import KALEIDO_TABS, PAGE_TIMEOUT_S, _render, merge_pdf
from pyschedvisu.render.summary import Overview, build_overview
from pyschedvisu.store import atomic_write_bytes
from pyschedvisu_core import figures, i18n, overview, schema
from pyschedvisu_core.errors import ReportError

log = logging.getLogger("pyschedvisu.render")


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


class WorkbookJob:
    """The report's workbook, written by ``python -m pyschedvisu.workbook`` in a process of
    its own.

    Ten years of studies are seconds of xlsxwriter's pure Python, which a thread would hold
    the GIL for while the pages are built and Chromium is driven. The ``studies`` sheet needs
    only the study table, so the process starts on it at once (before the pages exist, when
    the caller starts the job early); :meth:`finish` then hands it the page sheets and the
    workbook's name, and waits. Use as a context manager: leaving it unfinished abandons the
    workbook (nothing is left in the output folder).
    """

    def __init__(
        self,
        settings: Settings,
        studies: pl.DataFrame | str | Path | None,
        end: dt.date,
    ) -> None:
        self.end = end
        self.folder = output_paths(settings.paths.output_dir, end, dt.datetime.now())[0].parent
        self._scratch = tempfile.TemporaryDirectory(prefix="pyschedvisu-workbook-")
        scratch = Path(self._scratch.name)
        first = min(p.start for p in report_periods(settings, end))
        spec: dict[str, Any] = {
            "folder": str(self.folder),
            "studies": None,
            "machines": [settings.machine_names()[k] for k in settings.display_machines()],
            "first": first.isoformat(),
            "end": end.isoformat(),
        }
        if isinstance(studies, str | Path):
            spec["studies"] = str(studies)
        elif studies is not None:
            spec["studies"] = str(scratch / "studies.parquet")
            studies.write_parquet(spec["studies"])
        spec_path = scratch / "workbook.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "pyschedvisu.workbook", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # it fills the cores the page building and Chromium leave idle, never slows them
        # (not on every system: only slower there)
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, self._process.pid, 10)

    def hand_over(
        self,
        out: Path,
        sheets: dict[str, pl.DataFrame],
        extra: dict[str, pl.DataFrame] | None = None,
    ) -> None:
        """Give the process ``sheets`` then ``extra`` (the planned / performed ones), to
        write after ``studies``, and the workbook's path ``out`` (in :attr:`folder`); it
        goes on alone (:meth:`wait` for it)."""
        process = self._process
        if process is None or process.stdin is None:
            raise OSError("the workbook was already handed its sheets, or abandoned")
        scratch = Path(self._scratch.name)
        rest: dict[str, Any] = {"out": str(out)}
        for name, frame in sheets.items():
            rest[name] = str(scratch / f"{name}.parquet")
            frame.write_parquet(rest[name])
        if extra:
            rest["extra"] = {}
            for name, frame in extra.items():
                rest["extra"][name] = str(scratch / f"extra-{name}.parquet")
                frame.write_parquet(rest["extra"][name])
        try:
            process.stdin.write((json.dumps(rest) + "\n").encode())
            process.stdin.close()
        except BrokenPipeError:  # it has stopped already: wait() says why
            pass
        process.stdin = None  # communicate() would flush it

    def wait(self, timeout: float = 600) -> None:
        """Wait for the workbook handed its sheets; its error (last lines) as an OSError."""
        process, self._process = self._process, None
        if process is None:
            raise OSError("the workbook was already finished or abandoned")
        try:
            _, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise OSError(f"the workbook took more than {timeout:.0f} s") from None
        finally:
            self._scratch.cleanup()
        if process.returncode != 0:
            tail = " | ".join(err.decode("utf-8", "replace").strip().splitlines()[-3:])
            raise OSError(f"the workbook could not be written: {tail}")

    def finish(
        self,
        out: Path,
        sheets: dict[str, pl.DataFrame],
        extra: dict[str, pl.DataFrame] | None = None,
        timeout: float = 600,
    ) -> None:
        """:meth:`hand_over` then :meth:`wait`."""
        self.hand_over(out, sheets, extra)
        self.wait(timeout)

    def abandon(self) -> None:
        """Stop the process without writing the workbook (a no-op once finished)."""
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                try:  # an empty line: it abandons the workbook and cleans up
                    process.stdin.write(b"\n")
                    process.stdin.close()
                except BrokenPipeError:
                    pass
                process.stdin = None
            else:  # it was handed its sheets and the report failed meanwhile
                process.terminate()  # it removes its temporary file on SIGTERM
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        self._scratch.cleanup()

    def __enter__(self) -> WorkbookJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abandon()


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
    workbook: WorkbookJob | None = None,
) -> dict[str, Any]:
    """Render the summary, the trends and ``pages`` into the PDF, HTML and Excel report.

    Returns ``{"pdf", "html" (or None), "xlsx", "pages", "skipped": [machine / period],
    "identical": [machine / period shown as a reference]}``. ``notes``: data-quality lines
    printed on every page (e.g. missing days). ``studies``: the study table (or its path):
    the summary and trends pages (unless ``overview_pages`` is given) and the workbook's
    ``studies`` sheet come from it; without it the report has neither. ``plan``: planned
    against performed (:func:`load_plan`; with a worklist configured): its summary page after
    the summary, its sheets in the workbook. ``workbook``: the workbook started earlier on
    ``studies`` (:class:`WorkbookJob`, same ``end``); by default it starts here.
    """
    if workbook is not None and workbook.end != end:
        raise ValueError(f"the workbook was started for {workbook.end}, not {end}")
    with workbook or WorkbookJob(settings, studies, end) as job:
        return _render_report(
            settings,
            pages,
            end,
            notes,
            studies,
            overview_pages,
            retrieved,
            windows,
            generated_at,
            tabs,
            plan,
            job,
        )


def _render_report(
    settings: Settings,
    pages: Sequence[Page | None],
    end: dt.date,
    notes: Sequence[str] | None,
    studies: pl.DataFrame | str | Path | None,
    overview_pages: Overview | None,
    retrieved: Collection[dt.date],
    windows: dict[str, tuple[dt.date, dt.date]] | None,
    generated_at: dt.datetime | None,
    tabs: int,
    plan: PlanData | str | Path | None,
    workbook: WorkbookJob,
) -> dict[str, Any]:

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
    try:
        workbook.hand_over(xlsx_path, sheets, extra)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ReportError(f"cannot write the workbook {xlsx_path}: {exc}") from exc

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
        workbook.wait()
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
