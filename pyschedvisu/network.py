"""The network report's shell: a site's aggregates, their carrier, the network report files.

* :func:`site_aggregates`: what a site publishes of its report ending on a Friday, computed
  from its study table with the rules of its own summary and trends pages
  (:mod:`pyschedvisu_core.network`: numbers only, no study, no patient key).
* The carrier is a Prefect *table artifact* per site and week, key :func:`artifact_key`
  (``network-<site>-<end>``), created by the site's weekly run on the worker inside its
  network and kept in the Prefect server's database: any host that reaches the server reads
  it (:func:`read_aggregates`), no file or patient key crosses from one site to another. A
  weekly run retried later publishes a new version of the same key; the latest one counts.
* :func:`render_network_report`: the network report, PDF + HTML + workbook, in
  ``network.output_dir`` of the top level (one period a page, then the trends).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu import render, workbook
from pyschedvisu.config import Settings
from pyschedvisu.store import atomic_write_bytes
from pyschedvisu_core import figures, i18n, network_pages, overview, schema
from pyschedvisu_core import network as core
from pyschedvisu_core.errors import ReportError, StoreError

log = logging.getLogger("pyschedvisu.network")

#: A site's exams and slots per machine and week, as :func:`site_aggregates` gathers them.
WEEKLY_SCHEMA: dict[str, pl.DataType] = {
    "machine": pl.String(),
    "monday": pl.Date(),
    "exams": pl.Int64(),
    "slots": pl.Int64(),
}
#: First part of the key of a site's aggregates artifact.
ARTIFACT_PREFIX = "network"


def artifact_key(site: str, end: dt.date) -> str:
    """Key of the table artifact holding ``site``'s aggregates for the week ending ``end``
    (lower-case letters, digits and dashes, as Prefect wants artifact keys)."""
    return f"{ARTIFACT_PREFIX}-{site}-{end.isoformat()}"


def site_aggregates(
    settings: Settings,
    studies: str | Path | pl.DataFrame,
    end: dt.date,
    retrieved: Collection[dt.date] = (),
    windows: dict[str, tuple[dt.date, dt.date]] | None = None,
    missing_days: int = 0,
) -> pl.DataFrame:
    """What ``settings.site`` publishes for its report ending on ``end``:
    ``core.AGGREGATE_SCHEMA`` rows, the same numbers as its summary and trends pages.

    ``retrieved`` and ``windows`` as the report gets them (``render.build_page``).
    """
    if isinstance(studies, str | Path) and not Path(studies).exists():
        frame = schema.empty(schema.STUDY_SCHEMA)
    elif isinstance(studies, str | Path):
        frame = render.load_studies(studies, start=render.overview_start(settings, end), end=end)
    else:
        frame = studies
    if windows is None:
        windows = render.service_windows(frame)
    summary = overview.summary_table(frame, render.summary_items(settings, end, retrieved, windows))
    weekly = []
    for spec in render.trend_specs(settings, end, retrieved, windows):
        mine = frame.filter(pl.col("machine") == spec.machine)
        weeks = overview.weekly_trend(mine, spec, end).filter(
            pl.col("weeks_back") < overview.TREND_WEEKS
        )
        weekly.append(
            weeks.select(pl.lit(spec.machine).alias("machine"), "monday", "exams", "slots")
        )
    names = [settings.machine_names()[k] for k in settings.display_machines()]
    # a machine's type from all its studies, not only the report's periods
    seen = frame
    if isinstance(studies, str | Path) and Path(studies).exists():
        seen = pl.scan_parquet(studies).select("machine", "modalities").unique().collect()
    types = core.machine_types(seen, names, settings.network.machine_types)
    return core.site_aggregates(
        settings.site,
        end,
        summary,
        pl.concat(weekly) if weekly else pl.DataFrame(schema=WEEKLY_SCHEMA),
        types,
        missing_days=missing_days,
    )


def publish(settings: Settings, aggregates: pl.DataFrame, end: dt.date) -> str:
    """Create the table artifact of ``aggregates`` (inside a flow run); returns its key."""
    from prefect.artifacts import create_table_artifact

    key = artifact_key(settings.site, end)
    create_table_artifact(
        core.to_records(aggregates),
        key=key,
        description=(
            f"Site {settings.site}: numbers of its report ending {end.isoformat()} for the "
            "network report (per machine and period, and per week; no patient data)"
        ),
    )
    return key


def read_aggregates(sites: Sequence[str], end: dt.date) -> dict[str, pl.DataFrame]:
    """The latest aggregates each of ``sites`` published for the week ending ``end``, read
    from the Prefect server (sites that published none are absent).

    Raises :class:`ReportError` naming the site whose artifact cannot be read.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    keys = {artifact_key(site, end): site for site in sites}
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))),
            sort=ArtifactSort.CREATED_DESC,
        )
    out: dict[str, pl.DataFrame] = {}
    for artifact in found:  # newest first: the first of each key is its latest version
        site = keys.get(str(artifact.key))
        if site is None or site in out:
            continue
        out[site] = parse_artifact(site, end, artifact.data)
    return {site: out[site] for site in sites if site in out}


