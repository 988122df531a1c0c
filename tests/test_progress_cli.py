"""Progress over days in the commands: one bar on a terminal (a pty), lines in a pipe."""

from __future__ import annotations

import os
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.retrieval import forget_capabilities

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: the INFO line retrieve_day logs for each day
PER_DAY_LINE = re.compile(r"\d{4}-\d\d-\d\d: \d+ studies, \d+ series kept")


@pytest.fixture(autouse=True)
def _fresh_probe_memory() -> None:
    forget_capabilities()


def run_in_pty(cmd: list[str], env: dict[str, str], timeout: float = 180) -> tuple[int, str]:
    """Run ``cmd`` with a terminal (120 x 40) as stdin, stdout and stderr; (exit code, output)."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError("no end in time: " + b"".join(chunks).decode(errors="replace"))
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
    return code, b"".join(chunks).decode(errors="replace")


def screen_text(raw: str) -> str:
    """What the terminal showed, colours removed, each redraw of the bar on its own line."""
    return ANSI.sub("", raw).replace("\r\n", "\n").replace("\r", "\n")


@pytest.fixture
def retrieve_config(demo_pacs: Any, tiny_pacs_dir: Path, tmp_path: Path) -> Path:
    pacs = demo_pacs(tiny_pacs_dir)
    config = tmp_path / "pyschedvisu.toml"
    config.write_text(
        f"""
[pacs]
port = {pacs.port}
called_ae = "{pacs.ae_title}"
move_port = 0
max_ops_per_s = 200.0

[paths]
data_dir = "{(tmp_path / "data").as_posix()}"
""",
        encoding="utf-8",
    )
    return config


def test_retrieve_on_a_terminal_shows_one_bar_over_days_and_no_per_day_lines(
    retrieve_config: Path,
) -> None:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    cmd = [sys.executable, "-m", "pyschedvisu.cli", "--config", str(retrieve_config)]
    code, raw = run_in_pty([*cmd, "retrieve", "--start", "2024-03-04", "--end", "2024-03-06"], env)
    out = screen_text(raw)
    assert code == 0, out
    assert "\x1b[" in raw  # a terminal: rich drew with escape sequences
    bars = [line for line in out.splitlines() if re.search(r"retrieval .*\d/3 days", line)]
    assert bars, out
    assert re.search(r"3/3 days .*0 failed .*elapsed", bars[-1]), bars[-1]
    assert not PER_DAY_LINE.search(out), out  # per-day detail: in the table only
    rows = re.findall(r"^│ (2024-03-0\d) │", out, flags=re.MULTILINE)
    assert rows == ["2024-03-04", "2024-03-05", "2024-03-06"], out


def test_retrieve_in_a_pipe_prints_progress_lines_and_the_table(retrieve_config: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "--config",
            str(retrieve_config),
            "retrieve",
            "--start",
            "2024-03-04",
            "--end",
            "2024-03-06",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"^retrieval: 3/3 days \(100 %\), .* elapsed$", res.output, re.MULTILINE)
    assert not PER_DAY_LINE.search(res.output), res.output
    assert "\x1b[" not in res.output
