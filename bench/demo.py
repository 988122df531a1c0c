"""Benchmark: ``make demo`` from a clean clone, first and second run, as a user sees it.

    .venv/bin/python bench/demo.py [--rev HEAD] [--weeks 26] [--out DIR] [--keep] [--runs 2]

A clean clone of ``--rev`` (this repository, committed state) is made in a temporary folder
and ``make demo`` runs there ``--runs`` times (the first one creates ``.venv/``, installs the
packages, generates the department, retrieves every day over DICOM; the next ones reuse
everything), each under ``/usr/bin/time -v`` and with a terminal (a pty, 120 x 40), as when
typed. Every chunk of output is time-stamped on arrival, so the benchmark reads:

- the wall time, the CPU time of ``make`` and its children, the peak RSS;
- the load average before and after (the machine is shared: compare runs of similar load);
- where the time goes, from what the demo prints: install (up to ``[1/4]``), synthetic
  department (``[1/4]``..``[2/4]``), demo PACS start and indexing (``[2/4]``..``[3/4]``), the
  wait for Prefect's API server, the flow and its own phases (``phases (s): ...``), the end;
- the longest silence: the longest time without any output (a bar or a spinner redraws
  several times a second), and the last line printed before it.

Targets (issue 16.7): first run <= 180 s, second run <= 40 s, on this 2-core machine; no
silent phase longer than 5 s. Prints a table and writes ``demo-bench.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
TARGETS_S = {1: 180.0}
SECOND_TARGET_S = 40.0
SILENCE_TARGET_S = 5.0


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_in_pty(
    cmd: list[str], cwd: Path, env: dict[str, str]
) -> tuple[int, list[tuple[float, bytes]]]:
    """Run ``cmd`` on a terminal; (exit code, [(seconds since start, chunk), ...])."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    chunks: list[tuple[float, bytes]] = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not data:
                break
            chunks.append((time.monotonic() - t0, data))
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(), chunks


def lines_of(chunks: list[tuple[float, bytes]]) -> list[tuple[float, str]]:
    """Text lines (colours removed, each redraw of a bar on its own) with their time."""
    out: list[tuple[float, str]] = []
    pending = b""  # a line cut between two chunks
    for t, data in [*chunks, (chunks[-1][0] if chunks else 0.0, b"\n")]:
        pending += data
        *complete, pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for raw in complete:
            line = ANSI.sub(b"", raw).decode(errors="replace").rstrip()
            if line.strip():
                out.append((t, line))
    return out


def first(lines: list[tuple[float, str]], pattern: str) -> float | None:
    rx = re.compile(pattern)
    return next((t for t, line in lines if rx.search(line)), None)


def phases(lines: list[tuple[float, str]], total: float) -> dict[str, float | None]:
    """Where the time went, from the demo's own lines (None: the marker never appeared)."""
    marks = {
        "step1": first(lines, r"^\[1/4\]"),
        "step2": first(lines, r"^\[2/4\]"),
        "step3": first(lines, r"^\[3/4\]"),
        "api": first(lines, r"Prefect's temporary API server up|Beginning flow run"),
        "flow": first(lines, r"Beginning flow run"),
        "flow_end": first(lines, r"Flow run .* Finished in state"),
        "done": first(lines, r"^\[4/4\]"),
    }

    def span(a: str | None, b: str | None) -> float | None:
        ta = 0.0 if a is None else marks[a]
        tb = total if b is None else marks[b]
        return None if ta is None or tb is None else round(tb - ta, 1)

    out: dict[str, float | None] = {
        "install and start (make, pip, python)": span(None, "step1"),
        "synthetic department": span("step1", "step2"),
        "demo PACS start (index)": span("step2", "step3"),
        "wait for Prefect's API server": span("step3", "api"),
        "flow run (all)": span("flow", "flow_end"),
        "end (exit, servers stopped)": span("done", None),
    }
    text = next((line for _, line in lines if "phases (s):" in line), "")
    for name, value in re.findall(r"(\w+) ([\d.]+)", text.split("phases (s):")[-1]):
        out[f"  flow: {name}"] = float(value)
    return out


