"""SIGTERM (kill, systemd, a container stopping) stops a long command the way Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pyschedvisu.cli import EXIT_TERMINATED
from pyschedvisu.store import SeriesStore
from tests.fixtures.prefect_server import PrefectServer

pytestmark = pytest.mark.slow

DAYS = ("2024-03-04", "2024-03-08")  # the synthetic week: 5 business days


def slow_pacs_env(pacs: Any, data: Path) -> dict[str, str]:
    """The CLI against ``pacs``, paced so that a day takes a few seconds."""
    return {
        **os.environ,
        "PYSCHEDVISU_PACS__PORT": str(pacs.port),
        "PYSCHEDVISU_PACS__CALLED_AE": pacs.ae_title,
        "PYSCHEDVISU_PACS__MAX_OPS_PER_S": "15",
        "PYSCHEDVISU_PACS__MAX_CONCURRENT": "2",
        "PYSCHEDVISU_PATHS__DATA_DIR": str(data),
    }


def terminate_after_first_day(proc: subprocess.Popen[str], store: SeriesStore) -> str:
    """SIGTERM once the first day is stored; the command's whole output."""
    deadline = time.monotonic() + 180
    while not store.days():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no day stored"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


def test_sigterm_stops_retrieve_like_ctrl_c_and_keeps_the_finished_days(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    """Regression: SIGTERM ended `retrieve` without a word (Ctrl-C said what was kept)."""
    pacs = demo_pacs(synth_week)
    data = tmp_path / "data"
    env = slow_pacs_env(pacs, data)
    cmd = [
        sys.executable,
        "-m",
        "pyschedvisu.cli",
        "retrieve",
        "--start",
        DAYS[0],
        "--end",
        DAYS[1],
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    store = SeriesStore(data)
    out = terminate_after_first_day(proc, store)
    assert proc.returncode == EXIT_TERMINATED == 143, out
    kept = store.days()
    assert f"interrupted: {len(kept)} of 5 day(s) done and kept" in out, out
    assert "Traceback" not in out, out
    assert 1 <= len(kept) < 5  # stopped: the last days never ran
    assert not list(data.rglob("*.tmp"))  # the days in flight wrote nothing
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("from store") == len(kept)


@pytest.mark.integration
def test_sigterm_stops_run_backfill_and_says_the_days_kept(
    synth_week: Path, demo_pacs: Any, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    """The backfill flow run by the CLI: same stop, same word about the days kept."""
    pacs = demo_pacs(synth_week)
    data = tmp_path / "data"
    env = {**slow_pacs_env(pacs, data), "PREFECT_API_URL": prefect_server.url}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    cmd = [sys.executable, "-m", "pyschedvisu.cli", "run", "backfill"]
    proc = subprocess.Popen(
        [*cmd, "--start", DAYS[0], "--end", DAYS[1]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    store = SeriesStore(data)
    out = terminate_after_first_day(proc, store)
    assert proc.returncode != 0, out
    kept = store.days()
    assert f"interrupted: {len(kept)} of 5 day(s) in the store and kept" in out, out
    assert "Traceback" not in out, out
