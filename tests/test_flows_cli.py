"""``pyschedvisu run`` and ``pyschedvisu demo``: argument handling, and the demo twice for real."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.commands.demo import demo_toml, demo_window, run_demo
from pyschedvisu.config import load_settings
from pyschedvisu.worklist.store import WorklistStore

runner = CliRunner()
ZH = ZoneInfo("Europe/Zurich")


def test_run_and_demo_commands_are_registered() -> None:
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    assert "weekly" in result.output and "backfill" in result.output
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "--weeks" in result.output


def test_run_weekly_with_a_bad_config_exits_2_before_prefect(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[pacs]\nprot = 104\n")
    result = runner.invoke(app, ["--config", str(bad), "run", "weekly", "--no-email"])
    assert result.exit_code == 2
    assert "pacs.prot" in result.output


def test_run_backfill_with_a_bad_date_exits_2() -> None:
    result = runner.invoke(app, ["run", "backfill", "--start", "2024-13-01", "--end", "2024-03-08"])
    assert result.exit_code == 2
    assert "not a date" in result.output


def test_demo_window_ends_last_friday() -> None:
    # Wednesday 2026-11-25 -> the department ends Friday 2026-11-20, 26 weeks from a Monday.
    start, end = demo_window(dt.datetime(2026, 11, 25, 10, 0, tzinfo=ZH), 26)
    assert end == dt.date(2026, 11, 20)
    assert start.weekday() == 0 and (end - start).days == 26 * 7 - 3


def test_demo_config_is_valid_and_local(tmp_path: Path) -> None:
    path = tmp_path / "pyschedvisu.toml"
    path.write_text(demo_toml(tmp_path, 12345, 2026))
    settings = load_settings(path)
    assert settings.pacs.port == 12345 and settings.pacs.host == "127.0.0.1"
    assert settings.paths.data_dir == tmp_path / "data"
    assert settings.paths.output_dir == tmp_path / "reports"
    assert settings.privacy.allow_demo_key
    assert settings.email.dry_run and settings.email.enabled
    assert settings.report.year_start == 2026
    # the demo PACS serves the appointment book too
    assert settings.worklist.enabled and settings.worklist.port == settings.pacs.port


def test_demo_port_left_in_time_wait_is_still_free() -> None:
    """Regression: a second demo run moved its PACS port (so every day was fetched again)
    because the previous run's connections in TIME_WAIT made the port look taken."""
    from pyschedvisu.commands.demo import _port_free

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server side closes first: its end of the connection enters TIME_WAIT
    client.close()
    listener.close()
    assert _port_free(port)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert not _port_free(busy.getsockname()[1])


@pytest.mark.integration
@pytest.mark.slow
def test_demo_second_run_reuses_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-week department; the second run fetches nothing and regenerates nothing."""
    from flows.weekly import needed_days

    for var in ("PREFECT_HOME", "PREFECT_API_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("PYSCHEDVISU_PSEUDONYM_KEY")  # the demo uses its public demo key
    # Late June: the half-year period stays inside the year, so few empty days to ask about.
    now = dt.datetime(2026, 6, 27, 12, 0, tzinfo=ZH)
    root = tmp_path / "demo"

    first = run_demo(root, weeks=1, now=now)
    assert first["end"] == "2026-06-26"
    settings = load_settings(root / "pyschedvisu.toml")
    assert first["fetched"] == first["days"] == len(needed_days(settings, dt.date(2026, 6, 26)))
    assert first["days"] == 5  # the department's week: its PACS is not asked about January
    assert Path(first["pdf"]).is_file() and Path(first["html"]).is_file()
    assert first["pages"] >= 5  # every machine has studies that week
    assert first["email"]["dry_run"] and not first["email"]["sent"]
    assert (root / ".prefect").is_dir()  # Prefect's local mode kept its state in the demo dir
    plans = WorklistStore(settings.paths.data_dir)
    week = settings.business_days(dt.date(2026, 6, 22), dt.date(2026, 6, 26))
    assert plans.planned_days() == week  # the department's week, snapshotted once each
    snapshots = {d: plans.snapshot_files(d) for d in week}
    config_text = (root / "pyschedvisu.toml").read_text()
    dicom_mtimes = {p: p.stat().st_mtime_ns for p in (root / "department" / "dicom").rglob("*.dcm")}
    assert dicom_mtimes

    second = run_demo(root, weeks=1, now=now)
    assert second["fetched"] == 0 and second["missing"] == []
    assert second["pdf"] != first["pdf"] and Path(second["pdf"]).is_file()
    assert (root / "pyschedvisu.toml").read_text() == config_text
    assert {d: plans.snapshot_files(d) for d in week} == snapshots  # not asked again
    assert {p: p.stat().st_mtime_ns for p in dicom_mtimes} == dicom_mtimes


def test_demo_pacs_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    """The demo PACS process exits (its data folder is missing): one error with its output."""
    from pyschedvisu.commands.demo import demo_pacs_process, write_config
    from pyschedvisu_core.errors import PySchedVisuError

    config = write_config(tmp_path, 2026)
    settings = load_settings(config)
    with (
        pytest.raises(PySchedVisuError, match="demo PACS exited") as info,
        demo_pacs_process(tmp_path / "no-such-department", config, settings),
    ):
        raise AssertionError("the block must not run")
    assert "no-such-department" in str(info.value)
