"""`pyschedvisu retrieve` and `pyschedvisu pacs check` through the real CLI against the demo PACS."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.demo_pacs import Behaviour
from pyschedvisu.retrieval import forget_capabilities
from pyschedvisu.store import SeriesStore
from tests.conftest import free_port


@pytest.fixture(autouse=True)
def _fresh_probe_memory() -> None:
    forget_capabilities()


@pytest.fixture
def setup(demo_pacs: Any, tiny_pacs_dir: Path, tmp_path: Path) -> tuple[Any, Path, Path]:
    move_port = free_port()
    pacs = demo_pacs(tiny_pacs_dir, move_destinations={"PYSCHEDVISU": ("127.0.0.1", move_port)})
    data = tmp_path / "data"
    config = tmp_path / "pyschedvisu.toml"
    config.write_text(
        f"""
[pacs]
port = {pacs.port}
called_ae = "{pacs.ae_title}"
move_port = {move_port}
move_bind = "127.0.0.1"
max_ops_per_s = 200.0
backoff_base_s = 0.02
backoff_max_s = 0.1
backoff_jitter_s = 0.01
op_retries = 1

[paths]
data_dir = "{data.as_posix()}"

[retrieve]
retries_per_day = 1
""",
        encoding="utf-8",
    )
    return pacs, config, data


def run(config: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(config), *args], catch_exceptions=False)


def test_retrieve_range_prints_a_table_and_a_second_run_uses_the_store(
    setup: tuple[Any, Path, Path],
) -> None:
    pacs, config, data = setup
    # 2024-03-02/03 are a weekend: not asked
    res = run(config, "retrieve", "--start", "2024-03-02", "--end", "2024-03-06")
    assert res.exit_code == 0, res.output
    # the table's row, not its title (which names the range)
    row = next(
        line for line in res.output.splitlines() if line.strip(" │┃|").startswith("2024-03-04")
    )
    # day, studies, series kept, excluded, failed
    assert re.search(r"2024-03-04\D+2\D+3\D+0\D+0\b", row), row
    assert SeriesStore(data).days() == [
        dt.date(2024, 3, 4),
        dt.date(2024, 3, 5),
        dt.date(2024, 3, 6),
    ]
    finds = pacs.stats.find
    res = run(config, "retrieve", "--start", "2024-03-04", "--end", "2024-03-06")
    assert res.exit_code == 0
    assert res.output.count("from store") == 3
    assert pacs.stats.find == finds


def test_failed_day_exits_1_and_is_named(setup: tuple[Any, Path, Path]) -> None:
    pacs, config, data = setup
    pacs.behaviour = Behaviour(fail_dates={dt.date(2024, 3, 5)})
    res = run(config, "retrieve", "--start", "2024-03-04", "--end", "2024-03-06")
    assert res.exit_code == 1
    assert re.search(r"day 2024-03-05 failed", res.output)
    assert SeriesStore(data).days() == [dt.date(2024, 3, 4), dt.date(2024, 3, 6)]


def test_missing_key_exits_2(
    setup: tuple[Any, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, config, _ = setup
    monkeypatch.delenv("PYSCHEDVISU_PSEUDONYM_KEY")
    res = CliRunner().invoke(app, ["--config", str(config), "retrieve", "--start", "2024-03-04"])
    assert res.exit_code == 2
    assert "PYSCHEDVISU_PSEUDONYM_KEY" in res.output


def test_unreachable_pacs_fails_fast(
    setup: tuple[Any, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, config, _ = setup
    monkeypatch.setenv("PYSCHEDVISU_PACS__PORT", str(free_port()))
    res = run(config, "retrieve", "--start", "2024-03-04", "--end", "2024-03-06")
    assert res.exit_code == 1
    assert "day 2024-03-04 failed: not retrieved (stopped" in res.output
    assert "2024-03-06 failed: not retrieved (stopped" in res.output
    # the run's last line of its own says why it stopped (log lines may follow in tests)
    (last,) = [line for line in res.output.splitlines() if line.startswith("stopped: ")]
    assert re.match(r"stopped: PACS \S+ unreachable since \d\d:\d\d:\d\d \(\d+ attempts\)", last)
    assert "check pacs.host, pacs.port and the firewall" in last.lower()


def test_pacs_check_reports_each_method(setup: tuple[Any, Path, Path]) -> None:
    pacs, config, data = setup
    pacs.behaviour = Behaviour(refuse_get=True, image_level_minimal=True)
    res = run(config, "pacs", "check", "--day", "2024-03-04")
    assert res.exit_code == 0, res.output
    assert "C-ECHO" in res.output and ": ok" in res.output
    assert "timing attributes: no" in res.output
    assert "C-GET of instances: no" in res.output
    assert re.search(r"C-MOVE to PYSCHEDVISU, port \d+: yes", res.output)
    assert "uses c-move" in res.output
    assert "day-wide (relational) C-FIND on 2024-03-04: yes (2 studies" in res.output
    assert "C-FIND answers deflated: yes" in res.output
    assert (data / "pacs_capabilities.json").exists()


def test_pacs_check_says_whether_answers_come_deflated(
    setup: tuple[Any, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, config, _ = setup
    monkeypatch.setenv("PYSCHEDVISU_PACS__DEFLATE_ANSWERS", "false")
    res = run(config, "pacs", "check", "--day", "2024-03-04")
    assert res.exit_code == 0, res.output
    assert "C-FIND answers deflated: not asked (pacs.deflate_answers = false)" in res.output


def test_pacs_check_records_day_wide_queries_for_the_retrieval(
    setup: tuple[Any, Path, Path],
) -> None:
    """Regression: ``pacs check`` wrote the capabilities without the day-wide answer."""
    from pyschedvisu.config import load_settings
    from pyschedvisu.retrieval import record_for

    pacs, config, _ = setup
    settings = load_settings(config)
    for relational, shown in ((False, "no"), (True, "yes")):
        pacs.behaviour = Behaviour(relational=relational)
        res = run(config, "pacs", "check", "--day", "2024-03-04")
        assert res.exit_code == 0, res.output
        assert f"day-wide (relational) C-FIND on 2024-03-04: {shown}" in res.output
        forget_capabilities()
        assert record_for(settings).relational is relational
    # a retrieval then asks day-wide at once: one SERIES query for the day's two studies
    pacs.reset_stats()
    res = run(config, "retrieve", "--start", "2024-03-04", "--end", "2024-03-04")
    assert res.exit_code == 0, res.output
    assert [op.level for op in pacs.stats.ops if op.kind == "find"].count("SERIES") == 1


def test_pacs_check_unreachable_or_rejected_is_one_line_and_exit_1(
    setup: tuple[Any, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pacs, config, _ = setup
    pacs.behaviour = Behaviour(reject_calling_aes={"PYSCHEDVISU"})
    res = run(config, "pacs", "check")
    assert res.exit_code == 1
    assert "NOT usable" in res.output and "rejected" in res.output
    monkeypatch.setenv("PYSCHEDVISU_PACS__PORT", str(free_port()))
    res = run(config, "pacs", "check")
    assert res.exit_code == 1
    assert "NOT usable" in res.output


@pytest.mark.slow
def test_days_retrieved_two_at_a_time_store_what_one_at_a_time_stores(
    demo_pacs: Any, synth_week: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from polars.testing import assert_frame_equal

    pacs = demo_pacs(synth_week / "dicom")
    config = tmp_path / "pyschedvisu.toml"
    config.write_text(
        f"""
