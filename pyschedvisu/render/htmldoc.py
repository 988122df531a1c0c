"""The self-contained HTML report: every page with its tables as real, sortable HTML tables."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from pyschedvisu.render.pages import (
    Page,
)
from pyschedvisu_core import i18n, overview, planmatch, uptake_page
from pyschedvisu_core import uptake as upt

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
    header = [i18n.text(k, lang) for k in uptake_page.TABLE_KEYS]

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
