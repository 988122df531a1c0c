"""One progress display over days for long work: ``retrieve``, ``discover``, ``backfill``, the demo.

:class:`DayTally` counts (done / total, failures so far, pace, time left); :class:`DayProgress`
shows it:

- on a terminal, one rich bar (``days 40/230 ━━━━━━━━ 2 failed · 0:01:10 elapsed · ~0:03:20 left``)
  instead of one line per day; the per-day lines of the retrieval loggers, and Prefect's task
  run lines, are then kept off the terminal while the bar lives (they still reach the log file
  and Prefect's API), warnings and errors are printed above the bar;
- elsewhere (a log, a pipe, a Prefect flow run), one line every ``every`` days and at the end,
  through ``log``.

A CLI command that runs a flow in this process (``run backfill``, the demo) calls
:func:`live_here`: a :class:`DayProgress` the flow opens then also draws its bar on that
command's terminal. Usage::

    with DayProgress(len(days), label="retrieval", log=logger.info, every=25) as bar:
        bar.skip(len(already_stored))
        for outcome in outcomes:
            bar.advance(ok=outcome.ok)

:func:`status` says what a silent phase is doing (a spinner on a terminal, a line elsewhere).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.text import Text

#: Loggers whose INFO lines are per-day detail: off the terminal while a bar is shown.
DETAIL_LOGGERS = ("pyschedvisu.retrieval", "pyschedvisu.pacs", "prefect.task_runs")
#: ``extra`` flag of a progress line logged by a flow (the bar says the same on a terminal).
PROGRESS_RECORD = "pyschedvisu_progress"


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: a human duration, rounded to the second."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class DayTally:
    """Days done out of ``total``, failures so far, and the time left at the pace so far.

    Days done without work (already in the store: :meth:`skip`) count as done but do not set
    the pace. Times are ``time.monotonic()`` seconds, passed in so the arithmetic is testable.
    """

    total: int
    started: float
    done: int = 0
    failed: int = 0
    skipped: int = 0
    last: float | None = field(default=None)

    def skip(self, n: int) -> None:
        self.done += n
        self.skipped += n

    def add(self, now: float, *, ok: bool = True) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.last = now

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    def pace(self) -> float | None:
        """Seconds per day worked so far (None before the first one)."""
        worked = self.done - self.skipped
        if worked <= 0 or self.last is None:
            return None
        return (self.last - self.started) / worked

    def eta(self, now: float) -> float | None:
        """Seconds left: the days left at the pace so far, minus the time since the last day."""
        pace = self.pace()
        if pace is None or self.last is None:
            return None
        return max(0.0, pace * self.left - (now - self.last))

    def line(self, label: str, now: float) -> str:
        """``retrieval: 40/230 days (17 %), 2 failed, 1 min 10 s elapsed, about 3 min 20 s left``."""
        pct = 100 * self.done // self.total if self.total else 100
        parts = [f"{label}: {self.done}/{self.total} days ({pct} %)"]
        if self.skipped:
            parts.append(f"{self.skipped} already stored")
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{duration(now - self.started)} elapsed")
        eta = self.eta(now)
        if self.left and eta is not None:
            parts.append(f"about {duration(eta)} left")
        return ", ".join(parts)


class _Failures(ProgressColumn):
    def __init__(self, tally: DayTally) -> None:
        super().__init__()
        self.tally = tally

    def render(self, task: Any) -> Text:
        n = self.tally.failed
        return Text(f"{n} failed", style="bold red") if n else Text("0 failed", style="dim")


class _Times(ProgressColumn):
    def __init__(self, tally: DayTally) -> None:
        super().__init__()
        self.tally = tally

    def render(self, task: Any) -> Text:
        now = time.monotonic()
        text = f"{duration(now - self.tally.started)} elapsed"
        eta = self.tally.eta(now)
        if self.tally.left:
            text += f" · ~{duration(eta)} left" if eta is not None else " · estimating"
        return Text(text, style="cyan")


# -- the terminal of the CLI command running in this process ----------------------------

_live_consoles: list[Console] = []
_live_lock = threading.Lock()


@contextmanager
def live_here(console: Console) -> Iterator[None]:
    """While the block runs, a :class:`DayProgress` opened in this process (e.g. by a flow
    run in-process) shows itself on ``console``: a bar on a terminal; elsewhere its lines.
    Per-day detail (INFO of :data:`DETAIL_LOGGERS`, e.g. each task run's lines) is kept off
    the console handlers set up before the block (not off the log file or Prefect's API)."""
    with _live_lock:
        _live_consoles.append(console)
    try:
        with _quiet_console_handlers(None):
            yield
    finally:
        with _live_lock:
            _live_consoles.remove(console)


def live_console() -> Console | None:
    """The console of the innermost :func:`live_here`, if any."""
    with _live_lock:
        return _live_consoles[-1] if _live_consoles else None


def _console_handlers() -> list[logging.Handler]:
    """The handlers printing to a terminal or a pipe (not files, not Prefect's API)."""
    seen: list[logging.Handler] = []
    for name in (None, "pyschedvisu", "prefect"):
        for handler in logging.getLogger(name).handlers:
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)
                and handler not in seen
            ):
                seen.append(handler)
    return seen