[pacs]
port = {pacs.port}
called_ae = "{pacs.ae_title}"
move_port = 0
max_ops_per_s = 200.0
""",
        encoding="utf-8",
    )
    stores = {}
    for workers in (1, 2):
        data = tmp_path / f"data-{workers}"
        monkeypatch.setenv("PYSCHEDVISU_PACS__MAX_CONCURRENT", str(workers))
        monkeypatch.setenv("PYSCHEDVISU_PATHS__DATA_DIR", str(data))
        forget_capabilities()
        res = run(config, "retrieve", "--start", "2024-03-04", "--end", "2024-03-08")
        assert res.exit_code == 0, res.output
        # the table lists the days in order, whatever order they finished in
        rows = re.findall(r"^│ (2024-03-0\d) │", res.output, flags=re.MULTILINE)
        assert rows == [f"2024-03-0{d}" for d in range(4, 9)], res.output
        stores[workers] = SeriesStore(data)
    assert stores[1].days() == stores[2].days() == [dt.date(2024, 3, d) for d in range(4, 9)]
    for kind in ("series", "failed", "excluded"):
        assert_frame_equal(stores[1].load(kind), stores[2].load(kind))
    assert stores[1].load("series").height > 50


@pytest.mark.slow
def test_ctrl_c_stops_the_days_in_flight_and_keeps_the_finished_ones(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    """Regression: Ctrl-C waited for the days in flight and said nothing of what was kept."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pacs = demo_pacs(synth_week)
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PYSCHEDVISU_PACS__PORT": str(pacs.port),
        "PYSCHEDVISU_PACS__CALLED_AE": pacs.ae_title,
        "PYSCHEDVISU_PACS__MAX_OPS_PER_S": "15",
        "PYSCHEDVISU_PACS__MAX_CONCURRENT": "2",
        "PYSCHEDVISU_PATHS__DATA_DIR": str(data),
    }
    cmd = [sys.executable, "-m", "pyschedvisu.cli", "retrieve"]
    proc = subprocess.Popen(
        [*cmd, "--start", "2024-03-04", "--end", "2024-03-08"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    store = SeriesStore(data)
    deadline = time.monotonic() + 120
    while not store.days():  # the first day is stored
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no day stored"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    kept = store.days()
    assert f"interrupted: {len(kept)} of 5 day(s) done and kept" in out
    assert 1 <= len(kept) < 5  # stopped: the last days (pacing: 53 requests each) never ran
    assert not list(data.rglob("*.tmp"))  # the days in flight wrote nothing
    # a second run fetches only the others
    again = subprocess.run(
        [*cmd, "--start", "2024-03-04", "--end", "2024-03-08"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("from store") == len(kept)
    assert len(store.days()) == 5
