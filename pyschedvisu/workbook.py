"""The report's Excel workbook: the numbers of every page, reusable.

``pyschedvisu_report_<end>_<generated>.xlsx`` next to the PDF, with five sheets:

* ``studies``: the study table over the report's longest period (configured machines, in
  configuration order), without the patient key nor the accession number;
* ``counts``: one row per machine x period x bin of the count tables (``COUNTS_SCHEMA``);
* ``durations``: the duration tables (``DURATIONS_SCHEMA``), gaps included;
* ``summary``: the summary page (``overview.SUMMARY_SCHEMA``);
* ``uptake``: the "Injection → scan" pages of the PET machines (``UPTAKE_SCHEMA``: one row
  per machine x period x description, then its TOTAL; minutes and MBq as on the page).

and, with a worklist configured (planned against performed), three more:

* ``plan_summary``: the planned / performed summary page (``overview.PLAN_SUMMARY_SCHEMA``);
* ``plan``: the planned / performed table of every page (``PLAN_SCHEMA``);
* ``plan_matches``: every planned step and unplanned study over the report's longest period
  (``PLAN_MATCH_COLUMNS``: no accession number, no step key).

Written with xlsxwriter (polars' Excel engine) to a temporary file renamed into place. The
small sheets go through ``polars.DataFrame.write_excel`` (a filterable table each); the
``studies`` sheet is written column by column with the same engine (one typed writer a
column), dates as Excel dates: polars' cell-by-cell formatting took 19 s for ten years (104,520
rows), this 7.7 s. The report starts it before its pages exist (``render.WorkbookJob``: this
module run as a process, the page sheets handed over on its standard input).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu.store import FILE_MODE
from pyschedvisu_core import schedule as sch
from pyschedvisu_core import schema
from pyschedvisu_core.planmatch import PLAN_MATCH_SCHEMA
from pyschedvisu_core.uptake import UPTAKE_TABLE_SCHEMA

#: The ``counts`` sheet.
COUNTS_SCHEMA: dict[str, pl.DataType] = {
    "machine": pl.String(),
    "period": pl.String(),
    "bin_label": pl.String(),
    "first_day": pl.Date(),
    "last_day": pl.Date(),
    "days": pl.Int64(),
    "slots": pl.Int64(),
    "exams": pl.Int64(),
    "gaps": pl.Int64(),
    "utilisation_pct": pl.Float64(),
    "no_activity_days": pl.Int64(),
    "no_data_days": pl.Int64(),
}
#: The ``durations`` sheet (``take``: 1 or 2 for descriptions split by take, else null).
DURATIONS_SCHEMA: dict[str, pl.DataType] = {
    "machine": pl.String(),
    "period": pl.String(),
    "description": pl.String(),
    "take": pl.Int64(),
    "n": pl.Int64(),
    "mean_s": pl.Float64(),
    "median_s": pl.Float64(),
    "p90_s": pl.Float64(),
    "min_s": pl.Float64(),
    "max_s": pl.Float64(),
}
#: Columns of the ``studies`` sheet: the study table without the patient key (nor the
#: accession number, an identifier of the order: the matching needs it, a reader does not).
STUDY_COLUMNS = [c for c in schema.STUDY_SCHEMA if c not in ("patient_key", "accession_number")]
#: The ``plan`` sheet: a page's planned / performed table (``planmatch.plan_table``).
PLAN_SCHEMA: dict[str, pl.DataType] = {
    "machine": pl.String(),
    "period": pl.String(),
    "description": pl.String(),  # a label, or TOTAL
    "planned": pl.Int64(),
    "performed": pl.Int64(),
    "no_shows": pl.Int64(),
    "unplanned": pl.Int64(),
    "added_same_day": pl.Int64(),
    "realised_pct": pl.Float64(),
    "util_plan_pct": pl.Float64(),
    "delay_median_s": pl.Float64(),
    "delay_p90_s": pl.Float64(),
}
#: Columns of the ``plan_matches`` sheet (``planmatch.PLAN_MATCH_SCHEMA`` without identifiers
#: of the order: accession number, step key).
PLAN_MATCH_COLUMNS = [c for c in PLAN_MATCH_SCHEMA if c not in ("accession_number", "step_key")]
#: The ``uptake`` sheet (``uptake.uptake_table`` per page; times in seconds as the table).
UPTAKE_SCHEMA: dict[str, pl.DataType] = {
    "machine": pl.String(),
    "period": pl.String(),
    "description": pl.String(),
    **{k: v for k, v in UPTAKE_TABLE_SCHEMA.items() if k != "label"},
}

_EXCEL_EPOCH = dt.datetime(1899, 12, 30)


def counts_rows(machine: str, period: str, counts: pl.DataFrame) -> pl.DataFrame:
    """The ``counts`` rows of one page's :func:`schedule.count_table` (its bins only)."""
    return (
        counts.filter(pl.col("row") == "bin")
        .select(
            machine=pl.lit(machine),
            period=pl.lit(period),
            bin_label=pl.col("label"),
            first_day="first_day",
            last_day="last_day",
            days="days",
            slots="slots",
            exams="exams",
            gaps="gaps",
            utilisation_pct="util",
            no_activity_days="no_activity",
            no_data_days="no_data",
        )
        .cast(COUNTS_SCHEMA)  # type: ignore[arg-type]
    )


