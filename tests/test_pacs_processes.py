"""``pacs serve --processes``: several processes answer one port, a new association going to
one that serves none."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.pacs import FIND, query, scu_ae


def serve(data: Path, processes: int) -> tuple[subprocess.Popen[str], int, list[str]]:
    """``pacs serve`` on a free port; returns once every process has said it listens."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "pyschedvisu.cli", "pacs", "serve", "--data", str(data)),
            *("--port", "0", "--processes", str(processes)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    port: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r"on 127\.0\.0\.1:(\d+):", line)
            if found:
                port.append(int(found.group(1)))
                if len(port) == processes:
                    ready.set()

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(60), "".join(lines)
    assert len(set(port)) == 1  # one port for all of them
    return proc, port[0], lines


@pytest.mark.slow
def test_two_associations_at_once_are_served_by_two_processes(tiny_pacs_dir: Path) -> None:
    proc, port, lines = serve(tiny_pacs_dir, 2)
    try:
        ae = scu_ae()
        assocs = [ae.associate("127.0.0.1", port, ae_title="DEMOPACS") for _ in range(2)]
        assert all(a.is_established for a in assocs)
        for a in assocs:  # both answer while both are open
            assert a.send_c_echo().Status == 0
            answers = list(a.send_c_find(query("STUDY", StudyInstanceUID=""), FIND["study"]))
            assert answers[-1][0].Status == 0 and len(answers) > 1
        for a in assocs:
            a.release()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    time.sleep(0.2)  # the output thread reads the last lines
    stopped = [line for line in lines if line.startswith("stopped:")]
    assert len(stopped) == 2, "".join(lines)
    assert all(line.startswith("stopped: 1 associations, 1 C-FIND") for line in stopped), stopped


@pytest.mark.slow
def test_the_other_processes_stop_with_the_first(tiny_pacs_dir: Path) -> None:
    proc, port, _ = serve(tiny_pacs_dir, 3)
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(children) == 2
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    ae = scu_ae()
    assert not ae.associate("127.0.0.1", port, ae_title="DEMOPACS").is_established


def test_a_taken_port_is_one_line_naming_it(tiny_pacs_dir: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pyschedvisu.cli", "pacs", "serve"),
                *("--data", str(tiny_pacs_dir), "--port", str(port), "--processes", "2"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"pacs serve: cannot listen on 127.0.0.1:{port}: " in done.stderr
    assert "Traceback" not in done.stderr
