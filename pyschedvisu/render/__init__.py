"""The report shell: pages from the study table, PDF through kaleido + Chromium, HTML.

* :func:`build_page` reads the studies of one machine and period and returns a :class:`Page`
  (the plotly figure as JSON + metadata), or None when the machine has no study then.
* :func:`render_report` renders every page through ONE kaleido browser (a few tabs), merges
  them with pypdf (bookmarks report -> machine -> period, metadata, identical objects
  shared) and writes one self-contained HTML file next to the PDF.

Kaleido 1 drives a real Chromium: Debian's ``/usr/bin/chromium`` is used (the sandbox is off,
which is what choreographer does by default and what running as root needs). MathJax is
disabled: kaleido would otherwise load it from a CDN and stall without network.

Modules: :mod:`.pages` (one page), :mod:`.summary` (the summary and trends pages),
:mod:`.pdf` (kaleido + Chromium, the pypdf merge), :mod:`.htmldoc` (the HTML file) and
:mod:`.report` (the whole report and its workbook).
"""

from __future__ import annotations

from pyschedvisu.render.htmldoc import (
    Cell,
    build_html,
    html_table,
    page_tables_html,
    plan_summary_table_html,
    plan_table_html,
    summary_table_html,
    uptake_table_html,
)
from pyschedvisu.render.htmldoc import (
    _num as _num,
)
from pyschedvisu.render.pages import (
    Page,
    PlanData,
    build_page,
    figure_json,
    final_days,
    load_plan,
    load_studies,
    page_spec,
    report_periods,
    service_window,
    service_windows,
)
from pyschedvisu.render.pdf import (
    CHROMIUM,
    KALEIDO_TABS,
    PAGE_TIMEOUT_S,
    chromium_path,
    merge_pdf,
    render_pdf_pages,
)
from pyschedvisu.render.report import (
    WorkbookJob,
    identical_pages,
    output_paths,
    plan_sheets,
    render_report,
    skipped_pages,
    workbook_sheets,
)
from pyschedvisu.render.summary import (
    Overview,
    build_overview,
    overview_start,
    summary_items,
    summary_periods,
    trend_period,
    trend_specs,
)

__all__ = [
    "CHROMIUM",
    "KALEIDO_TABS",
    "PAGE_TIMEOUT_S",
    "Cell",
    "Overview",
    "Page",
    "PlanData",
    "WorkbookJob",
    "build_html",
    "build_overview",
    "build_page",
    "chromium_path",
    "figure_json",
    "final_days",
    "html_table",
    "identical_pages",
    "load_plan",
    "load_studies",
    "merge_pdf",
    "output_paths",
    "overview_start",
    "page_spec",
    "page_tables_html",
    "plan_sheets",
    "plan_summary_table_html",
    "plan_table_html",
    "render_pdf_pages",
    "render_report",
    "report_periods",
    "service_window",
    "service_windows",
    "skipped_pages",
    "summary_items",
    "summary_periods",
    "summary_table_html",
    "trend_period",
    "trend_specs",
    "uptake_table_html",
    "workbook_sheets",
]
