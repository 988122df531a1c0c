"""``pyschedvisu discover --start D --end D [--headers] [--write-config PATH]``.

What the configured PACS holds over some business days, told against the config: institution
names, scanner model combinations (and the ``[machines]`` group each matches), StationName /
DeviceSerialNumber per model, study descriptions per machine (and the label each gets), what
the filters exclude; each with counts and the first / last day seen. STUDY and SERIES C-FIND
only, with the retrieval's client and pacing; ``--headers`` reads one instance header per
series where the PACS does not index the equipment. ``--write-config`` drafts this
department's config. No patient data is printed or written.

Exit codes: 0 done; 1 the PACS could not be used (with the diagnosis and a hint) or a day
could not be surveyed (the others are still told); 2 a bad config or option.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pyschedvisu.commands._common import fail_config, parse_day, settings_from
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    ConfigError,
    PacsError,
    PacsUnreachableError,
)

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _span(first: Any, last: Any) -> str:
    if first is None:
        return ""
    return f"{first}" if first == last else f"{first}..{last}"


def _table(console: Console, title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=escape(title), title_justify="left")
    for col in columns:
        numeric = col in ("studies", "series", "count", "accepted studies")
        table.add_column(col, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else escape(str(v)) for v in row))
    if not rows:
        table.add_row(*(["(none)"] + [""] * (len(columns) - 1)))
    console.print(table)


def print_survey(
    console: Console, settings: Any, studies: pl.DataFrame, series: pl.DataFrame
) -> None:
    """The five tables of a survey, told against ``settings``."""
    from pyschedvisu.config import plain_machines
    from pyschedvisu_core import survey

    accepted = list(settings.retrieve.accepted_institutions)
    machines = plain_machines(settings.machines)
    labels = {k: {lk: list(lv) for lk, lv in v.items()} for k, v in settings.descriptions.items()}

    inst = survey.institutions(series, accepted)
    _table(
        console,
        "Institutions (InstitutionName of the kept series; retrieve.accepted_institutions)",
        ["institution", "normalised", "accepted", "studies", "seen"],
        [
            [r["institution"], r["normalised"] or "", "yes" if r["accepted"] else "NO", r["studies"],
             _span(r["first"], r["last"])]
            for r in inst.iter_rows(named=True)
        ],
    )  # fmt: skip
    combos = survey.combinations_table(series, machines, accepted)
    _table(
        console,
        "Scanner model combinations per study ([machines] group, or none: mixed case)",
        ["models (minified)", "model names", "stations", "serials", "studies",
         "accepted studies", "seen", "[machines] group"],
        [
            [r["models"], r["names"], r["station_names"], r["serial_numbers"], r["studies"],
             r["accepted_studies"], _span(r["first"], r["last"]),
             r["machine_group"] or "NONE (mixed case)"]
            for r in combos.iter_rows(named=True)
        ],
    )  # fmt: skip
    equip = survey.equipment_table(series)
    _table(
        console,
        "StationName / DeviceSerialNumber per model",
        ["model", "StationName", "DeviceSerialNumber", "series", "studies", "seen"],
        [
            [r["model"] or "(unknown)", r["station_name"] or "", r["device_serial_number"] or "",
             r["series"], r["studies"], _span(r["first"], r["last"])]
            for r in equip.iter_rows(named=True)
        ],
    )  # fmt: skip
    desc = survey.descriptions_table(studies, series, machines, labels, None, unmatched=True)
    _table(
        console,
        "Study descriptions per machine (label from [descriptions.<machine>], else OTHER)",
        ["machine", "description", "minified", "studies", "seen", "label"],
        [
            [r["machine"], r["description"] or "", r["minified"], r["studies"],
             _span(r["first"], r["last"]), r["label"]]
            for r in desc.iter_rows(named=True)
        ],
    )  # fmt: skip
    excl = survey.excluded_table(studies, series)
    _table(
        console,
        "Excluded by the filters (retrieve.*_exclude, patient_id_pattern, series_modalities)",
        ["level", "reason", "value", "count", "seen"],
        [
            [r["level"], r["reason"], r["value"], r["count"], _span(r["first"], r["last"])]
            for r in excl.iter_rows(named=True)
        ],
    )  # fmt: skip


def write_draft(
    console: Console,
    settings: Any,
    studies: pl.DataFrame,
    series: pl.DataFrame,
    path: Path,
    title: str,
) -> None:
    """Write the config draft to ``path`` and check it as ``config validate`` does."""
    from pyschedvisu.config import load_settings
    from pyschedvisu.config_draft import draft_toml
    from pyschedvisu_core import surveydraft

    draft = surveydraft.draft(studies, series)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(draft_toml(settings, draft, title=title), encoding="utf-8")
    tmp.replace(path)
    try:
        load_settings(path)
    except ConfigError as err:  # a draft that does not validate is a bug: say it loudly
        raise fail_config(err) from None
    n_labels = sum(len(v) for v in draft.suggestions.values())
    console.print(
        escape(
            f"wrote {path}: {len(draft.accepted) - 1} institution name(s), "
            f"{len(draft.machines)} [machines] entr(ies) for {len(draft.names)} machine(s), "
            f"{n_labels} study description(s) to label"
            + (f", {len(draft.left_out)} combination(s) left out" if draft.left_out else "")
        ),
        soft_wrap=True,
    )
    console.print(
        escape(
            f"next: name the labels in its [descriptions.*] tables, then "
            f"`pyschedvisu --config {path} config validate`"
        ),
        soft_wrap=True,
    )


def discover(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="First day (YYYY-MM-DD).")],
    end: Annotated[
        str | None, typer.Option("--end", help="Last day, included (default: --start).")
    ] = None,
    headers: Annotated[
        bool,
        typer.Option(
            "--headers",
            help="Also read one instance header per series (model, station, serial, institution) where the PACS does not index them.",
        ),
    ] = False,
    write_config: Annotated[
        Path | None,
        typer.Option("--write-config", help="Write a config draft for this department there."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite the --write-config file if it exists.")
    ] = False,
) -> None:
    """Survey what the PACS holds (institutions, scanners, descriptions) against the config."""
    from pyschedvisu.retrieval import diagnose, make_client
    from pyschedvisu.retrieval.survey import DaySurvey, survey_day, survey_frames

    first = parse_day(start)
    last = parse_day(end) if end else first
    if last < first:
        raise typer.BadParameter("--end is before --start")
    if write_config is not None and write_config.exists() and not force:
        typer.echo(f"{write_config}: exists already (use --force to overwrite)", err=True)
        raise typer.Exit(code=EXIT_CONFIG)
    settings = settings_from(ctx)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    days = settings.business_days(first, last)
    if not days:
        console.print(f"no business day between {first} and {last}")
        raise typer.Exit(code=0)
    p = settings.pacs
    label = f"{p.called_ae}@{p.host}:{p.port} (we are {p.calling_ae})"
    surveyed: list[DaySurvey] = []
    failures: dict[dt.date, str] = {}
    client = make_client(settings)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    try:
        with progress:
            task = progress.add_task("days", total=len(days), failed=0)
            for day in days:

                def step(what: str, day: dt.date = day) -> None:
                    progress.update(task, description=f"{day} {what}")

                try:
                    surveyed.append(survey_day(day, settings, client, headers=headers, step=step))
                except (PacsUnreachableError, AssociationRejectedError):
                    raise
                except PacsError as exc:
                    if not surveyed and not failures:
                        told = diagnose(settings, exc, client.counters, "C-FIND")
                        if told is not None:  # the first request already failed: stop there
                            raise
                    failures[day] = str(exc)
                progress.update(task, advance=1, failed=len(failures))
    except PacsError as exc:
        told = diagnose(settings, exc, client.counters, "C-FIND")
        typer.echo(f"PACS {label}: NOT usable: {told.summary if told else exc}", err=True)
        if told is not None:
            typer.echo(f"hint: {told.hint}", err=True)
        raise typer.Exit(code=EXIT_FAILED) from None
    finally:
        client.close()

    studies, series = survey_frames(surveyed)
    found = studies.height
    console.print(
        f"{label}: {len(surveyed)} of {len(days)} business day(s) surveyed, {found} studies, "
        f"{series.height} series"
        + (
            f", equipment of {sum(d.headers_read for d in surveyed)} series from headers"
            if headers
            else ""
        )
    )
    empty = [d.day.isoformat() for d in surveyed if d.studies.is_empty()]
    if empty:
        console.print(
            f"[yellow]{len(empty)} business day(s) with no study at all[/yellow]: {', '.join(empty)}"
        )
    print_survey(console, settings, studies, series)
    if series.height and series["model"].null_count() == series.height and not headers:
        console.print(
            "[yellow]the PACS does not answer ManufacturerModelName at SERIES level: "
            "run again with --headers to see the scanners[/yellow]"
        )
    if write_config is not None:
        title = f"from {label}, {days[0]}..{days[-1]} ({len(surveyed)} days, {found} studies)"
        write_draft(console, settings, studies, series, write_config, title)
    for day, why in sorted(failures.items()):
        console.print(f"[red]day {day} not surveyed[/red]: {escape(why)}", soft_wrap=True)
    if failures:
        raise typer.Exit(code=EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.command("discover")(discover)