def silence(chunks: list[tuple[float, bytes]], total: float) -> tuple[float, float, str]:
    """(longest time without output, when it began, the last line before it)."""
    best, at, before = 0.0, 0.0, ""
    last_t = 0.0
    last_line = ""
    for t, data in [*chunks, (total, b"")]:
        if t - last_t > best:
            best, at, before = t - last_t, last_t, last_line
        last_t = t
        text = [
            line
            for line in ANSI.sub(b"", data)
            .replace(b"\r", b"\n")
            .decode(errors="replace")
            .split("\n")
            if line.strip()
        ]
        if text:
            last_line = text[-1].strip()
    return round(best, 1), round(at, 1), before[:100]


def cpu_of(lines: list[tuple[float, str]]) -> dict[str, Any]:
    get = {
        "user_s": r"User time \(seconds\): ([\d.]+)",
        "sys_s": r"System time \(seconds\): ([\d.]+)",
        "max_rss_kb": r"Maximum resident set size \(kbytes\): (\d+)",
    }
    out: dict[str, Any] = {}
    for key, pattern in get.items():
        found = next(
            (re.search(pattern, line) for _, line in lines if re.search(pattern, line)), None
        )
        out[key] = float(found[1]) if found else None
    return out


def one_run(clone: Path, n: int, weeks: int, env: dict[str, str]) -> dict[str, Any]:
    load_before = loadavg()
    t0 = time.monotonic()
    code, chunks = run_in_pty(["/usr/bin/time", "-v", "make", "demo", f"WEEKS={weeks}"], clone, env)
    total = time.monotonic() - t0
    lines = lines_of(chunks)
    longest, at, before = silence(chunks, total)
    result = {
        "run": n,
        "exit": code,
        "wall_s": round(total, 1),
        "load_before": load_before,
        "load_after": loadavg(),
        **cpu_of(lines),
        "phases_s": phases(lines, total),
        "longest_silence_s": longest,
        "silence_starts_at_s": at,
        "silence_after": before,
        "pages": next(
            (m[1] for _, line in lines if (m := re.search(r"\((\d+) pages\)", line))), None
        ),
    }
    (clone / f"demo-run{n}.log").write_bytes(b"".join(c for _, c in chunks))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rev", default="HEAD", help="What to clone (default: HEAD).")
    ap.add_argument("--weeks", type=int, default=26)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="Keep the clone (and its demo).")
    args = ap.parse_args()

    base = args.out or Path(tempfile.mkdtemp(prefix="pyschedvisu-demo-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    clone = base / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", args.rev], cwd=clone, check=True)
    rev = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSCHEDVISU_", "PREFECT_"))}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
    env.pop("VIRTUAL_ENV", None)
    runs = []
    try:
        for n in range(1, args.runs + 1):
            runs.append(one_run(clone, n, args.weeks, env))
            r = runs[-1]
            target = TARGETS_S.get(n, SECOND_TARGET_S)
            print(
                f"run {n}: {r['wall_s']} s (target {target:.0f} s), exit {r['exit']}, "
                f"load {r['load_before']} -> {r['load_after']}, CPU {r['user_s']} + {r['sys_s']} s, "
                f"longest silence {r['longest_silence_s']} s after {r['silence_after']!r}"
            )
            for name, value in r["phases_s"].items():
                print(f"    {name:40s} {'-' if value is None else f'{value:7.1f} s'}")
            sys.stdout.flush()
    finally:
        report = {"rev": rev, "weeks": args.weeks, "cpus": os.cpu_count(), "runs": runs}
        (base / "demo-bench.json").write_text(json.dumps(report, indent=2))
        print(f"results: {base / 'demo-bench.json'} ({rev})")
        if not args.keep:
            shutil.rmtree(clone, ignore_errors=True)
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