def durations_rows(machine: str, period: str, durations: pl.DataFrame) -> pl.DataFrame:
    """The ``durations`` rows of one page's :func:`schedule.duration_table`."""
    take = pl.col("label").str.extract(r" \[([12])\]$").cast(pl.Int64)
    return (
        durations.select(
            machine=pl.lit(machine),
            period=pl.lit(period),
            description=pl.col("label").str.replace(r" \[[12]\]$", ""),
            take=take,
            n="n",
            mean_s="mean_s",
            median_s="median_s",
            p90_s="p90_s",
            min_s="min_s",
            max_s="max_s",
        )
        .cast(DURATIONS_SCHEMA)  # type: ignore[arg-type]
        .with_columns(
            description=pl.when(pl.col("description") == sch.GAPS)
            .then(pl.lit(sch.GAPS))
            .otherwise(pl.col("description"))
        )
    )


def uptake_rows(machine: str, period: str, table: pl.DataFrame) -> pl.DataFrame:
    """The ``uptake`` rows of one page's :func:`uptake.uptake_table`."""
    return table.select(
        pl.lit(machine).alias("machine"),
        pl.lit(period).alias("period"),
        pl.col("label").alias("description"),
        *(pl.col(k) for k in UPTAKE_TABLE_SCHEMA if k != "label"),
    ).cast(UPTAKE_SCHEMA)  # type: ignore[arg-type]


def plan_rows(machine: str, period: str, table: pl.DataFrame) -> pl.DataFrame:
    """The ``plan`` rows of one page's planned / performed table."""
    return (
        table.select(
            machine=pl.lit(machine),
            period=pl.lit(period),
            description=pl.col("label"),
            **{k: pl.col(k) for k in list(PLAN_SCHEMA)[3:]},
        ).cast(PLAN_SCHEMA)  # type: ignore[arg-type]
    )


def plan_match_rows(
    matches: pl.DataFrame, machines: Sequence[str], first: dt.date, end: dt.date
) -> pl.DataFrame:
    """Plan matches of the configured ``machines`` from ``first`` to ``end``, by machine, date
    and time, without identifiers of the order."""
    rank = {m: i for i, m in enumerate(machines)}
    return (
        matches.filter(
            pl.col("machine").is_in(list(machines)) & pl.col("date").is_between(first, end)
        )
        .with_columns(_rank=pl.col("machine").replace_strict(rank, return_dtype=pl.Int64))
        .with_columns(_t=pl.coalesce("scheduled_start", "actual_start"))
        .sort("_rank", "date", "_t")
        .select(PLAN_MATCH_COLUMNS)
    )


def studies_rows(studies: pl.DataFrame, machines: Sequence[str]) -> pl.DataFrame:
    """Studies of the configured ``machines`` (display names, in that order), by machine,
    date and start, without the patient key."""
    rank = {m: i for i, m in enumerate(machines)}
    for name, dtype in schema.STUDY_SCHEMA.items():  # tables written before a column existed
        if name not in studies.columns:
            studies = studies.with_columns(pl.lit(None, dtype=dtype).alias(name))
    return (
        studies.filter(pl.col("machine").is_in(list(machines)))
        .with_columns(_rank=pl.col("machine").replace_strict(rank, return_dtype=pl.Int64))
        .sort("_rank", "date", "start", "study_key")
        .select(STUDY_COLUMNS)
    )


