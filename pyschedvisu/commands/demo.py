"""``pyschedvisu demo`` (what ``make demo`` runs): the whole product on a synthetic department.

1. the synthetic department (default 26 weeks ending last Friday) in ``<dir>/department``,
   generated once and extended incrementally;
2. ``<dir>/pyschedvisu.toml`` written on the first run (data and reports under ``<dir>``,
   the demo PACS port, the public demo pseudonymisation key, e-mail as a dry run);
3. the demo PACS served by a process of its own on that port (another free one if it is
   taken), once it has indexed the department's files (cached for the next runs);
4. the ``weekly_report`` flow in Prefect's local mode (temporary API, PREFECT_HOME in
   ``<dir>/.prefect``, so it works from a clean clone), then the PDF and HTML paths.

Prefect's temporary API server starts in the background from the beginning (it takes
10-20 s on 2 cores), while the department is generated and indexed. Every phase says what
it does: a bar over days (generation, retrieval), a spinner with its text for the others
(a line each when the output is not a terminal).

A second run finds every day in the store and the department already generated: it only
re-extracts (nothing new) and re-renders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from pyschedvisu import progress
from pyschedvisu.commands._common import stop_processes
from pyschedvisu.config import Settings, load_settings
from pyschedvisu_core.calendar import auto_report_end
from pyschedvisu_core.errors import ConfigError, PySchedVisuError

DEMO_SEED = 2019

log = logging.getLogger("pyschedvisu.demo")


def demo_window(today: dt.datetime, weeks: int) -> tuple[dt.date, dt.date]:
    """(Monday of the first week, last Friday) of a ``weeks``-week department ending last Friday."""
    end = auto_report_end(today, 22)
    start = end - dt.timedelta(days=4) - dt.timedelta(weeks=weeks - 1)
    return start, end


def _port_free(port: int) -> bool:
    """True when the demo PACS can listen on ``port``.

    SO_REUSEADDR as pynetdicom's server sets it: connections of a previous run left in
    TIME_WAIT must not count as "taken" (that changed the port, hence the retrieval
    fingerprint, and made a second run fetch every day again).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_toml(root: Path, port: int, year_start: int, first_day: dt.date | None = None) -> str:
    """The demo configuration: only what differs from the reference defaults (``first_day``:
    the department's first day, before which its PACS holds nothing)."""
    opened = (
        ""
        if first_day is None
        else f"""# the department opened that day: the report does not ask its PACS for the days before
# (from January on for the yearly page), which would all come back empty
first_day = "{first_day.isoformat()}"
"""
    )
    return f"""# pySchedVisu demo configuration, written by `pyschedvisu demo` (edit freely; delete to reset).
# Everything else is the reference department (`pyschedvisu config init` shows every key).

[pacs]
host = "127.0.0.1"
port = {port}
called_ae = "DEMOPACS"
calling_ae = "PYSCHEDVISU"
move_port = 0          # any free port: the demo PACS answers C-GET, no C-MOVE destination to register
retrieval = "auto"
max_ops_per_s = 200.0  # our own local PACS: no need to pace like a hospital PACS (default 20)
# It answers within milliseconds: a request that still gets no answer is given up after
# 15 s and asked again, not after the default 60 s network timeout.
dimse_timeout_s = 15.0
network_timeout_s = 15.0
deflate_answers = false  # on loopback, compressing the answers only costs both sides CPU

[retrieve]
# the demo PACS answers each series' own InstitutionName; keep the default "instances" for a
# PACS that answers the study's name for every series (Orthanc)
institution_from = "series"
{opened}
[paths]
data_dir = "{(root / "data").as_posix()}"
output_dir = "{(root / "reports").as_posix()}"
log_dir = "{(root / "logs").as_posix()}"

[privacy]
allow_demo_key = true  # synthetic patients only; production sets PYSCHEDVISU_PSEUDONYM_KEY

[worklist]
# the demo PACS also serves the department's appointment book as a Modality Worklist
enabled = true
port = {port}
called_ae = "DEMOPACS"

[report]
year_start = {year_start}

[email]
enabled = true
dry_run = true         # the e-mail is built and logged, not sent
recipients = ["demo@localhost"]
"""