def parse_artifact(site: str, end: dt.date, data: Any) -> pl.DataFrame:
    """A site's aggregates from its artifact's data (the JSON text of a table artifact)."""
    try:
        rows = json.loads(data) if isinstance(data, str) else data
        frame = core.from_records(rows)
    except (ValueError, TypeError) as exc:
        raise ReportError(f"site {site}: its numbers for {end} cannot be read ({exc})") from exc
    wrong = frame.filter((pl.col("site") != site) | (pl.col("end") != end))
    if wrong.height:
        raise ReportError(
            f"site {site}: its artifact {artifact_key(site, end)} holds rows of another site "
            f"or week ({wrong['site'][0]}, {wrong['end'][0]})"
        )
    return frame


def output_paths(output_dir: Path, end: dt.date, generated_at: dt.datetime) -> tuple[Path, ...]:
    """``<output_dir>/<YYYY>/pyschedvisu_network_<end>_<generated>`` ``.pdf``, ``.html``, ``.xlsx``."""
    stem = f"pyschedvisu_network_{end.isoformat()}_{generated_at:%Y%m%d-%H%M%S}"
    folder = Path(output_dir) / f"{end.year:04d}"
    return tuple(folder / f"{stem}.{ext}" for ext in ("pdf", "html", "xlsx"))


def _html_table(table: pl.DataFrame, lang: str) -> str:
    header, printed = network_pages.table_cells(table, lang)
    keys = [
        None,
        None,
        None,
        "exams",
        "slots",
        "utilisation_pct",
        "gaps",
        "median_duration_s",
        "retakes",
        "no_shows",
        "change_pct",
    ]
    rows = []
    for r, texts in zip(table.iter_rows(named=True), printed, strict=True):
        texts = [str(r["machine_type"]), *texts[1:]]  # every row names its type here
        rows.append(
            [(t, render._num(r[k]) if k else None) for t, k in zip(texts, keys, strict=True)]
        )
    return f'<div class="tables">{render.html_table(header, rows)}</div>'


def write_workbook(path: Path, sheets: Mapping[str, pl.DataFrame]) -> None:
    """The network workbook (one filterable table a sheet), written atomically."""
    workbook.write_tables(path, list(sheets.items()))


def render_network_report(
    settings: Settings,
    aggregates: Mapping[str, pl.DataFrame],
    sites: Sequence[str],
    end: dt.date,
    notes: Sequence[str] = (),
    generated_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The network report of ``aggregates`` (site -> its rows), ``sites`` in config order:
    PDF, HTML and workbook in ``settings.network.output_dir``.

    Returns ``{"pdf", "html", "xlsx", "pages", "sites"}``. Raises :class:`ReportError` when no
    site has numbers, or the files cannot be written.
    """
    present = [s for s in sites if s in aggregates]
    if not present:
        raise ReportError(f"no site has numbers for the week ending {end}: no network report")
    lang = settings.report.language
    rows = pl.concat([aggregates[s] for s in present])
    table = core.network_table(rows, present)
    trend = core.network_trend(rows, present)
    title = settings.network.title
    pages = network_pages.period_pages(table, title=title, end=end, lang=lang, notes=notes)
    pages += network_pages.trends_pages(trend, title=title, end=end, lang=lang)
    when = generated_at or dt.datetime.now()
    pdf_path, html_path, xlsx_path = output_paths(settings.network.output_dir, end, when)
    generated = i18n.text("generated", lang, when=i18n.fmt_datetime(when))
    footer = i18n.text("saved", lang, path=str(pdf_path))
    stamped = [figures.stamp(p.figure, generated=generated, footer=footer) for p in pages]
    pdfs = render.render_pdf_pages([figures.printable(f) for f in stamped])
    full_title = f"{title} – {i18n.text('network_title', lang)} – {i18n.fmt_date(end)}"
    pdf = render.merge_pdf(
        pdfs,
        [],
        title=full_title,
        subject=i18n.text("network_subtitle", lang, end=i18n.fmt_date(end)),
        keywords=", ".join(["pySchedVisu", i18n.text("network_title", lang), *present]),
        front=[p.title for p in pages],
    )
    # the HTML shows a period's whole table (real rows, sortable) under its first page
    front = [
        (
            page.title,
            fig,
            _html_table(table.filter(pl.col("period") == page.period), lang)
            if page.period is not None and page.first
            else "",
        )
        for page, fig in zip(pages, stamped, strict=True)
    ]
    doc = render.build_html(
        [],
        [],
        title=full_title,
        subtitle=generated,
        lang=lang,
        front=front,
        workbook=xlsx_path.name,
    )
    try:
        atomic_write_bytes(pdf_path, pdf)
        atomic_write_bytes(html_path, doc.encode("utf-8"))
        write_workbook(xlsx_path, {"network": table, "trend": trend, "sites": rows})
    except (OSError, pl.exceptions.PolarsError, StoreError) as exc:
        raise ReportError(
            f"cannot write the network report under {settings.network.output_dir}: {exc}"
        ) from exc
    log.info("network report written: %s (%d pages, sites %s)", pdf_path, len(pages), present)
    return {
        "pdf": str(pdf_path),
        "html": str(html_path),
        "xlsx": str(xlsx_path),
        "pages": len(pages),
        "sites": present,
    }


__all__ = [
    "artifact_key",
    "output_paths",
    "parse_artifact",
    "publish",
    "read_aggregates",
    "render_network_report",
    "site_aggregates",
    "write_workbook",
]