def _excel_serial(col: str, dtype: pl.DataType) -> pl.Expr:
    value = pl.col(col).cast(pl.Datetime("us")) if dtype == pl.Date() else pl.col(col)
    return ((value - pl.lit(_EXCEL_EPOCH)).dt.total_microseconds() / 86_400e6).alias(col)


def _write_studies(wb: Any, studies: pl.DataFrame) -> None:
    ws = wb.add_worksheet("studies")
    bold = wb.add_format({"bold": True, "bg_color": "#dde4ea"})
    formats = {
        pl.Date(): wb.add_format({"num_format": "yyyy-mm-dd"}),
        pl.Datetime("us"): wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
    }
    ws.write_row(0, 0, studies.columns, bold)
    ws.freeze_panes(1, 0)
    for j, (name, dtype) in enumerate(studies.schema.items()):
        fmt = formats.get(dtype)
        width = 20 if fmt is not None else 14
        if name in ("study_uid", "study_key", "study_descriptions", "protocol_names"):
            width = 34
        ws.set_column(j, j, width, fmt)
        values = (
            studies.select(_excel_serial(name, dtype)).to_series()
            if fmt is not None
            else studies[name]
        )
        if values.null_count() == values.len():
            continue
        # One typed writer a column: write_column's per-cell type dispatch was a third of
        # the sheet's time; empty cells are left unwritten (what it does for None too).
        write = (
            ws.write_string
            if values.dtype == pl.String()
            else ws.write_boolean
            if values.dtype == pl.Boolean()
            else ws.write_number
        )
        for i, value in enumerate(values.to_list(), start=1):
            if value is not None:
                write(i, j, value)
    if studies.height:
        ws.autofilter(0, 0, studies.height, studies.width - 1)


def write_workbook(
    path: Path,
    *,
    studies: pl.DataFrame,
    counts: pl.DataFrame,
    durations: pl.DataFrame,
    summary: pl.DataFrame,
    uptake: pl.DataFrame | None = None,
    extra: Mapping[str, pl.DataFrame] | None = None,
) -> None:
    """Write the sheets (``studies``, ``counts``, ``durations``, ``summary``, ``uptake`` when
    given, then the ``extra`` ones in order) to ``path`` atomically (temp file in its folder,
    then rename)."""
    sheets = page_sheets(counts, durations, summary, uptake, extra)
    write_tables(path, sheets, studies=studies.select(STUDY_COLUMNS))


def write_tables(
    path: Path,
    sheets: Sequence[tuple[str, pl.DataFrame]],
    *,
    studies: pl.DataFrame | None = None,
) -> None:
    """Write ``studies`` (when given, first, column by column) then one filterable table a
    sheet to ``path`` atomically (temp file in its folder, then rename)."""
    write_tables_when_ready(path.parent, lambda: (path, sheets), studies=studies)


def write_tables_when_ready(
    folder: Path,
    ready: Callable[[], tuple[Path, Sequence[tuple[str, pl.DataFrame]]] | None],
    *,
    studies: pl.DataFrame | None = None,
) -> Path | None:
    """:func:`write_tables` in two steps: the ``studies`` sheet first, then ``ready()`` gives
    the workbook's path (in ``folder``) and its other sheets, which are written and the file
    renamed into place; returns that path. ``ready()`` returning None abandons the workbook
    (nothing is left in ``folder``; returns None).

    The ``studies`` sheet of ten years is seconds of work that need nothing but the study
    table: the report starts it before its pages exist (see ``render.WorkbookJob``).
    """
    import xlsxwriter

    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pyschedvisu-", suffix=".xlsx.tmp")
    os.close(fd)
    try:
        wb = xlsxwriter.Workbook(tmp, {"strings_to_numbers": False, "strings_to_urls": False})
        if studies is not None:
            _write_studies(wb, studies)
        rest = ready()
        if rest is None:
            Path(tmp).unlink(missing_ok=True)
            return None
        path, sheets = rest
        for name, frame in sheets:
            frame.write_excel(
                wb,
                name,
                table_style="Table Style Light 9",
                float_precision=1,
                freeze_panes=(1, 0),
                column_widths=16,
            )
        wb.close()
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def report_studies(
    studies: pl.DataFrame | str | Path | None,
    machines: Sequence[str],
    first: dt.date,
    end: dt.date,
) -> pl.DataFrame:
    """The ``studies`` sheet: the studies of ``machines`` from ``first`` to ``end`` (the table
    or its path; None: an empty sheet), without the patient key."""
    if studies is None:
        table = schema.empty(schema.STUDY_SCHEMA)
    else:
        lf = pl.scan_parquet(studies) if isinstance(studies, str | Path) else studies.lazy()
        table = lf.filter(pl.col("date").is_between(first, end)).collect()
    return studies_rows(table, machines).select(STUDY_COLUMNS)


