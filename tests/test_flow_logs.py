"""What a flow run logs when it fails: a known failure once at ERROR, a bug with its traceback.

The backfill flow runs in this process against the session's real Prefect server and the
tiny demo department; its records are read back from the server and from its log file in
``<log_dir>/<YYYY-MM-DD>/backfill_<HHMMSS>.log``. (Through a worker: test_deploy_retry.py.)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from tests.fixtures.prefect_server import PrefectServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START, END = dt.date(2024, 3, 4), dt.date(2024, 3, 8)
BAD_DAY = dt.date(2024, 3, 5)
ERROR = 40


@pytest.fixture
def on_server(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url}):
        yield prefect_server


@pytest.fixture
def quick_retrieve(monkeypatch: pytest.MonkeyPatch) -> None:
    """No task-level retry delays (the worker test keeps the real ones)."""
    import tasks.retrieve

    monkeypatch.setattr(
        tasks.retrieve, "retrieve_day", tasks.retrieve.retrieve_day.with_options(retries=0)
    )


@pytest.fixture(autouse=True)
def _log_dir_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYSCHEDVISU_PATHS__LOG_DIR")  # (the tests' own would win over it)


def write_config(path: Path, pacs: DemoPacs, data: Path, logs: Path) -> Path:
    path.write_text(
        f"""
[pacs]
port = {pacs.port}
called_ae = "{pacs.ae_title}"
move_port = 0
op_retries = 0
[paths]
data_dir = "{data.as_posix()}"
log_dir = "{logs.as_posix()}"
[report]
year_start = 2024
"""
    )
    return path


def run_logs(srv: PrefectServer, state: Any) -> list[dict[str, Any]]:
    """The flow run's records (its tasks' included) as the server holds them."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    logs: list[dict[str, Any]] = srv.post(
        "/logs/filter",
        {
            "logs": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}},
            "sort": "TIMESTAMP_ASC",
        },
    )
    return logs


def test_known_failure_is_one_error_line_in_the_run_logs_and_its_log_file(
    on_server: PrefectServer,
    quick_retrieve: None,
    demo_pacs: Callable[..., DemoPacs],
    tiny_pacs_dir: Path,
    tmp_path: Path,
) -> None:
    """Regression: an intentionally Failed run logged ERROR tracebacks (task and engine)."""
    from flows.backfill import backfill

    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(fail_dates={BAD_DAY}))
    logs = tmp_path / "logs"
    config = write_config(tmp_path / "c.toml", pacs, tmp_path / "data", logs)

    state = backfill(start=START, end=END, config_path=str(config), return_state=True)
    assert state.is_failed(), state
    reason = "backfill: 1 day(s) could not be retrieved (2024-03-05)"
    assert (state.message or "").startswith(reason)

    records = run_logs(on_server, state)
    errors = [r["message"] for r in records if r["level"] >= ERROR]
    assert len(errors) == 1 and errors[0].startswith(reason), errors
    assert not [r["message"] for r in records if "Traceback" in r["message"]]
    # the failed day is a warning of its task, with its reason, no traceback
    day = [r for r in records if "RetrievalError" in r["message"]]
    assert day and all(r["level"] == 30 for r in day), day

    (path,) = logs.glob("*/backfill_*.log")
    text = path.read_text()
    assert text.count(" ERROR ") == 1 and "ERROR prefect.flow_runs [" in text
    assert text.count(reason) >= 1 and "Traceback" not in text
    assert "[retrieve-2024-03-04]" in text  # its tasks' lines, named
    assert not re.search(r"(?<![\d.])100\d(?![\d.])", text)  # no patient id of the department

    # dates the wrong way round, and a config that cannot be read, are known failures too
    state = backfill(start=END, end=START, config_path=str(config), return_state=True)
    assert state.is_failed() and "end 2024-03-04 is before start 2024-03-08" in (
        state.message or ""
    )
    errors = [r["message"] for r in run_logs(on_server, state) if r["level"] >= ERROR]
    assert errors == ["backfill: end 2024-03-04 is before start 2024-03-08"], errors

    state = backfill(
        start=START, end=END, config_path=str(tmp_path / "nope.toml"), return_state=True
    )
    assert state.is_failed() and "file not found" in (state.message or "")
    records = run_logs(on_server, state)
    errors = [r["message"] for r in records if r["level"] >= ERROR]
    assert len(errors) == 1 and "nope.toml: file not found" in errors[0], errors
    assert not [r["message"] for r in records if "Traceback" in r["message"]]


def test_unexpected_failure_keeps_its_traceback(
    on_server: PrefectServer,
    demo_pacs: Callable[..., DemoPacs],
    tiny_pacs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import flows.backfill

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the flow")

    import tasks.retrieve

    monkeypatch.setattr(tasks.retrieve, "retrieve_days", bug)
    logs = tmp_path / "logs"
    config = write_config(tmp_path / "c.toml", demo_pacs(tiny_pacs_dir), tmp_path / "d", logs)

    state = flows.backfill.backfill(
        start=START, end=END, config_path=str(config), return_state=True
    )
    assert state.is_failed(), state
    records = run_logs(on_server, state)
    tracebacks = [r for r in records if "Traceback" in r["message"]]
    assert tracebacks and all(r["level"] >= ERROR for r in tracebacks)
    assert "RuntimeError: a bug in the flow" in tracebacks[0]["message"]
    (path,) = logs.glob("*/backfill_*.log")
    text = path.read_text()
    assert "ERROR flows: backfill failed unexpectedly" in text
    assert "Traceback" in text and "RuntimeError: a bug in the flow" in text
