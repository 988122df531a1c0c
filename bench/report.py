"""Benchmark: the 37-page report (summary, trends, 5 machines x 7 periods) over ten years of
synthetic studies, with its HTML and Excel workbook.

Builds the study table directly (``bench/synthetic.py``; every business day counts as
retrieved, so a machine's days without studies are "no activity"), then times the page builds
and the rendering (one kaleido browser; the summary and trends pages and the workbook are made
inside it) and reports total / per-page time, peak memory (this process and Chromium, its
children) and the sizes. Targets (2 cores): <= 15 s, PDF <= 5 MB.

    .venv/bin/python bench/report.py [--end 2025-11-21] [--years 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import synthetic_studies

from pyschedvisu import render
from pyschedvisu.config import Settings


class TreeCpu:
    """CPU seconds of this process and all its descendants (Chromium and its renderers).

    Sampled from /proc every 0.1 s by a thread, keeping each process's last value, so that
    processes that exit (Chromium's renderers are not reaped into our rusage) still count.
    The machine may be shared: CPU time, unlike wall time, does not grow with its load.
    """

    def __init__(self) -> None:
        self.tck = os.sysconf("SC_CLK_TCK")
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        procs: dict[int, tuple[int, float]] = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(pid)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / self.tck)
        mine = {os.getpid()}
        changed = True
        while changed:
            changed = False
            for pid, (ppid, _) in procs.items():
                if ppid in mine and pid not in mine:
                    mine.add(pid)
                    changed = True
        for pid in mine:
            if pid in procs:
                self.last[pid] = procs[pid][1]

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def start(self) -> TreeCpu:
        self._sample()
        self._thread.start()
        return self

    def total(self) -> float:
        self._sample()
        return sum(self.last.values())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.total()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--end", default="2025-11-21", help="report end date (a Friday)")
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--out", default=None, help="output folder (default: a temp dir)")
    args = ap.parse_args()
    end = dt.date.fromisoformat(args.end)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-report-"))
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    settings.report.year_start = end.year - args.years + 1
    settings.paths.output_dir = out / "reports"

    t0 = time.perf_counter()
    studies = synthetic_studies(dt.date(settings.report.year_start, 1, 1), end, settings)
    path = out / "studies.parquet"
    studies.write_parquet(path)
    t_data = time.perf_counter() - t0

    load = os.getloadavg()[0]
    cpu = TreeCpu().start()
    cpu0 = cpu.total()
    t1 = time.perf_counter()
    pages = []
    per_page = []
    retrieved = settings.business_days(dt.date(settings.report.year_start - 2, 1, 1), end)
    windows = render.service_windows(path)
    # as `pyschedvisu report` does: the workbook's study sheet is written while pages build
    with render.WorkbookJob(settings, path, end) as workbook:
        for machine in settings.display_machines():
            for period in settings.report.periods:
                ts = time.perf_counter()
                pages.append(
                    render.build_page(settings, path, machine, period, end, retrieved, windows)
                )
                per_page.append((f"{machine}/{period}", time.perf_counter() - ts))
        t_build = time.perf_counter() - t1
        t2 = time.perf_counter()
        result = render.render_report(
            settings,
            pages,
            end,
            studies=path,
            retrieved=retrieved,
            windows=windows,
            workbook=workbook,
        )
    t_render = time.perf_counter() - t2
    cpu_s = cpu.stop() - cpu0
    total = t_build + t_render
    n = result["pages"]
    slowest = max(per_page, key=lambda x: x[1])
    res = {
        "studies": studies.height,
        "years": args.years,
        "cores": os.cpu_count(),
        "pages": n,
        "skipped": len(result["skipped"]),
        "synthetic_data_s": round(t_data, 2),
        "build_pages_s": round(t_build, 2),
        "render_s": round(t_render, 2),
        "total_s": round(total, 2),
        "per_page_s": round(total / max(n, 1), 3),
        "cpu_s_all_processes": round(cpu_s, 1),
        "load_avg_at_start": round(load, 1),
        "slowest_build": [slowest[0], round(slowest[1], 3)],
        "peak_rss_self_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_children_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
        "pdf_mb": round(Path(result["pdf"]).stat().st_size / 1e6, 2),
        "html_mb": round(Path(result["html"]).stat().st_size / 1e6, 2) if result["html"] else None,
        "xlsx_mb": round(Path(result["xlsx"]).stat().st_size / 1e6, 2),
        "pdf": result["pdf"],
    }
    print(json.dumps(res, indent=2))
    ok = total <= 15 and res["pdf_mb"] <= 5
    print(f"targets (<= 15 s, PDF <= 5 MB): {'met' if ok else 'NOT met'} (wall)")
    if load > (os.cpu_count() or 1):
        print(
            f"machine busy (load {load:.1f}): wall time is inflated; CPU of all processes "
            f"{cpu_s:.1f} s ~ {cpu_s / (os.cpu_count() or 1):.1f} s on idle cores"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