def page_sheets(
    counts: pl.DataFrame,
    durations: pl.DataFrame,
    summary: pl.DataFrame,
    uptake: pl.DataFrame | None = None,
    extra: Mapping[str, pl.DataFrame] | None = None,
) -> list[tuple[str, pl.DataFrame]]:
    """The sheets after ``studies``, in their order."""
    sheets = [("counts", counts), ("durations", durations), ("summary", summary)]
    sheets += [("uptake", uptake)] if uptake is not None else []
    return sheets + list((extra or {}).items())


def write_report_workbook(
    path: Path,
    studies: pl.DataFrame | str | Path | None,
    machines: Sequence[str],
    first: dt.date,
    end: dt.date,
    counts: pl.DataFrame,
    durations: pl.DataFrame,
    summary: pl.DataFrame,
    uptake: pl.DataFrame | None = None,
    extra: Mapping[str, pl.DataFrame] | None = None,
) -> str:
    """Read the studies of ``machines`` from ``first`` to ``end`` (the table or its path;
    None: an empty sheet) and write the workbook to ``path``; returns the path.
    ``extra``: more sheets (the planned / performed ones)."""
    sheets = page_sheets(counts, durations, summary, uptake, extra)
    write_tables(path, sheets, studies=report_studies(studies, machines, first, end))
    return str(path)


def _sheets_of(spec: Mapping[str, Any]) -> tuple[Path, list[tuple[str, pl.DataFrame]]]:
    return Path(spec["out"]), page_sheets(
        **{k: pl.read_parquet(spec[k]) for k in ("counts", "durations", "summary")},
        uptake=pl.read_parquet(spec["uptake"]) if spec.get("uptake") else None,
        extra={k: pl.read_parquet(v) for k, v in spec.get("extra", {}).items()},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pyschedvisu.workbook SPEC.json``: write a report's workbook described by a
    JSON file: ``folder`` (where it goes), ``studies`` (a Parquet path or null),
    ``machines``, ``first``, ``end``; then ``out`` (its path), the Parquet paths of the
    ``counts``, ``durations`` and ``summary`` sheets and, when given, the ``uptake`` one,
    and ``extra``: an ordered object of sheet name -> Parquet path (absent without a
    worklist).

    Without ``out`` in the file, the ``studies`` sheet is written first and the rest (``out``
    and the sheets) is read as one JSON line on standard input; an empty line or end of
    input abandons the workbook (exit 3, nothing written). That is how the report writes its
    workbook beside the page building and the rendering (``render.WorkbookJob``): a process of
    its own, started without importing the caller's ``__main__`` (multiprocessing's spawn
    would).
    """
    import json
    import signal
    import sys

    # SIGTERM (an abandoned report) unwinds like an error: the temporary file is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pyschedvisu.workbook SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    studies = report_studies(
        spec["studies"],
        spec["machines"],
        dt.date.fromisoformat(spec["first"]),
        dt.date.fromisoformat(spec["end"]),
    )

    def ready() -> tuple[Path, list[tuple[str, pl.DataFrame]]] | None:
        if "out" in spec:
            return _sheets_of(spec)
        line = sys.stdin.readline().strip()
        return _sheets_of(json.loads(line)) if line else None

    written = write_tables_when_ready(
        Path(spec.get("folder") or Path(spec["out"]).parent), ready, studies=studies
    )
    return 0 if written is not None else 3


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "COUNTS_SCHEMA",
    "DURATIONS_SCHEMA",
    "PLAN_MATCH_COLUMNS",
    "PLAN_SCHEMA",
    "STUDY_COLUMNS",
    "UPTAKE_SCHEMA",
    "counts_rows",
    "durations_rows",
    "main",
    "page_sheets",
    "plan_match_rows",
    "plan_rows",
    "report_studies",
    "studies_rows",
    "uptake_rows",
    "write_report_workbook",
    "write_tables",
    "write_tables_when_ready",
    "write_workbook",
]
