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
    PacsUnreachableError,
    PseudonymKeyError,
    PySchedVisuError,
)

EXIT_FAILED = 1
EXIT_CONFIG = 2


def run_retrieve(settings: Any, start: dt.date, end: dt.date, force: bool, console: Console) -> int:
    """Retrieve every business day of ``start``..``end``; print progress and a summary; exit code.

    Up to ``pacs.max_concurrent`` days are in flight at once over the one shared client, so
    its pacing and association limits still hold for the whole run. Progress is one bar over
    the days on a terminal (a line every few days elsewhere); each day's figures are in the
    final table.
    """
    from pyschedvisu.retrieval import make_client, retrieve_day
    from pyschedvisu.store import SeriesStore

    days = settings.business_days(start, end)
    if not days:
        console.print(f"no business day between {start} and {end}")
        return 0
    store = SeriesStore(settings.paths.data_dir)
    rows: list[dict[str, Any]] = []
    failures: dict[dt.date, str] = {}
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
                    failures[day] = "not attempted (PACS unreachable or refusing us)"
                    progress.advance(ok=False)
                    return
                try:
                    result = retrieve_day(day, settings, client, store, force=force)
                    with lock:
                        rows.append(result.summary())
                except (PacsUnreachableError, AssociationRejectedError) as exc:
                    # every following day would fail the same way: stop starting new ones
                    unreachable.set()
                    failures[day] = str(exc)
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
    if failures:
        for day, why in sorted(failures.items()):
            console.print(f"[red]day {day} failed[/red]: {why}", soft_wrap=True)
        console.print(
            f"{len(failures)} of {len(days)} day(s) not retrieved; run again to retry them"
        )
        return EXIT_FAILED
    return 0


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
