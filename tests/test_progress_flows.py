"""Progress of the flows: a line every few days in the run's logs (its tasks keep their per-day
lines), one bar on the terminal of ``pyschedvisu run backfill`` instead of those lines.

The backfill flow runs against the session's real Prefect server and the tiny demo department
(2024-03-04..08, one day failing at the PACS).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from tests.fixtures.prefect_server import PrefectServer
from tests.test_progress_cli import PER_DAY_LINE, run_in_pty, screen_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START, END = dt.date(2024, 3, 4), dt.date(2024, 3, 8)
BAD_DAY = dt.date(2024, 3, 5)


@pytest.fixture
def on_server(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url}):
        yield prefect_server


def write_config(path: Path, pacs: DemoPacs, data: Path) -> Path:
    path.write_text(
        f"""
[pacs]
port = {pacs.port}
called_ae = "{pacs.ae_title}"
move_port = 0
op_retries = 0
[paths]
data_dir = "{data.as_posix()}"
"""
    )
    return path


def run_logs(srv: PrefectServer, state: Any) -> list[dict[str, Any]]:
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


def test_backfill_logs_a_progress_line_every_n_days_and_keeps_each_day_s_lines(
    on_server: PrefectServer,
    demo_pacs: Callable[..., DemoPacs],
    tiny_pacs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tasks.retrieve
    from flows.backfill import backfill
    from pyschedvisu import progress

    monkeypatch.setattr(
        tasks.retrieve, "retrieve_day", tasks.retrieve.retrieve_day.with_options(retries=0)
    )
    monkeypatch.setattr(progress, "default_every", lambda total: 2)
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(fail_dates={BAD_DAY}))
    config = write_config(tmp_path / "c.toml", pacs, tmp_path / "data")

    state = backfill(start=START, end=END, config_path=str(config), return_state=True)

    assert state.is_failed()
    logs = run_logs(on_server, state)
    flow_lines = [r["message"] for r in logs if r["task_run_id"] is None]
    lines = [m for m in flow_lines if m.startswith("retrieval: ")]
    assert [re.match(r"retrieval: (\d)/5 days", m)[1] for m in lines] == ["2", "4", "5"], lines  # type: ignore[index]
    assert re.match(r"retrieval: 5/5 days \(100 %\), 1 failed, .* elapsed$", lines[-1]), lines
    # each day's task run still logs its own line
    task_lines = [r["message"] for r in logs if r["task_run_id"] is not None]
    for day in ("2024-03-04", "2024-03-06", "2024-03-07"):
        assert any(m.startswith(f"{day}: ") for m in task_lines), (day, task_lines)


def test_run_backfill_on_a_terminal_shows_one_bar_and_not_each_day(
    prefect_server: PrefectServer,
    demo_pacs: Callable[..., DemoPacs],
    tiny_pacs_dir: Path,
    tmp_path: Path,
) -> None:
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(fail_dates={BAD_DAY}))
    config = write_config(tmp_path / "c.toml", pacs, tmp_path / "data")
    env = {
        **os.environ,
        **prefect_server.env,
        "TERM": "xterm-256color",
        # no retry delays: the day that fails is asked once
        "PYSCHEDVISU_RETRIEVE__RETRIES_PER_DAY": "0",
    }
    cmd = [sys.executable, "-m", "pyschedvisu.cli", "--config", str(config), "run", "backfill"]
    code, raw = run_in_pty([*cmd, "--start", str(START), "--end", str(END)], env, timeout=300)
    out = screen_text(raw)
    assert code == 1, out  # one day missing: the run ends Failed
    bars = [line for line in out.splitlines() if re.search(r"retrieval .*\d/5 days", line)]
    assert bars and re.search(r"5/5 days .*1 failed", bars[-1]), out
    assert "extracting the study table" in out
    assert not PER_DAY_LINE.search(out), out
    assert "Finished in state Completed()" not in out  # task runs' lines: in the log only
    assert "retrieval: 5/5 days" not in out  # the flow's progress line: the bar said it
    assert BAD_DAY.isoformat() in out  # the failure is said (the run's ERROR line)
