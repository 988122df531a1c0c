"""Benchmark: one weekly run on top of two years of history, end to end through Prefect.

    .venv/bin/python bench/weekly.py [--mode deployment|local] [--end D] [--years 2] [--out DIR] [--keep]

Set-up (not timed): two years of series are written straight into the series store
(``bench/extract.py``'s generator; final days with today's retrieval fingerprint), the last
week exists only as DICOM in the synthetic department served by the demo PACS (in this
process, default hospital pacing of 20 requests/s), and an SMTP server (aiosmtpd) listens on
loopback.

``--mode deployment`` (default; how the weekly report runs in production): a real
``prefect server start`` on loopback, ``prefect deploy --all`` from ``prefect.yaml`` and a
process worker are started first (not timed: they are always up in production); then a run
of the ``weekly-report`` deployment is created through the API and timed until it is
Completed. That time includes the worker's hand-off, the fresh Python process the worker
starts for the run (interpreter, imports) and the whole flow.

``--mode local``: ``weekly_report`` runs in this process in Prefect's local mode, exactly as
``pyschedvisu run weekly`` without ``PREFECT_API_URL`` does; Prefect's temporary API server
start is timed separately (it is absent under a deployment).

Measured: total wall time of the run and the flow's phases (retrieval of the new week,
extraction, the pages, rendering, artifacts, e-mail, as timed and logged by the flow itself);
what is left is Prefect's own overhead (process start, flow/task orchestration).
Target (issue 6): total <= 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ for the series generator of extract.py, the root for the tests' Prefect helpers.
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

TARGET_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(root: Path, end: dt.date, years: int, smtp_port: int, pacs_port: int) -> Path:
    """History in the store, the new week as DICOM, and the config; returns the config path."""
    from extract import synthetic_series

    from pyschedvisu.config import load_settings
    from pyschedvisu.retrieval import retrieval_fingerprint
    from pyschedvisu.store import SeriesStore
    from pyschedvisu.synth import generate
    from pyschedvisu_core import schema

    week_start = end - dt.timedelta(days=4)
    config = root / "pyschedvisu.toml"
    config.write_text(
        f"""
