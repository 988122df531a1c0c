"""Benchmark: one weekly run on top of two years of history, end to end through Prefect.

    .venv/bin/python bench/weekly.py [--end 2025-11-21] [--years 2] [--out DIR] [--keep]

Set-up (not timed): two years of series are written straight into the series store
(``bench/extract.py``'s generator; final days with today's retrieval fingerprint), the last
week exists only as DICOM in the synthetic department served by the demo PACS, and an SMTP
server (aiosmtpd) listens on loopback. Then ``weekly_report`` runs in Prefect's local mode
(temporary API server) exactly as ``pyschedvisu run weekly`` does.

Measured: total wall time of the run; the temporary API server start; the flow's phases
(retrieval of the new week, extraction, the pages, rendering, artifacts, e-mail, as timed by
the flow itself); what is left is Prefect's own overhead (flow/task orchestration).
Target (issue 6): total <= 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
    todo = [d for d in history if not store.has_day(d, fingerprint)]
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


def main(argv: list[str] | None = None) -> int:
    from pyschedvisu_core.calendar import auto_report_end

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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

    from pyschedvisu.pacs import DemoPacs

    smtp_port, pacs_port = free_port(), free_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    pacs: DemoPacs | None = None
    try:
        config = prepare(root, args.end, args.years, smtp_port, pacs_port)
        pacs = DemoPacs(root / "department", ae_title="DEMOPACS", host="127.0.0.1", port=pacs_port)
        pacs.start()

        t0 = time.perf_counter()
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:  # starts the temporary API server
            client.api_healthcheck()
        server_s = time.perf_counter() - t0
        from flows.weekly import weekly_report

        t1 = time.perf_counter()
        state = weekly_report(end=args.end, config_path=str(config), return_state=True)
        flow_s = time.perf_counter() - t1
        total_s = time.perf_counter() - t0
        if not state.is_completed():
            print(f"run {state.name}: {state.message}", file=sys.stderr)
            return 1
        result: dict[str, Any] = state.result()
    finally:
        if pacs is not None:
            pacs.stop()
        smtp.stop()

    phases = dict(result["phases_s"])
    overhead = flow_s - sum(phases.values())
    figures = {
        "end": result["end"],
        "history_days": result["days"],
        "fetched_days": result["fetched"],
        "pages": result["pages"],
        "total_s": round(total_s, 1),
        "prefect_server_start_s": round(server_s, 1),
        "flow_s": round(flow_s, 1),
        **{f"{k}_s": round(v, 1) for k, v in phases.items()},
        "prefect_overhead_in_flow_s": round(overhead, 1),
        "target_s": TARGET_S,
        "cpus": os.cpu_count(),
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
