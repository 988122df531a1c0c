"""``pyschedvisu worklist snapshot`` and ``worklist match``: one line each, exit codes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from pyschedvisu.worklist.store import WorklistStore
from tests.conftest import free_port

runner = CliRunner()
DAY = "2024-03-06"


def config(tmp_path: Path, port: int, *, enabled: bool = True) -> Path:
    path = tmp_path / "pyschedvisu.toml"
    path.write_text(
        f"""
[pacs]
op_retries = 0
connect_timeout_s = 2
[worklist]
enabled = {str(enabled).lower()}
port = {port}
[paths]
data_dir = "{(tmp_path / "data").as_posix()}"
"""
    )
    return path


def test_snapshot_prints_what_it_kept_and_match_the_counts(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    pacs: DemoPacs = demo_pacs(synth_week)  # the real time: the whole day is booked and past
    cfg = config(tmp_path, pacs.port)
    result = runner.invoke(app, ["--config", str(cfg), "worklist", "snapshot", "--date", DAY])
    assert result.exit_code == 0, result.output
    truth = pl.read_parquet(synth_week / "truth" / "book.parquet").filter(
        (pl.col("date") == dt.date.fromisoformat(DAY)) & pl.col("cancelled_at").is_null()
    )
    assert f"{DAY}: {truth.height} step(s) in the worklist" in result.output
    assert f"plan of the day: {truth.height} step(s) from 1 snapshot(s)" in result.output
    assert WorklistStore(tmp_path / "data").planned_days() == [dt.date.fromisoformat(DAY)]
    result = runner.invoke(app, ["--config", str(cfg), "worklist", "match"])
    assert result.exit_code == 0, result.output
    # no study table yet: every step a no-show, said plainly
    assert f"1 day(s) with a plan: 0 performed, {truth.height} no-show, 0 unplanned" in (
        result.output
    )


def test_a_worklist_down_is_one_line_and_exit_1(tmp_path: Path) -> None:
    cfg = config(tmp_path, free_port())
    result = runner.invoke(app, ["--config", str(cfg), "worklist", "snapshot", "--date", DAY])
    assert result.exit_code == 1
    (line,) = [x for x in result.output.splitlines() if x.startswith("worklist snapshot failed")]
    assert "nothing kept" in line and "Traceback" not in result.output


def test_a_worklist_that_is_off_is_a_config_error(tmp_path: Path) -> None:
    cfg = config(tmp_path, free_port(), enabled=False)
    result = runner.invoke(app, ["--config", str(cfg), "worklist", "snapshot"])
    assert result.exit_code == 2
    assert "worklist.enabled: false" in result.output


def test_a_rejected_ae_title_is_one_line(synth_week: Path, demo_pacs: Any, tmp_path: Path) -> None:
    pacs = demo_pacs(synth_week, behaviour=Behaviour(reject_calling_aes={"PYSCHEDVISU"}))
    cfg = config(tmp_path, pacs.port)
    result = runner.invoke(app, ["--config", str(cfg), "worklist", "snapshot", "--date", DAY])
    assert result.exit_code == 1
    assert "association rejected" in result.output
    assert "(worklist.calling_ae)" in result.output and "the RIS team" in result.output