[pacs]
host = "127.0.0.1"
port = {pacs_port}
called_ae = "DEMOPACS"
move_port = 0
[paths]
data_dir = "{(root / "data").as_posix()}"
output_dir = "{(root / "reports").as_posix()}"
[privacy]
allow_demo_key = true
[report]
year_start = {end.year - years + 1}
[email]
enabled = true
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
recipients = ["bench@localhost"]
"""
    )
    settings = load_settings(config)
    history = settings.business_days(
        dt.date(end.year - years + 1, 1, 1), week_start - dt.timedelta(days=1)
    )
    store = SeriesStore(settings.paths.data_dir)
    fingerprint = retrieval_fingerprint(settings)
    todo = [d for d in history if store.final_manifest(d, fingerprint) is None]
    if todo:
        t0 = time.perf_counter()
        series = synthetic_series(todo, settings)
        empty_failed, empty_excl = (
            schema.empty(schema.FAILED_SCHEMA),
            schema.empty(schema.EXCLUDED_SCHEMA),
        )
        for (day,), frame in series.partition_by("date", as_dict=True).items():
            manifest = {
                "fingerprint": fingerprint,
                "final": True,
                "method": "bench",
                "studies": frame["study_uid"].n_unique(),
                "reasons": {},
            }
            store.write_day(day, frame, empty_failed, empty_excl, manifest)
        print(
            f"set-up: {len(todo)} history days stored in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    t0 = time.perf_counter()
    generate(root / "department", week_start, end, seed=2019, settings=settings)
    print(
        f"set-up: new week {week_start}..{end} as DICOM in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return config


POOL = "pyschedvisu"


def _from_logs(server: Any, run_id: str) -> tuple[dict[str, float], int | None]:
    """The flow's phase clock ('phases (s): a 1.0, b 2.0') and page count, from its logs."""
    logs = server.post(
        "/logs/filter",
        {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_DESC", "limit": 200},
    )
    phases: dict[str, float] = {}
    pages = None
    for record in logs:
        message = record.get("message", "")
        if message.startswith("phases (s): "):
            pairs = (item.rsplit(" ", 1) for item in message[len("phases (s): ") :].split(", "))
            phases = {name: float(value) for name, value in pairs}
        elif found := re.fullmatch(r"report: .* \((\d+) pages\)", message):
            pages = int(found.group(1))
    return phases, pages


def run_deployment(root: Path, config: Path, end: dt.date) -> tuple[float, dict[str, Any]]:
    """Server, deployment and worker (untimed), then one timed run of ``weekly-report``.

    Started exactly as the deployment tests start them (``tests/fixtures/prefect_server.py``).
    """
    import subprocess

    from tests.fixtures.prefect_server import BIN, PrefectServer, server_env, wait_until

    home = root / ".prefect"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**server_env(home, url), "PYSCHEDVISU_HOME": str(ROOT)}
    log = home / "server.log"
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str, extra: dict[str, str] | None = None) -> None:
        # The server itself runs without PREFECT_API_URL, as in the tests' fixture.
        base = env if name != "server" else {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
        with (home / f"{name}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [str(BIN / "prefect"), *args],
                    cwd=ROOT,
                    env={**base, **(extra or {})},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    try:
        t0 = time.perf_counter()
        start(
            "server",
            *("server", "start", "--host", "127.0.0.1", "--port", str(port)),
            *("--no-scheduler", "--no-late-runs", "--no-ui", "--analytics-off"),
        )
        server = PrefectServer(url, home, env, procs[0], log)
        wait_until(server.healthy, 180, "prefect server /api/health")
        server.prefect("work-pool", "create", POOL, "--type", "process", "--overwrite")
        server.prefect("--no-prompt", "deploy", "--all", cwd=ROOT, timeout_s=300)
        start(
            "worker",
            *("worker", "start", "--pool", POOL, "--type", "process"),
            extra={"PREFECT_WORKER_QUERY_SECONDS": "1"},
        )
        wait_until(lambda: server.post(f"/work_pools/{POOL}/workers/filter", {}), 120, "worker")
        print(f"set-up: server, deployments and worker up in {time.perf_counter() - t0:.1f} s")

        (dep,) = server.post(
            "/deployments/filter", {"deployments": {"name": {"any_": ["weekly-report"]}}}
        )
        t1 = time.perf_counter()
        run = server.post(
            f"/deployments/{dep['id']}/create_flow_run",
            {"parameters": {"end": end.isoformat(), "config_path": str(config)}},
        )
        done = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
        final = wait_until(
            lambda: (r := server.get(f"/flow_runs/{run['id']}"))["state"]["type"] in done and r,
            900,
            "the weekly run",
            step_s=0.5,
        )
        total_s = time.perf_counter() - t1
        if final["state"]["type"] != "COMPLETED":
            raise RuntimeError(f"run {final['state']['name']}: {final['state'].get('message')}")
        started = dt.datetime.fromisoformat(final["start_time"])
        ended = dt.datetime.fromisoformat(final["end_time"])
        # The run's last log lines reach the API shortly after its final state.
        phases, pages = wait_until(
            lambda: (found := _from_logs(server, run["id"]))[0] and found, 60, "the run's logs"
        )
        info = {"flow_s": (ended - started).total_seconds(), "phases": phases, "pages": pages}
        return total_s, info
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def run_local(config: Path, end: dt.date) -> tuple[float, dict[str, Any]]:
    """``weekly_report`` in this process, Prefect's temporary API server timed apart."""
    t0 = time.perf_counter()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # starts the temporary API server
        client.api_healthcheck()
    server_s = time.perf_counter() - t0
    from flows.weekly import weekly_report

    t1 = time.perf_counter()
    state = weekly_report(end=end, config_path=str(config), return_state=True)
    flow_s = time.perf_counter() - t1
    if not state.is_completed():
        raise RuntimeError(f"run {state.name}: {state.message}")
    result: dict[str, Any] = state.result()
    info = {
        "prefect_server_start_s": server_s,
        "flow_s": flow_s,
        "phases": result["phases_s"],
        "pages": result["pages"],
    }
    return time.perf_counter() - t0, info


def main(argv: list[str] | None = None) -> int:
    from pyschedvisu_core.calendar import auto_report_end

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("deployment", "local"), default="deployment")
    parser.add_argument(
        "--end", type=dt.date.fromisoformat, default=auto_report_end(dt.datetime.now())
    )
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="Work dir (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="Keep the work dir")
    args = parser.parse_args(argv)

    root = (args.out or Path(tempfile.mkdtemp(prefix="bench-weekly-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(root / ".prefect")
    os.environ.pop("PREFECT_API_URL", None)
    from pyschedvisu.commands.run import local_mode_env

    local_mode_env()

    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    from pyschedvisu.demo_pacs import DemoPacs

    smtp_port, pacs_port = free_port(), free_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    pacs: DemoPacs | None = None
    load0 = os.getloadavg()[0]
    try:
        config = prepare(root, args.end, args.years, smtp_port, pacs_port)
        pacs = DemoPacs(root / "department", ae_title="DEMOPACS", host="127.0.0.1", port=pacs_port)
        pacs.start()
        if args.mode == "deployment":
            total_s, info = run_deployment(root, config, args.end)
        else:
            total_s, info = run_local(config, args.end)
    except (RuntimeError, TimeoutError) as exc:
        print(f"weekly run failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if pacs is not None:
            pacs.stop()
        smtp.stop()

    phases = dict(info.pop("phases"))
    flow_s = info["flow_s"]
    figures = {
        "mode": args.mode,
        "end": args.end.isoformat(),
        "pages": info.pop("pages"),
        "total_s": round(total_s, 1),
        **{k: round(v, 1) for k, v in info.items()},
        **{f"{k}_s": round(v, 1) for k, v in phases.items()},
        "prefect_overhead_in_flow_s": round(flow_s - sum(phases.values()), 1),
        "outside_flow_s": round(total_s - flow_s, 1),
        "target_s": TARGET_S,
        "cpus": os.cpu_count(),
        "load_avg_at_start": round(load0, 1),
    }
    print(json.dumps(figures, indent=2))
    print(
        f"{'OK' if total_s <= TARGET_S else 'OVER TARGET'}: {total_s:.1f} s (target {TARGET_S:.0f} s)"
    )
    if not args.keep and args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