def write_config(
    root: Path, year_start: int, port: int | None = None, first_day: dt.date | None = None
) -> Path:
    """Write ``<root>/pyschedvisu.toml`` atomically (a free PACS port unless given)."""
    from pyschedvisu.store import atomic_write_bytes

    path = root / "pyschedvisu.toml"
    text = demo_toml(root, port or _free_port(), year_start, first_day)
    atomic_write_bytes(path, text.encode())
    return path


#: Longest wait for the demo PACS process to index the department and listen (s).
PACS_START_TIMEOUT_S = 300.0
_READY = "Ctrl-C to stop."


@contextmanager
def demo_pacs_process(
    department: Path, config: Path, settings: Settings, console: Console | None = None
) -> Iterator[None]:
    """``pyschedvisu pacs serve`` on the department, in a process of its own, while the block runs.

    In this process it would share one core (the GIL) with the flow's retrieval threads, which
    wait on its answers: its own processes (two: the client opens two associations) answer
    on the other core and beside the client (the first run of the 26-week demo is mostly
    retrieval). Until it listens, ``console`` shows what it is doing (indexing the
    department's files, the first time).
    """
    cmd = [
        sys.executable,
        "-m",
        "pyschedvisu.cli",
        "--config",
        str(config),
        "pacs",
        "serve",
        "--data",
        str(department),
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.pacs.port),
        "--ae",
        settings.pacs.called_ae,
        # two processes: the client's two associations answered at once, one core each
        "--processes",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    ready = threading.Event()
    output: list[str] = []
    doing = ["demo PACS: starting"]

    def drain() -> None:
        # Read to the end so the process never blocks on a full pipe.
        assert proc.stdout is not None
        for line in proc.stdout:
            if len(output) < 200:
                output.append(line.rstrip())
            if _READY in line:
                ready.set()
            elif "indexing" in line:  # what the index is doing (see PacsIndex.load)
                doing.append("demo PACS: " + line.rstrip().split(": ", 1)[-1])
            log.debug("demo PACS: %s", line.rstrip())

    reader = threading.Thread(target=drain, name="demo-pacs-output", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + PACS_START_TIMEOUT_S
        with progress.status(doing[-1], console, line=False) as say:
            shown = 1
            while not ready.wait(0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    reader.join(timeout=2)
                    why = "exited" if proc.poll() is not None else "did not start in time"
                    raise PySchedVisuError(
                        f"demo PACS {why}: " + " | ".join(output[-10:] or ["(no output)"])
                    )
                if len(doing) > shown:
                    shown = len(doing)
                    say(doing[-1])
                    if console is not None and not console.is_terminal:
                        console.print("      " + doing[-1], highlight=False, markup=False)
        yield
    finally:
        stop_processes([proc])  # `pacs serve` stops cleanly on SIGTERM
        reader.join(timeout=5)


def _step(console: Console, n: int, text: str) -> None:
    console.print(f"[{n}/4] {text}", style="bold cyan", highlight=False, markup=False)


def _say(console: Console, text: str) -> None:
    console.print(f"      {text}", highlight=False, markup=False, soft_wrap=True)


class PrefectApi:
    """Prefect's temporary API server (local mode), started in a thread of its own.

    The flow later finds it running (Prefect keeps one per process) instead of starting it
    then. :meth:`wait` returns once it answers, or raises what stopped it.
    """

    def __init__(self) -> None:
        import contextvars

        self._error: BaseException | None = None
        self.seconds = 0.0
        context = contextvars.copy_context()  # the temporary settings of the caller
        self._thread = threading.Thread(
            target=context.run, args=(self._start,), name="prefect-api-start", daemon=True
        )
        self._thread.start()

    def _start(self) -> None:
        t0 = time.monotonic()
        try:
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().start()
        except BaseException as exc:  # re-raised in the caller's thread by wait()
            self._error = exc
        self.seconds = time.monotonic() - t0

    @property
    def ready(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        while self._thread.is_alive():
            self._thread.join(0.2)  # short waits: Ctrl-C is heard
        if self._error is not None:
            raise PySchedVisuError(f"Prefect's temporary API server: {self._error}")


def run_demo(
    root: Path,
    weeks: int,
    seed: int = DEMO_SEED,
    now: dt.datetime | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """The whole demo as of ``now`` (default: now in Zurich); returns the weekly flow's result.

    ``console``: where it says what it does (default: standard output). Raises
    :class:`PySchedVisuError` when the run does not complete.
    """
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    console = console if console is not None else Console()
    # Prefect's local mode keeps its database here; set before Prefect reads its settings.
    os.environ["PREFECT_HOME"] = str(root / ".prefect")
    from pyschedvisu.commands.run import local_mode_env

    local_mode_env()
    now = now or dt.datetime.now(ZoneInfo("Europe/Zurich"))
    start, end = demo_window(now, weeks)
    _step(console, 1, f"synthetic department {start} .. {end} in {root / 'department'}")

    from prefect.logging.configuration import ensure_logging_setup
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    ensure_logging_setup()  # its console handler first: live_here quiets per-day lines there
    with (
        temporary_settings(
            updates={PREFECT_HOME: root / ".prefect"}, restore_defaults={PREFECT_API_URL}
        ),
        progress.live_here(console),
    ):
        api = PrefectApi()  # meanwhile: generation and indexing
        state = _run(root, start, end, seed, console, api)
    if not state.is_completed():
        raise PySchedVisuError(f"weekly_report ended {state.name}: {state.message}")
    result = dict(state.result())
    _step(console, 4, "done")
    settings = load_settings(root / "pyschedvisu.toml")
    if settings.worklist.enabled:
        for line in plan_lines(settings, end):
            typer.echo(line)
    return result


def _run(
    root: Path,
    start: dt.date,
    end: dt.date,
    seed: int,
    console: Console,
    api: PrefectApi,
) -> Any:
    """Steps 1-3 of :func:`run_demo` (step 1 announced); the flow run's final state."""
    t0 = time.monotonic()
    from pyschedvisu.synth import generate

    bar: progress.DayProgress | None = None
    # on a second run nothing is written, but every day's files are still checked (seconds)
    checking = contextlib.ExitStack()
    checking.enter_context(progress.status("checking the department's files…", line=False))

    def on_day(done: int, todo: int) -> None:
        nonlocal bar
        if bar is None and todo:
            checking.close()
            bar = progress.DayProgress(todo, label="writing DICOM files", every=10)
            bar.__enter__()
        elif bar is not None:
            bar.advance()

    try:
        summary = generate(root / "department", start, end, seed, on_day=on_day)
    finally:
        checking.close()
        if bar is not None:
            bar.close()
    _say(
        console,
        f"{summary.days} days, {summary.instances:,} DICOM files "
        f"({summary.generated_days} written now) in {time.monotonic() - t0:.1f} s",
    )

    config = root / "pyschedvisu.toml"
    if not config.exists():
        write_config(root, start.year, first_day=start)
        _say(console, f"wrote {config}")
    settings: Settings = load_settings(config)
    if not _port_free(settings.pacs.port):
        # The port is part of the retrieval fingerprint: change it only when it is taken.
        write_config(root, settings.report.year_start, first_day=settings.retrieve.first_day)
        settings = load_settings(config)
        _say(
            console,
            f"port taken: demo PACS moved to {settings.pacs.port} (days will be fetched again)",
        )
    logging.getLogger("pyschedvisu").setLevel(settings.logging.level)

    _step(console, 2, f"demo PACS {settings.pacs.called_ae} on 127.0.0.1:{settings.pacs.port}")
    t0 = time.monotonic()
    with demo_pacs_process(root / "department", config, settings, console):
        _say(console, f"listening after {time.monotonic() - t0:.1f} s")
        if settings.worklist.enabled:
            snapshot_worklist(settings, start, end)
        _step(console, 3, "weekly_report flow (Prefect local mode)")
        from flows.weekly import weekly_report

        if not api.ready:
            with progress.status("starting Prefect's temporary API server…", line=False):
                api.wait()
        api.wait()
        _say(console, f"Prefect's temporary API server up (started in {api.seconds:.1f} s)")
        return weekly_report(end=end, send_email=True, config_path=str(config), return_state=True)


#: Business days of the demo whose worklist is snapshotted: the report's two weeks.
WORKLIST_DAYS = 10


def snapshot_worklist(settings: Settings, start: dt.date, end: dt.date) -> None:
    """One worklist snapshot of each of the report's last business days (from the
    department's ``start``) not snapshotted yet; after the fact, where a deployment takes
    them during the day (docs/deployment.md)."""
    from pyschedvisu.worklist.snapshot import take_snapshot
    from pyschedvisu.worklist.store import WorklistStore

    store = WorklistStore(settings.paths.data_dir, settings.site)
    days = settings.business_days(max(start, end - dt.timedelta(weeks=3)), end)[-WORKLIST_DAYS:]
    todo = [d for d in days if store.plan(d) is None]
    steps = 0
    for day in todo:
        try:
            steps += take_snapshot(day, settings).entries
        except PySchedVisuError as exc:  # the report goes on without that day's plan
            typer.echo(f"      worklist snapshot of {day} failed: {exc}", err=True)
    typer.echo(f"      worklist: {len(todo)} day(s) snapshotted now ({steps} steps)")


def plan_lines(settings: Settings, end: dt.date) -> list[str]:
    """Planned against performed of the report's week, one line per machine."""
    from pyschedvisu.worklist.matches import load_matches
    from pyschedvisu_core.planmatch import TOTAL, plan_days, plan_table

    got = load_matches(settings.paths.data_dir)
    if got is None:
        return []
    matches, coverage = got
    monday = end - dt.timedelta(days=end.weekday())
    week = settings.business_days(monday, end)
    lines = [f"planned / performed, week of {monday}:"]
    for name in settings.machine_names().values():
        days = plan_days(coverage, name, week)
        table = plan_table(matches.filter(matches["machine"] == name), [], days)
        total = table.filter(table["label"] == TOTAL)
        if not days or not total.height:
            lines.append(f"  {name}: no plan")
            continue
        t = total.row(0, named=True)
        delay = t["delay_median_s"]
        lines.append(
            f"  {name}: {t['planned']} planned, {t['performed']} performed, "
            f"{t['no_shows']} no-show(s), {t['unplanned']} unplanned, "
            f"median start delay {'-' if delay is None else f'{delay / 60:+.0f} min'}"
        )
    return lines


def _newest_log(log_dir: Path) -> Path:
    """The run's log file (the newest under ``log_dir``), else the folder itself."""
    logs = [p for p in log_dir.glob("*/*.log") if p.is_file()]
    return max(logs, key=lambda p: p.stat().st_mtime_ns) if logs else log_dir


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        directory: Annotated[Path, typer.Option("--dir", help="Where the demo lives.")] = Path(
            "demo"
        ),
        end: Annotated[
            str | None,
            typer.Option(
                "--end", help="Last day of the department (a Friday). Default: last Friday."
            ),
        ] = None,
        weeks: Annotated[
            int, typer.Option("--weeks", min=1, max=520, help="Length of the synthetic department.")
        ] = 26,
        seed: Annotated[
            int, typer.Option("--seed", help="Seed of the synthetic department.")
        ] = DEMO_SEED,
    ) -> None:
        """The whole product on the synthetic department: generate, serve, run the weekly flow."""
        t0 = time.monotonic()
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)  # logs / pipes: lines not cut at 80 columns
        try:
            now = None
            if end is not None:
                # The automatic rule applied on the Saturday after ``end`` gives back ``end``.
                saturday = dt.date.fromisoformat(end) + dt.timedelta(days=1)
                now = dt.datetime.combine(saturday, dt.time(12), ZoneInfo("Europe/Zurich"))
            result = run_demo(directory, weeks, seed, now, console)
        except ConfigError as err:
            for line in err.problems:
                typer.echo(line, err=True)
            raise typer.Exit(code=2) from None
        except PySchedVisuError as err:
            typer.echo(f"demo failed: {err}", err=True)
            raise typer.Exit(code=1) from None
        typer.echo(f"PDF:  {result.get('pdf')}")
        typer.echo(f"HTML: {result.get('html')}")
        typer.echo(f"XLSX: {result.get('xlsx')}")
        typer.echo(f"Logs: {_newest_log(directory.resolve() / 'logs')}")
        typer.echo(
            f"({time.monotonic() - t0:.0f} s; run again: everything already retrieved is reused)"
        )
        # The process ends here: its objects (Prefect, polars, plotly...) need no last
        # garbage collection at exit (1.5-4 s of silence after the paths otherwise).
        gc.freeze()
