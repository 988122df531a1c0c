"""Benchmark of the retrieval: N synthetic business days from Orthanc (both modes) and the
throttled demo PACS, our client against a naive 2019-like method, in the same run.

    .venv/bin/python bench/retrieve.py [--days 20] [--out DIR] [--targets orthanc-always,...]
                                       [--naive-days 5] [--keep]

Targets: ``orthanc-always`` (StorageAccessOnFind Always: timing at IMAGE level),
``orthanc-never`` (Never: files needed, like the hospital), ``hospital`` (demo PACS with
``Behaviour.hospital()``: no C-GET, minimal IMAGE level, 0xC336 beyond 2 in flight / 10 ops/s,
hierarchical queries only), ``throttled`` (the demo PACS as it is, with the same 0xC336
limits; paced at 9 operations/s like ``hospital``), ``demo`` (the demo PACS of ``make demo`` and
``bench/weekly.py``, in-process, at the default pacing of 20 operations/s), ``hostile`` (the
hospital-like demo PACS with a lower busy threshold: 0xC336 beyond 2 operations in flight or 5
a second, retrieved twice, at the default pacing (2 associations, 20 requests/s) and at 4 / 500
requests/s; days that fail are counted, not fatal; no naive run). The last three are not in the
default list.

Measured per target and method: wall time, associations opened, DIMSE operations, bytes
received (all PDUs: C-FIND answers and C-STORE'd instances) per kept series, retries, 0xC336
answers. The naive method (like the 2019 tool): one association per query, C-MOVE of the first
and the last instance of every series, 3 retries after a short random delay; it runs on the
first ``--naive-days`` days (it is slow) and is compared per day.

Targets (issue 3): <= 1 association per day per worker; no pixel bytes when IMAGE-level
attributes suffice; >= 5x fewer bytes and >= 3x less time than naive; ~250 days from a local
Orthanc in <= 10 min on 2 cores (extrapolated from the per-day time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START = dt.date(2024, 3, 4)


def _free_port() -> int:
    from tests.conftest import free_port

    return free_port()


# --------------------------------------------------------------------------- naive client


class NaiveClient:
    """The 2019 way: a fresh association per query, C-MOVE of instance 1 and N of every series."""

    def __init__(self, host: str, port: int, called_ae: str, move_port: int) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import (
            StudyRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelMove,
        )

        from pyschedvisu.adapters.dicomnet import STORAGE_CLASSES, TRANSFER_SYNTAXES, decode_header

        self.host, self.port, self.called_ae = host, port, called_ae
        self.find_model = StudyRootQueryRetrieveInformationModelFind
        self.move_model = StudyRootQueryRetrieveInformationModelMove
        self.counts = {
            "associations": 0,
            "dimse_ops": 0,
            "bytes_received": 0,
            "retries": 0,
            "throttled": 0,
            "instances": 0,
        }
        self.lock = threading.Lock()
        self.ae = AE("PYSCHEDVISU")
        self.ae.add_requested_context(self.find_model)
        self.ae.add_requested_context(self.move_model)
        scp = AE("PYSCHEDVISU")
        for uid in STORAGE_CLASSES:
            scp.add_supported_context(uid, TRANSFER_SYNTAXES)

        def on_store(event: Any) -> int:
            decode_header(event.request.DataSet.getvalue(), event.context.transfer_syntax)
            self._add("instances", 1)
            return 0

        handlers = [
            (evt.EVT_C_STORE, on_store),
            (evt.EVT_DATA_RECV, lambda e: self._add("bytes_received", len(e.data))),
        ]
        self.server = scp.start_server(("127.0.0.1", move_port), block=False, evt_handlers=handlers)
        self.recv = [(evt.EVT_DATA_RECV, lambda e: self._add("bytes_received", len(e.data)))]

    def _add(self, key: str, n: int) -> None:
        with self.lock:
            self.counts[key] += n

    def _op(self, fn: Any) -> Any:
        for _attempt in range(4):
            assoc = self.ae.associate(
                self.host, self.port, ae_title=self.called_ae, evt_handlers=self.recv
            )
            self._add("associations", 1)
            if not assoc.is_established:
                raise RuntimeError("naive: no association")
            try:
                self._add("dimse_ops", 1)
                ok, out = fn(assoc)
            finally:
                if assoc.is_established:
                    assoc.release()
            if ok:
                return out
            self._add("retries", 1)
            time.sleep(random.uniform(0.1, 0.5))  # the 2019 tool: a short random delay
        return out

    def find(self, query: Any) -> list[Any]:
        def fn(assoc: Any) -> tuple[bool, list[Any]]:
            out = []
            for status, ident in assoc.send_c_find(query, self.find_model):
                code = int(status.Status) if "Status" in status else -1
                if code in (0xFF00, 0xFF01):
                    out.append(ident)
                elif code != 0:
                    self._add("throttled", 1)
                    return False, []
            return True, out

        return list(self._op(fn))

    def move(self, query: Any) -> None:
        def fn(assoc: Any) -> tuple[bool, None]:
            for status, _ in assoc.send_c_move(query, "PYSCHEDVISU", self.move_model):
                code = int(status.Status) if "Status" in status else -1
                if code in (0xFF00,):
                    continue
                if code not in (0, 0xB000):
                    self._add("throttled", 1)
                    return False, None
            return True, None

        self._op(fn)

    def day(self, day: dt.date) -> int:
        """Studies, series, then first/last instance of each series; returns series seen."""
        from pydicom.dataset import Dataset

        from pyschedvisu_core import queries as core

        n = 0
        studies = {
            s.StudyInstanceUID: s for m in ("PT", "NM") for s in self.find(core.study_query(day, m))
        }
        for study_uid, study in studies.items():
            for series in self.find(
                core.series_query(day, study_uid, str(study.get("PatientID", "")))
            ):
                n += 1
                count = int(series.get("NumberOfSeriesRelatedInstances") or 1)
                for number in sorted({1, count}):
                    q = Dataset()
                    q.QueryRetrieveLevel = "IMAGE"
                    q.StudyInstanceUID = study_uid
                    q.SeriesInstanceUID = series.SeriesInstanceUID
                    q.InstanceNumber = str(number)
                    q.SOPInstanceUID = ""
                    answers = self.find(q)
                    if answers:
                        m = Dataset()
                        m.QueryRetrieveLevel = "IMAGE"
                        m.StudyInstanceUID = study_uid
                        m.SeriesInstanceUID = series.SeriesInstanceUID
                        m.SOPInstanceUID = answers[0].SOPInstanceUID
                        self.move(m)
        return n

    def close(self) -> None:
        self.server.shutdown()


# --------------------------------------------------------------------------- runs


def run_ours(
    name: str,
    host: str,
    port: int,
    ae: str,
    move_port: int,
    days: list[dt.date],
    work: Path,
    *,
    tolerate_failures: bool = False,
    **pacs: Any,
) -> dict[str, Any]:
    from pyschedvisu.config import Settings
    from pyschedvisu.retrieval import forget_capabilities, make_client, retrieve_day
    from pyschedvisu_core.errors import PySchedVisuError

    forget_capabilities()
    data = work / f"data-{name}"
    shutil.rmtree(data, ignore_errors=True)
    conf = {
        "host": host,
        "port": port,
        "called_ae": ae,
        "move_port": move_port,
        "move_bind": "127.0.0.1",
        **pacs,
    }
    settings = Settings(pacs=conf, paths={"data_dir": str(data)})
    client = make_client(settings)
    t0 = time.monotonic()

    def one(day: dt.date) -> dict[str, Any]:
        try:
            res = retrieve_day(day, settings, client=client)
        except PySchedVisuError as exc:
            if not tolerate_failures:
                raise
            print(f"{name}: day {day} failed: {exc}", flush=True)
            return {"day": day.isoformat(), "failed_day": str(exc)}
        return {
            "day": day.isoformat(),
            "seconds": res.seconds,
            "series": res.series.height,
            "failed": res.failed.height,
            "method": res.method,
            **res.ops,
        }

    try:
        # As `pyschedvisu retrieve` does: pacs.max_concurrent days in flight, one client.
        with ThreadPoolExecutor(settings.pacs.max_concurrent) as pool:
            per_day = list(pool.map(one, days))
    finally:
        client.close()
    wall = time.monotonic() - t0
    c = client.counters.as_dict()
    done = [d for d in per_day if "failed_day" not in d]
    series = sum(d["series"] + d["failed"] for d in done)
    return {
        "target": name,
        "method": "ours",
        "days": len(days),
        "failed_days": len(per_day) - len(done),
        "days_per_min": round(len(done) / (wall / 60), 2),
        # the pace the client's AIMD pacer ended at (before it existed: the configured one)
        "pace": str(client.pace) if hasattr(client, "pace") else "fixed",
        "wall_s": round(wall, 2),
        "s_per_day": round(wall / len(days), 3),
        "associations": c["associations"],
        "inbound_associations": c["inbound_associations"],
        "dimse_ops": c["dimse_ops"],
        "bytes_received": c["bytes_received"],
        "bytes_per_series": round(c["bytes_received"] / max(series, 1)),
        "instances_received": c["instances_received"],
        "retries": c["retries"],
        "throttled": c["throttled"],
        "series": series,
        "methods": sorted({d["method"] for d in done}),
        "per_day": per_day,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--naive-days", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--targets", default="orthanc-always,orthanc-never,hospital")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--figure", type=Path, default=None, help="Write a PNG bar chart here.")
    args = ap.parse_args()
    # public, but 256 bits as a real key must be (privacy.key_entropy_bits)
    os.environ.setdefault(
        "PYSCHEDVISU_PSEUDONYM_KEY",
        "9ce3ea81bd5e958dc5fdfdd3b706c5520096750d54076e9f6cb27b0436a7f52a",
    )

    from pyschedvisu.config import Settings
    from pyschedvisu.synth import generate

    work = args.out or Path(tempfile.mkdtemp(prefix="bench-retrieve-"))
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    days: list[dt.date] = []
    end = START
    while len(days) < args.days:
        end += dt.timedelta(days=1)
        days = settings.business_days(START, end)
    dept = work / "department"
    made = dept / "synth.json"
    # a department kept from a shorter run (--keep / --out) must cover these days too
    if not made.exists() or not set(map(str, days)) <= set(json.loads(made.read_text())["days"]):
        t0 = time.monotonic()
        summary = generate(dept, START, end, args.seed)
        print(
            f"synthetic department {START}..{end}: {summary} in {time.monotonic() - t0:.0f} s",
            flush=True,
        )
    naive_days = days[: args.naive_days]
    results: list[dict[str, Any]] = []
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    try:
        for target in targets:
            if target.startswith("orthanc"):
                from tests.fixtures.orthanc import start_orthanc

                mode = "Always" if target == "orthanc-always" else "Never"
                move_port = _free_port()
                orth = start_orthanc(work / f"orthanc-{mode}", mode=mode, move_port=move_port)
                try:
                    t0 = time.monotonic()
                    n = orth.load(dept / "dicom")
                    print(
                        f"{target}: {n} instances loaded in {time.monotonic() - t0:.0f} s",
                        flush=True,
                    )
                    results.append(
                        run_ours(
                            target,
                            orth.host,
                            orth.dicom_port,
                            orth.aet,
                            move_port,
                            days,
                            work,
                            max_concurrent=2,
                            max_ops_per_s=200.0,
                        )
                    )
                    print(
                        json.dumps({k: v for k, v in results[-1].items() if k != "per_day"}),
                        flush=True,
                    )
                    naive_port = _free_port()
                    orth.set_modality("PYSCHEDVISU", "127.0.0.1", naive_port)
                    results.append(
                        _naive_with_port(
                            target, orth.host, orth.dicom_port, orth.aet, naive_days, naive_port
                        )
                    )
                    print(json.dumps(results[-1]), flush=True)
                finally:
                    orth.stop()
            elif target == "hostile":
                from pyschedvisu.demo_pacs import Behaviour, DemoPacs

                for label, pacing in (
                    ("hostile, defaults (2 / 20 ops/s)", {}),
                    ("hostile, 4 / 500 ops/s", {"max_concurrent": 4, "max_ops_per_s": 500.0}),
                ):
                    move_port = _free_port()
                    pacs = DemoPacs(
                        dept,
                        behaviour=Behaviour.hospital(max_in_flight=2, max_ops_per_s=5.0),
                        move_destinations={"PYSCHEDVISU": ("127.0.0.1", move_port)},
                    )
                    pacs.start()
                    try:
                        results.append(
                            run_ours(
                                label,
                                "127.0.0.1",
                                pacs.port,
                                pacs.ae_title,
                                move_port,
                                days,
                                work,
                                tolerate_failures=True,
                                **pacing,
                            )
                        )
                        results[-1]["pacs_busy"] = pacs.stats.throttled
                        print(
                            json.dumps({k: v for k, v in results[-1].items() if k != "per_day"}),
                            flush=True,
                        )
                    finally:
                        pacs.stop()
            elif target in ("hospital", "demo", "throttled"):
                from pyschedvisu.demo_pacs import Behaviour, DemoPacs

                behaviour = {
                    "hospital": Behaviour.hospital(),
                    "demo": Behaviour(),
                    # the demo PACS as it is, throttled like the hospital's (0xC336 beyond 2
                    # operations in flight or 10 a second)
                    "throttled": Behaviour(max_in_flight=2, max_ops_per_s=10.0),
                }[target]
                move_port = _free_port()
                pacs = DemoPacs(
                    dept,
                    behaviour=behaviour,
                    move_destinations={"PYSCHEDVISU": ("127.0.0.1", move_port)},
                )
                pacs.start()
                try:
                    results.append(
                        run_ours(
                            target,
                            "127.0.0.1",
                            pacs.port,
                            pacs.ae_title,
                            move_port,
                            days,
                            work,
                            max_concurrent=2,
                            # the demo PACS of the weekly run, at the default pacing
                            max_ops_per_s=20.0 if target == "demo" else 9.0,
                        )
                    )
                    print(
                        json.dumps({k: v for k, v in results[-1].items() if k != "per_day"}),
                        flush=True,
                    )
                    naive_port = _free_port()
                    pacs.move_destinations["PYSCHEDVISU"] = ("127.0.0.1", naive_port)
                    results.append(
                        _naive_with_port(
                            target, "127.0.0.1", pacs.port, pacs.ae_title, naive_days, naive_port
                        )
                    )
                    print(json.dumps(results[-1]), flush=True)
                finally:
                    pacs.stop()
    finally:
        out = work / "bench-retrieve.json"
        out.write_text(json.dumps(results, indent=2, default=str))
        print(f"results: {out}")
        print(markdown(results))
        if args.figure and results:
            figure(results, args.figure)
            print(f"figure: {args.figure}")
        if not args.keep and args.out is None:
            shutil.rmtree(dept, ignore_errors=True)


def _naive_with_port(
    name: str, host: str, port: int, ae: str, days: list[dt.date], move_port: int
) -> dict[str, Any]:
    client = NaiveClient(host, port, ae, move_port)
    t0 = time.monotonic()
    series = 0
    try:
        for day in days:
            series += client.day(day)
    finally:
        client.close()
    wall = time.monotonic() - t0
    c = client.counts
    return {
        "target": name,
        "method": "naive-2019",
        "days": len(days),
        "wall_s": round(wall, 2),
        "s_per_day": round(wall / max(len(days), 1), 3),
        "associations": c["associations"],
        "dimse_ops": c["dimse_ops"],
        "bytes_received": c["bytes_received"],
        "bytes_per_series": round(c["bytes_received"] / max(series, 1)),
        "instances_received": c["instances"],
        "retries": c["retries"],
        "throttled": c["throttled"],
        "series": series,
    }


def figure(results: list[dict[str, Any]], path: Path) -> None:
    """Seconds per day and kB received per series, ours vs naive, per target (log scale)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("seconds per day", "kB received per series")
    )
    for method, color in (("ours", "seagreen"), ("naive-2019", "indianred")):
        rows = [r for r in results if r["method"] == method]
        names = [r["target"] for r in rows]
        fig.add_bar(
            x=names, y=[r["s_per_day"] for r in rows], name=method, marker_color=color, row=1, col=1
        )
        fig.add_bar(
            x=names,
            y=[r["bytes_per_series"] / 1000 for r in rows],
            name=method,
            marker_color=color,
            showlegend=False,
            row=1,
            col=2,
        )
    fig.update_yaxes(type="log")
    fig.update_layout(
        width=900, height=400, barmode="group", title="Retrieval: pySchedVisu vs a 2019-like client"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_image(str(path))


def markdown(results: list[dict[str, Any]]) -> str:
    """The tables for docs/benchmarks.md."""
    hostile = [r for r in results if r["target"].startswith("hostile")]
    results = [r for r in results if not r["target"].startswith("hostile")]
    lines: list[str] = []
    if hostile:
        lines += [
            "| target | days | failed days | days/min | DIMSE ops | retries | 0xC336 answered | pace at the end |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in hostile:
            lines.append(
                f"| {r['target']} | {r['days']} | {r['failed_days']} | {r['days_per_min']:.2f} | "
                f"{r['dimse_ops']} | {r['retries']} | {r.get('pacs_busy', r['throttled'])} | {r['pace']} |"
            )
        lines.append("")
    if not results:
        return "\n".join(lines)
    lines += [
        "| target | method | days | s/day | assoc./day | DIMSE ops/day | bytes/series | instances moved | retries | 0xC336 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        d = max(r["days"], 1)
        lines.append(
            f"| {r['target']} | {r['method']}{' (' + '+'.join(r.get('methods', [])) + ')' if r.get('methods') else ''} | {r['days']} | {r['s_per_day']:.2f} | "
            f"{r['associations'] / d:.2f} | {r['dimse_ops'] / d:.0f} | {r['bytes_per_series']:,} | {r['instances_received']} | {r['retries']} | {r['throttled']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
