"""``pyschedvisu pacs serve``: a real process serving over DICOM until interrupted."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.commands.pacs import parse_move_dest
from tests.conftest import free_port
from tests.fixtures.pacs import MOVE, c_find, query, scu_ae, uid


def _serve(args: list[str]) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyschedvisu.cli", "pacs", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _wait_for(lines: queue.Queue[str], pattern: str, timeout: float = 60) -> str:
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no line matching {pattern!r} in time; got:\n{''.join(seen)}"
            ) from None
        seen.append(line)
        if re.search(pattern, line):
            return line


def test_serve_answers_then_stops_on_ctrl_c(tiny_pacs_dir: Path) -> None:
    port = free_port()
    proc, lines = _serve(["--data", str(tiny_pacs_dir), "--port", str(port), "--hospital", "--max-ops-per-s", "50",
                          "--move-dest", "PYSCHEDVISU=127.0.0.1:11113"])  # fmt: skip
    try:
        ready = _wait_for(lines, "Ctrl-C to stop")
        assert (
            f"127.0.0.1:{port}" in ready
            and "C-GET refused" in ready
            and "IMAGE level minimal" in ready
        )
        assert "PYSCHEDVISU=127.0.0.1:11113" in ready
        status, answers = c_find(
            "127.0.0.1",
            port,
            query(
                "IMAGE",
                StudyInstanceUID=uid("st1"),
                SeriesInstanceUID=uid("se2"),
                SOPInstanceUID="",
                AcquisitionTime="",
            ),
        )
        assert status == 0 and len(answers) == 3
        assert all("AcquisitionTime" not in a for a in answers)
        assoc = scu_ae().associate("127.0.0.1", port)
        assert {str(u) for u in MOVE.values()} <= {
            str(c.abstract_syntax) for c in assoc.accepted_contexts
        }
        assoc.release()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "stopped: 2 associations, 1 C-FIND" in _wait_for(lines, "stopped:")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_bad_move_destination_exits_2(tiny_pacs_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["pacs", "serve", "--data", str(tiny_pacs_dir), "--move-dest", "NOPORT"]
    )
    assert result.exit_code == 2
    assert "AE=HOST:PORT" in result.output


def test_serve_missing_data_dir_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["pacs", "serve", "--data", str(tmp_path / "nowhere"), "--port", "0"]
    )
    assert result.exit_code == 1
    assert "no such DICOM directory" in result.output


def test_parse_move_dest() -> None:
    assert parse_move_dest("PYSCHEDVISU=127.0.0.1:11113") == ("PYSCHEDVISU", ("127.0.0.1", 11113))
    for bad in ("X", "AE=host", "AE=:1", "=h:1", "AE=h:0", "A" * 17 + "=h:1"):
        with pytest.raises(typer.BadParameter):
            parse_move_dest(bad)