class _NoDetail(logging.Filter):
    """On a console handler while progress is shown: per-day detail (INFO and below of
    :data:`DETAIL_LOGGERS`) is not printed. With a bar (``live``), progress lines are not
    printed either (the bar says it), and anything else is printed above the bar by its
    console, never through the bar's line."""

    def __init__(self, handler: logging.Handler, live: Console | None) -> None:
        super().__init__()
        self.handler = handler
        self.live = live

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and record.name.startswith(DETAIL_LOGGERS):
            return False
        if self.live is None:
            return True
        if getattr(record, PROGRESS_RECORD, False) or record.levelno < self.handler.level:
            return False
        self.live.print(
            Text(self.handler.format(record)), soft_wrap=True, highlight=False, markup=False
        )
        return False


@contextmanager
def _quiet_console_handlers(live: Console | None) -> Iterator[None]:
    installed = []
    for handler in _console_handlers():
        flt = _NoDetail(handler, live)
        handler.addFilter(flt)
        installed.append((handler, flt))
    try:
        yield
    finally:
        for handler, flt in installed:
            handler.removeFilter(flt)


class DayProgress:
    """Progress over ``total`` days: a bar on a terminal, else a line every ``every`` days.

    ``console``: where to show it (default: the console of :func:`live_here`, if any). On a
    terminal, a bar; on another console (a log, a pipe), a line every ``every`` days and at
    the end, printed on it unless ``log`` is given. While shown on a console, the per-day
    detail of :data:`DETAIL_LOGGERS` is kept off it. ``log``: called with the line every
    ``every`` days (0: never) and at the end, whatever the console (a flow's logger: the
    run's log, Prefect's API). Thread-safe: days may end in any thread.
    """

    def __init__(
        self,
        total: int,
        *,
        label: str = "days",
        console: Console | None = None,
        log: Callable[[str], None] | None = None,
        every: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.clock = clock
        self.tally = DayTally(total, started=clock())
        self.every = every
        self.console = console if console is not None else live_console()
        self.bar = self.console is not None and self.console.is_terminal
        if log is None and self.console is not None and not self.bar:
            printer = self.console

            def log(line: str) -> None:
                printer.print(line, highlight=False, markup=False, soft_wrap=True)

        self.log = log
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: Any = None
        self._quiet: Any = None
        self._logged_at = 0

    @property
    def live(self) -> bool:
        """True while a bar is drawn."""
        return self._progress is not None

    def __enter__(self) -> DayProgress:
        if self.console is not None:
            self._quiet = _quiet_console_handlers(self.console if self.bar else None)
            self._quiet.__enter__()
        if self.bar:
            assert self.console is not None
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("days"),
                _Failures(self.tally),
                _Times(self.tally),
                console=self.console,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._task = self._progress.add_task(self.label, total=self.tally.total)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the bar (left on screen at its last state) and log the final line."""
        with self._lock:
            progress, self._progress = self._progress, None
            quiet, self._quiet = self._quiet, None
        if progress is not None:
            progress.refresh()
            progress.stop()
        if self.log is not None and self._logged_at != self.tally.done:
            self._emit()  # before the console shows progress lines again: the bar said it
        if quiet is not None:
            quiet.__exit__(None, None, None)

    def skip(self, n: int) -> None:
        """``n`` days were done without work (already stored)."""
        if n <= 0:
            return
        with self._lock:
            self.tally.skip(n)
            self._draw()

    def advance(self, ok: bool = True) -> None:
        """One more day done (``ok=False``: it failed)."""
        with self._lock:
            self.tally.add(self.clock(), ok=ok)
            self._draw()
            due = self.every > 0 and self.tally.done - self._logged_at >= self.every
        if due and self.log is not None and self.tally.left:
            self._emit()

    def line(self) -> str:
        return self.tally.line(self.label, self.clock())

    def _draw(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.tally.done)

    def _emit(self) -> None:
        self._logged_at = self.tally.done
        assert self.log is not None
        self.log(self.line())


def log_to(logger: logging.Logger | logging.LoggerAdapter[Any]) -> Callable[[str], None]:
    """A ``log`` for :class:`DayProgress`: INFO lines on ``logger``, marked as progress lines
    (kept off a terminal that shows the bar already)."""

    def log(line: str) -> None:
        logger.info(line, extra={PROGRESS_RECORD: True})

    return log


@contextmanager
def status(
    text: str, console: Console | None = None, *, line: bool = True
) -> Iterator[Callable[[str], None]]:
    """Say what a phase is doing while it runs: a spinner on a terminal, else one line.

    ``console``: default, the one of :func:`live_here`; without any, nothing is shown.
    ``line=False``: nothing off a terminal (the caller logs it already). Yields a function
    that changes the text (on a terminal; elsewhere it prints nothing more).
    """
    console = console if console is not None else live_console()
    if console is None or not console.is_terminal:
        if console is not None and line:
            console.print(text, highlight=False, markup=False, soft_wrap=True)
        yield lambda _text: None
        return
    with console.status(text, spinner="dots") as spinner, _quiet_console_handlers(console):
        yield lambda new: spinner.update(new)


def default_every(total: int) -> int:
    """Days between two progress lines: about 20 lines a run, every 5 to 50 days."""
    return max(5, min(50, total // 20))
