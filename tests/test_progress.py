"""The progress display over days (pyschedvisu.progress): counts, lines, the bar, the console."""

from __future__ import annotations

import io
import logging
import re

import pytest
from rich.console import Console

from pyschedvisu import progress
from pyschedvisu.progress import DayProgress, DayTally, default_every, duration, live_here

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return ANSI.sub("", file.getvalue()).replace("\r", "\n")


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=140, color_system="standard")


def pipe() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=140)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_duration_reads_like_a_human_would_say_it() -> None:
    assert duration(0.4) == "0 s"
    assert duration(42) == "42 s"
    assert duration(185) == "3 min 05 s"
    assert duration(3720) == "1 h 02 min"


def test_tally_paces_on_days_worked_not_on_days_already_stored() -> None:
    tally = DayTally(total=10, started=0.0)
    tally.skip(4)  # from the store: no time spent
    assert tally.pace() is None and tally.eta(0.0) is None
    tally.add(3.0)
    tally.add(6.0, ok=False)
    assert (tally.done, tally.failed, tally.left) == (6, 1, 4)
    assert tally.pace() == pytest.approx(3.0)
    assert tally.eta(6.0) == pytest.approx(12.0)
    assert tally.eta(10.0) == pytest.approx(8.0)  # counts down between days
    assert tally.eta(100.0) == 0.0
    line = tally.line("retrieval", 6.0)
    assert line == (
        "retrieval: 6/10 days (60 %), 4 already stored, 1 failed, 6 s elapsed, about 12 s left"
    )


def test_every_gives_about_twenty_lines_a_run() -> None:
    assert default_every(3) == 5
    assert default_every(235) == 11
    assert default_every(2600) == 50


def test_lines_every_n_days_and_at_the_end_through_log() -> None:
    clock = Clock()
    lines: list[str] = []
    with DayProgress(7, label="backfill", log=lines.append, every=3, clock=clock) as bar:
        bar.skip(1)
        for _ in range(6):
            clock.t += 2
            bar.advance(ok=clock.t != 1004)
    assert lines == [
        "backfill: 3/7 days (42 %), 1 already stored, 1 failed, 4 s elapsed, about 8 s left",
        "backfill: 6/7 days (85 %), 1 already stored, 1 failed, 10 s elapsed, about 2 s left",
        "backfill: 7/7 days (100 %), 1 already stored, 1 failed, 12 s elapsed",
    ]


def _records(logger: logging.Logger) -> None:
    logging.getLogger("pyschedvisu.retrieval").info("2024-03-04: 40 studies (per-day detail)")
    logging.getLogger("pyschedvisu.pacs").info("PACS: 2 association(s) (per-PACS detail)")
    logging.getLogger("pyschedvisu.retrieval").warning("2024-03-05: PACS slow (a warning)")
    logger.info("phase line of the run")


@pytest.fixture
def console_handler() -> logging.Handler:
    """A console handler on the root logger, as the CLI and Prefect set one up."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_on_a_pipe_lines_are_printed_and_per_day_detail_kept_off_the_console(
    console_handler: logging.StreamHandler,  # type: ignore[type-arg]
) -> None:
    console = pipe()
    clock = Clock()
    with DayProgress(4, label="retrieval", console=console, every=2, clock=clock) as bar:
        _records(logging.getLogger("pyschedvisu.cli"))
        for _ in range(4):
            clock.t += 1
            bar.advance()
    shown = console_handler.stream.getvalue()
    assert "per-day detail" not in shown and "per-PACS detail" not in shown
    assert "a warning" in shown and "phase line of the run" in shown
    assert plain(console).splitlines() == [
        "retrieval: 2/4 days (50 %), 2 s elapsed, about 2 s left",
        "retrieval: 4/4 days (100 %), 4 s elapsed",
    ]
    # once the progress ends, the console shows every line again
    logging.getLogger("pyschedvisu.retrieval").info("after: detail again")
    assert "after: detail again" in console_handler.stream.getvalue()


def test_on_a_terminal_one_bar_with_done_total_failures_and_time_left(
    console_handler: logging.StreamHandler,  # type: ignore[type-arg]
) -> None:
    console = terminal()
    logged: list[str] = []
    with DayProgress(230, label="retrieval", console=console, log=logged.append, every=100) as bar:
        assert bar.live
        bar.skip(30)
        for i in range(10):
            bar.advance(ok=i != 3)
        _records(logging.getLogger("pyschedvisu.cli"))
        progress.log_to(logging.getLogger("flows.test"))("retrieval: 40/230 days (a line)")
    out = plain(console)
    final = [line for line in out.splitlines() if "retrieval" in line and "/230" in line][-1]
    assert re.search(r"retrieval .*40/230 days .*1 failed .*elapsed · ~.* left", final), final
    # warnings and other lines above the bar, through the bar's console; detail nowhere
    assert "a warning" in out and "phase line of the run" in out
    assert "per-day detail" not in out and "per-PACS detail" not in out
    assert "(a line)" not in out  # a flow's progress line: the bar says it already
    assert console_handler.stream.getvalue() == ""  # nothing printed through the bar
    assert logged[-1].startswith("retrieval: 40/230 days (17 %), 30 already stored, 1 failed")
    assert not bar.live


def test_a_flow_in_this_process_draws_on_the_command_terminal() -> None:
    console = terminal()
    assert progress.live_console() is None
    with live_here(console):
        assert progress.live_console() is console
        with DayProgress(3, label="backfill") as bar:  # no console: the command's
            assert bar.live
            for _ in range(3):
                bar.advance()
    assert progress.live_console() is None
    assert "3/3 days" in plain(console)


def test_per_day_detail_stays_off_the_console_while_a_command_shows_a_flow(
    console_handler: logging.StreamHandler,  # type: ignore[type-arg]
) -> None:
    with live_here(pipe()):
        _records(logging.getLogger("pyschedvisu.cli"))
    shown = console_handler.stream.getvalue()
    assert "per-day detail" not in shown and "per-PACS detail" not in shown
    assert "a warning" in shown and "phase line of the run" in shown
    logging.getLogger("pyschedvisu.retrieval").info("after: detail again")
    assert "after: detail again" in console_handler.stream.getvalue()


def test_status_says_what_a_silent_phase_does() -> None:
    console = pipe()
    with progress.status("demo PACS: indexing 120,221 files", console):
        pass
    assert plain(console) == "demo PACS: indexing 120,221 files\n"
    with progress.status("nobody to tell"):  # no console: nothing, no error
        pass
    term = terminal()
    with progress.status("starting Prefect's temporary API server", term):
        logging.getLogger("prefect").warning("a warning during the phase")
    assert "a warning during the phase" in plain(term)
