"""Log files: one per command run in ``<log_dir>/<YYYY-MM-DD>/<command>_<HHMMSS>.log``, INFO."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyschedvisu import runlog
from pyschedvisu.cli import app
from pyschedvisu.runlog import log_file_path, open_run_log, prune_log_folders

runner = CliRunner()
SATURDAY = "2024-03-09"  # no business day: `retrieve` ends before any PACS request


@pytest.fixture
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "logs"
    monkeypatch.setenv("PYSCHEDVISU_PATHS__LOG_DIR", str(path))
    monkeypatch.setenv("PYSCHEDVISU_PATHS__DATA_DIR", str(tmp_path / "data"))
    return path


def only_log(log_dir: Path, pattern: str) -> Path:
    found = sorted(log_dir.glob(f"*/{pattern}"))
    assert len(found) == 1, sorted(log_dir.rglob("*"))
    return found[0]


def test_each_command_writes_its_log_in_a_dated_folder(log_dir: Path) -> None:
    """Regression: paths.log_dir was documented, but nothing wrote there."""
    before = dt.date.today()
    result = runner.invoke(app, ["retrieve", "--start", SATURDAY])
    assert result.exit_code == 0, result.output
    path = only_log(log_dir, "retrieve_*.log")
    assert path.parent.name in {before.isoformat(), dt.date.today().isoformat()}
    assert len(path.stem.split("_")[-1]) == 6  # HHMMSS
    text = path.read_text()
    assert "INFO pyschedvisu.cli: " in text and f"start={SATURDAY}" in text
    # a sub-command's name is its path: `pacs check` writes pacs-check_*.log
    assert runner.invoke(app, ["pacs", "check"]).exit_code == 1  # nothing listens there
    only_log(log_dir, "pacs-check_*.log")
    # `config show` only prints: no log file
    assert runner.invoke(app, ["config", "show"]).exit_code == 0
    assert not list(log_dir.glob("*/config*"))


def test_log_file_holds_info_and_above_never_debug(log_dir: Path) -> None:
    run_log = open_run_log(log_dir, "unit", 0, "DEBUG")
    assert run_log is not None
    logger = logging.getLogger("pyschedvisu.test_runlog")
    logger.setLevel(logging.DEBUG)
    with run_log:
        logger.debug("debug detail that may hold a patient id")
        logger.info("an info line")
        logger.warning("a warning")
    logger.info("after the run")
    text = run_log.path.read_text()
    assert "an info line" in text and "WARNING pyschedvisu.test_runlog: a warning" in text
    assert "debug detail" not in text and "after the run" not in text
    assert run_log.handler not in logging.getLogger().handlers


def test_old_log_folders_are_removed_when_a_run_starts(log_dir: Path) -> None:
    today = dt.date.today()
    old = log_dir / (today - dt.timedelta(days=31)).isoformat()
    kept = log_dir / (today - dt.timedelta(days=30)).isoformat()
    foreign = log_dir / "notes"
    for folder in (old, kept, foreign):
        folder.mkdir(parents=True)
        (folder / "x.log").write_text("x")
    (log_dir / "2001-01-01").write_text("a file, not a dated folder")
    result = runner.invoke(
        app, ["retrieve", "--start", SATURDAY], env={"PYSCHEDVISU_PATHS__LOG_RETENTION_DAYS": "30"}
    )
    assert result.exit_code == 0, result.output
    assert not old.exists()
    assert kept.is_dir() and foreign.is_dir() and (log_dir / "2001-01-01").is_file()
    assert (
        "removed 1 log folder(s) older than 30 day(s)"
        in only_log(log_dir, "retrieve_*.log").read_text()
    )


def test_log_retention_0_keeps_every_folder(tmp_path: Path) -> None:
    ancient = tmp_path / "1999-12-31"
    ancient.mkdir()
    assert prune_log_folders(tmp_path, 0, dt.date.today()) == []
    assert prune_log_folders(tmp_path, 1, dt.date(2000, 1, 1)) == []
    assert prune_log_folders(tmp_path, 1, dt.date(2000, 1, 2)) == [ancient]
    assert not ancient.exists()


def test_two_runs_in_the_same_second_get_two_files(tmp_path: Path) -> None:
    now = dt.datetime(2024, 3, 8, 7, 5, 9)
    first = log_file_path(tmp_path, "run weekly", now)
    assert first == tmp_path / "2024-03-08" / "run-weekly_070509.log"
    first.parent.mkdir()
    first.write_text("")
    assert log_file_path(tmp_path, "run weekly", now).name == "run-weekly_070509-2.log"


def test_a_log_folder_that_cannot_be_written_does_not_fail_the_command(
    log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    log_dir.write_text("a file where the folder should be")
    result = runner.invoke(app, ["retrieve", "--start", SATURDAY])
    assert result.exit_code == 0, result.output
    assert "no log file for this run" in caplog.text
    assert runlog.command_log() is None


def _record(name: str, level: int, exc: BaseException | None, **extra: object) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord(name, level, __file__, 1, "message", None, info)
    record.__dict__.update(extra)
    return record


def test_known_failures_lose_their_traceback_and_bugs_keep_it() -> None:
    from prefect.exceptions import FailedRun

    from pyschedvisu_core.errors import PacsError, StoreError

    quiet = runlog.KnownFailureFilter()
    # the engine re-raising a Failed state the flow returned: dropped (the flow said why)
    assert not quiet.filter(_record("prefect.engine", logging.ERROR, FailedRun("2 days")))
    # one of our errors in a task: a warning, no traceback; and so its final state line
    task = _record("prefect.task_runs", logging.ERROR, PacsError("busy"), task_run_id="t1")
    assert quiet.filter(task)
    assert (task.levelno, task.levelname, task.exc_info) == (logging.WARNING, "WARNING", None)
    finished = _record("prefect.task_runs", logging.ERROR, None, task_run_id="t1")
    assert quiet.filter(finished) and finished.levelno == logging.WARNING
    other_task = _record("prefect.task_runs", logging.ERROR, None, task_run_id="t2")
    assert quiet.filter(other_task) and other_task.levelno == logging.ERROR
    # one of our errors at flow level: still an ERROR, without traceback
    flow = _record("prefect.flow_runs", logging.ERROR, StoreError("disk"))
    assert quiet.filter(flow) and flow.levelno == logging.ERROR and flow.exc_info is None
    # a bug keeps everything
    bug = _record("prefect.task_runs", logging.ERROR, KeyError("x"), task_run_id="t3")
    assert quiet.filter(bug) and bug.exc_info is not None and bug.levelno == logging.ERROR


def test_quiet_known_failures_is_installed_once() -> None:
    runlog.quiet_known_failures()
    runlog.quiet_known_failures()
    for name in runlog.PREFECT_RUN_LOGGERS:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, runlog.KnownFailureFilter) for f in filters) == 1


def test_records_after_a_command_in_the_same_process_reach_the_current_stderr(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the terminal handler kept the stderr of the first command run in the
    process (a test runner's, closed after it): later records gave "--- Logging error ---"."""
    assert runner.invoke(app, ["retrieve", "--start", SATURDAY]).exit_code == 0
    logging.getLogger("pyschedvisu.test_runlog").warning("after the command")
    err = capsys.readouterr().err
    assert "WARNING pyschedvisu.test_runlog: after the command" in err
    assert "Logging error" not in err
