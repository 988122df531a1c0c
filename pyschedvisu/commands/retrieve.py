"""``pyschedvisu retrieve --start D --end D [--force]``: business days from the PACS into the store."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pyschedvisu.commands._common import parse_day, settings_from
from pyschedvisu.progress import DayProgress, default_every
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    PacsCircuitOpenError,
    PacsUnreachableError,
    PseudonymKeyError,
    PySchedVisuError,
    StoreFullError,
)

EXIT_FAILED = 1
EXIT_CONFIG = 2
#: what a day the run stopped before (or under) is said to be; the last line says why
NOT_RETRIEVED = "not retrieved (stopped: see the last line)"


def run_retrieve(settings: Any, start: dt.date, end: dt.date, force: bool, console: Console) -> int:
    """Retrieve every business day of ``start``..``end``; print progress and a summary; exit code.

    Up to ``pacs.max_concurrent`` days are in flight at once over the one shared client, so
    its pacing and association limits still hold for the whole run. A PACS unreachable (its
    circuit open: every day in flight stops within seconds), refusing us, or a full disk stops
    the run: the days already retrieved are kept, the others are named, and the last line
    says why it stopped. Progress is one bar over the days on a terminal (a line every few
    days elsewhere); each day's figures are in the final table.
    """
    from rich.markup import escape

    from pyschedvisu.retrieval import failure_hint, make_client, retrieve_day
    from pyschedvisu.store import SeriesStore, clean_stale_tmp
    from pyschedvisu_core.dropped import day_status, from_summaries

    days = settings.business_days(start, end)
    if not days:
        console.print(f"no business day between {start} and {end}")
        return 0
    store = SeriesStore(settings.paths.data_dir)
    stale = clean_stale_tmp(settings.paths.data_dir)
    if stale:
        console.print(
            f"removed {len(stale)} temporary file(s) an interrupted run left in "
            f"{settings.paths.data_dir}"
        )
    rows: list[dict[str, Any]] = []
    failures: dict[dt.date, str] = {}
    #: why the run stopped starting days (the PACS unreachable or refusing us, a full disk),
    #: said once at the end; the days it stopped are named without repeating it
    stopped: list[str] = []
    client = make_client(settings)
    progress = DayProgress(
        len(days), label="retrieval", console=console, every=default_every(len(days))
    )
    lock = threading.Lock()
    unreachable = threading.Event()
    try:
        with progress:

            def one(day: dt.date) -> None:
                if unreachable.is_set():
                    failures[day] = NOT_RETRIEVED if stopped else "not attempted (interrupted)"
                    progress.advance(ok=False)
                    return
                try:
                    result = retrieve_day(day, settings, client, store, force=force)
                    with lock:
                        rows.append(result.summary())
                except (PacsUnreachableError, AssociationRejectedError, StoreFullError) as exc:
                    # every following day would fail the same way: stop starting new ones
                    with lock:
                        if not stopped:
                            stopped.append(_stop_reason(exc))
                    unreachable.set()
                    failures[day] = NOT_RETRIEVED
                except PySchedVisuError as exc:
                    if isinstance(exc, PseudonymKeyError):
                        raise
                    failures[day] = str(exc)
                progress.advance(ok=day not in failures)

            workers = max(1, min(settings.pacs.max_concurrent, len(days)))
            with ThreadPoolExecutor(workers, thread_name_prefix="retrieve-day") as pool:
                futures = [pool.submit(one, day) for day in days]
                try:
                    pending = set(futures)
                    while pending:
                        # short waits: a blocked wait would hear Ctrl-C only when a day ends
                        done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                        for future in done:
                            future.result()  # re-raises PseudonymKeyError (and bugs) here
                except BaseException as exc:
                    unreachable.set()  # Ctrl-C or a fatal error: start no further day
                    for future in futures:
                        future.cancel()
                    if isinstance(exc, KeyboardInterrupt):
                        # the days in flight stop at their next request and write nothing
                        client.close()
                        progress.close()
                        console.print(
                            f"interrupted: {len(rows)} of {len(days)} day(s) done and kept; "
                            "run again to retrieve the others"
                        )
                    raise
    finally:
        client.close()

    table = Table(title=f"Retrieval {days[0]} .. {days[-1]}")
    for col in ("day", "studies", "series kept", "excluded", "failed", "seconds", "method", "note"):
        table.add_column(col, justify="right" if col not in ("day", "method", "note") else "left")
    by_day = {r["day"]: r for r in rows}
    for day in days:
        r = by_day.get(day.isoformat())
        if r is None:
            table.add_row(day.isoformat(), "", "", "", "", "", "", "[red]FAILED[/red]")
            continue
        note = "from store" if r["from_cache"] else ("" if r["final"] else "not final yet")
        status = day_status(r)
        if status != "ok":
            note = (f"{note}; " if note else "") + f"[yellow]WARNING: {status}[/yellow]"
        table.add_row(
            r["day"],
            str(r["studies"]),
            str(r["series"]),
            str(r["excluded"]),
            str(r["failed"]),
            f"{r['seconds']:.1f}",
            r["method"],
            note,
        )
    console.print(table)
    for line in from_summaries(rows).lines():
        console.print(f"[yellow]WARNING[/yellow]: {escape(line)}", soft_wrap=True)
    if failures:
        for day, why in sorted(failures.items()):
            console.print(f"[red]day {day} failed[/red]: {why}", soft_wrap=True)
        hint = failure_hint(settings, client.counters, list(failures.values()))
        if hint is not None:
            console.print(f"[yellow]hint[/yellow]: {escape(hint.text())}", soft_wrap=True)
        console.print(
            f"{len(failures)} of {len(days)} day(s) not retrieved, {len(rows)} kept; "
            "run again to retry them"
        )
        if stopped:
            console.print(f"[red]stopped[/red]: {stopped[0]}", soft_wrap=True)
        return EXIT_FAILED
    return 0


def _stop_reason(exc: Exception) -> str:
    """The one line that says why a run stopped (the error says what to do)."""
    if isinstance(exc, PacsCircuitOpenError | StoreFullError):
        return str(exc)
    if isinstance(exc, PacsUnreachableError):
        return f"PACS unreachable: {exc}"
    return str(exc)


def register(app: typer.Typer) -> None:
    @app.command("retrieve")
    def retrieve(
        ctx: typer.Context,
        start: Annotated[str, typer.Option("--start", help="First day (YYYY-MM-DD).")],
        end: Annotated[
            str | None, typer.Option("--end", help="Last day, included (default: --start).")
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Fetch again days already in the store.")
        ] = False,
    ) -> None:
        """Retrieve business days from the PACS into the series store (days already final are skipped)."""
        first = parse_day(start)
        last = parse_day(end) if end else first
        if last < first:
            raise typer.BadParameter("--end is before --start")
        settings = settings_from(ctx)
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)  # logs / pipes: never wrap the table rows
        try:
            code = run_retrieve(settings, first, last, force, console)
        except PseudonymKeyError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=EXIT_CONFIG) from None
        raise typer.Exit(code=code)
