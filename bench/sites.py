"""Benchmark: N sites on one Prefect server (PostgreSQL), each with its worker and its PACS.

    .venv/bin/python bench/sites.py [--sites 3] [--weeks 4] [--end 2024-03-08] [--out DIR] [--keep]

The multi-site set-up as it runs in production, on one machine: a Prefect server on
PostgreSQL (a throw-away cluster of Debian's ``postgresql``, as the tests start it), the
config's ``[sites.<id>]`` tables, ``pyschedvisu deploy``, one process worker per site's pool
(``pyschedvisu-<site>``, each in its own folder) and one demo PACS per site
(``pyschedvisu pacs serve``, a process each, all serving the same synthetic department of
``--weeks`` weeks ending ``--end``). The network report runs on the first site's pool.

Set-up (not timed): the synthetic department, PostgreSQL, the server, the PACS, the
deployments and the workers. Timed, all sites at once as their schedules would start them:

1. every site's ``backfill`` from Jan 1 of the department's first year to ``--end`` (a site's
   history: ``--weeks 52`` is a year of department, plus the empty days before it);
2. every site's ``weekly-report`` of the week ending ``--end`` (its days already stored);
3. the ``network-report`` of that week.

Reported: wall time of each stage and in all; flow and task runs the server recorded; the
server's database size (``pg_database_size``) before and after; the orchestration overhead
per task run, measured by a probe flow of no-op tasks against the same server, before the
sites' runs (empty database) and after them (full); the projection to 100 sites (database
size and task runs scale with sites x days; a site's runs run on its own worker's host).

The PACS answer without a throttle and the sites' clients ask up to 200 requests/s (the
hospital's default pacing of 20/s would time the pacing, not the orchestration).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # the tests' PostgreSQL and Prefect server helpers

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PROBE_TASKS = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_ids(n: int) -> list[str]:
    return [f"s{i:02d}" for i in range(1, n + 1)]


def write_config(root: Path, ports: dict[str, int], first_year: int) -> Path:
    tables = "".join(
        f"""
[sites.{site}.pacs]
port = {port}
[sites.{site}.paths]
data_dir = "{(root / site / "data").as_posix()}"
output_dir = "{(root / site / "reports").as_posix()}"
"""
        for site, port in ports.items()
    )
    first = next(iter(ports))
    config = root / "sites.toml"
    config.write_text(
        f"""
[pacs]
host = "127.0.0.1"
called_ae = "DEMOPACS"
move_port = 0
max_ops_per_s = 200
[report]
year_start = {first_year}
[network]
title = "Benchmark network"
output_dir = "{(root / "network").as_posix()}"
work_pool = "pyschedvisu-{first}"
{tables}"""
    )
    return config


def wait_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"demo PACS on {port} exited ({proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)  # polling a real readiness signal, bounded by the deadline
    raise TimeoutError(f"demo PACS on {port} not listening after {timeout_s} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run_all(
    server: Any, deployment_runs: list[tuple[str, dict[str, Any]]], timeout_s: float
) -> float:
    """Create a run of each (deployment name, parameters) at once; wait for all; wall time."""
    from tests.fixtures.prefect_server import wait_until

    t0 = time.perf_counter()
    ids = []
    for name, params in deployment_runs:
        (dep,) = server.post("/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
        ids.append(
            server.post(f"/deployments/{dep['id']}/create_flow_run", {"parameters": params})["id"]
        )

    def ended() -> list[dict[str, Any]] | None:
        runs = server.post("/flow_runs/filter", {"flow_runs": {"id": {"any_": ids}}})
        done = [r for r in runs if (r.get("state") or {}).get("type") in TERMINAL]
        return runs if len(done) == len(ids) else None

    runs = wait_until(ended, timeout_s, f"{len(ids)} flow runs", step_s=1.0)
    wall = time.perf_counter() - t0
    bad = [r for r in runs if r["state"]["type"] != "COMPLETED"]
    if bad:
        raise RuntimeError(
            "; ".join(f"{r['name']}: {r['state']['type']} {r['state'].get('message')}" for r in bad)
        )
    return wall


def probe(api_url: str, tasks: int = PROBE_TASKS) -> float:
    """Orchestration overhead per task run (ms): a flow of ``tasks`` no-op tasks minus a flow
    of none, against the server, run in this process."""
    os.environ["PREFECT_API_URL"] = api_url
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # a line per no-op task would drown ours
    from prefect import flow, task

    @task
    def noop(i: int) -> int:
        return i

    @flow(name="bench-probe")
    def probe_flow(n: int) -> int:
        return len([f.result() for f in noop.map(range(n))])

    def timed(n: int) -> float:
        t0 = time.perf_counter()
        probe_flow(n)
        return time.perf_counter() - t0

    timed(1)  # imports, the flow registered
    empty = min(timed(0) for _ in range(2))
    full = timed(tasks)
    return 1000 * (full - empty) / tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=3, help="Number of sites (default 3).")
    parser.add_argument(
        "--weeks", type=int, default=4, help="Weeks of department per site (52: a year)."
    )
    parser.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2024, 3, 8))
    parser.add_argument("--out", type=Path, default=None, help="Working folder (default: temp).")
    parser.add_argument("--keep", action="store_true", help="Keep the working folder.")
    parser.add_argument("--json", type=Path, default=None, help="Write the results here too.")
    args = parser.parse_args(argv)

    from tests.fixtures.postgres import start_postgres
    from tests.fixtures.prefect_server import BIN, start_prefect_server, wait_until

    root = Path(args.out or tempfile.mkdtemp(prefix="pyschedvisu-bench-sites-"))
    root.mkdir(parents=True, exist_ok=True)
    sites = site_ids(args.sites)
    start = args.end - dt.timedelta(weeks=args.weeks) + dt.timedelta(days=3)  # a Monday
    first_day = dt.date(start.year, 1, 1)
    procs: list[subprocess.Popen[bytes]] = []
    pg = None
    server = None
    results: dict[str, Any] = {
        "sites": args.sites,
        "weeks": args.weeks,
        "days": f"{first_day}..{args.end}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
    }
    try:
        t0 = time.perf_counter()
        from pyschedvisu.config import Settings
        from pyschedvisu.synth import generate

        department = root / "department"
        if not (department / "dicom").is_dir():
            summary = generate(department, start, args.end, 2019, Settings())
            results["department"] = {
                "studies": summary.studies,
                "series": summary.series,
                "instances": summary.instances,
            }
        print(f"set-up: department {start}..{args.end} in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        pg = start_postgres()  # its own folder: the postgres user cannot enter ours
        (root / "prefect-home").mkdir(exist_ok=True)
        server = start_prefect_server(root / "prefect-home", pg.url)
        results["db_bytes_empty"] = pg.database_size()
        key = secrets.token_hex(32)
        ports = {site: free_port() for site in sites}
        for site, port in ports.items():
            log = (root / f"pacs-{site}.log").open("wb")
            proc = subprocess.Popen(
                [str(BIN / "pyschedvisu"), "pacs", "serve", "--data", str(department),
                 "--port", str(port), "--ae", "DEMOPACS"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYSCHEDVISU_PSEUDONYM_KEY": key},
            )  # fmt: skip
            procs.append(proc)
            wait_port(port, 120, proc)
        config = write_config(root, ports, first_day.year)
        env = {
            **server.env,
            "PYSCHEDVISU_HOME": str(ROOT),
            "PYSCHEDVISU_CONFIG": str(config),
            "PYSCHEDVISU_PSEUDONYM_KEY": key,
        }
        deployed = subprocess.run(
            [str(BIN / "pyschedvisu"), "deploy", "--out", str(root / "prefect.sites.yaml")],
            env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if deployed.returncode != 0:
            raise RuntimeError(f"pyschedvisu deploy: {deployed.stdout}{deployed.stderr}")
        for site in sites:
            folder = root / f"worker-{site}"
            folder.mkdir(exist_ok=True)
            log = (folder / "worker.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "prefect"),
                        "worker",
                        "start",
                        "--pool",
                        f"pyschedvisu-{site}",
                        "--type",
                        "process",
                    ],
                    cwd=folder,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={
                        **env,
                        "PYSCHEDVISU_PATHS__LOG_DIR": str(folder / "logs"),
                        "PREFECT_WORKER_QUERY_SECONDS": "2",
                    },
                )
            )
        for site in sites:
            wait_until(
                lambda site=site: server.post(f"/work_pools/pyschedvisu-{site}/workers/filter", {}),
                180,
                f"the worker of {site}",
            )
        print(f"set-up: PostgreSQL, server, {len(sites)} PACS, deploy, workers in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
        results["probe_ms_per_task_run_empty_db"] = probe(server.url)

        end = args.end.isoformat()
        stages = {
            "backfill": [
                (f"backfill-{s}", {"start": first_day.isoformat(), "end": end}) for s in sites
            ],
            "weekly": [(f"weekly-report-{s}", {"end": end, "send_email": False}) for s in sites],
            "network": [("network-report", {"end": end, "send_email": False})],
        }
        total = 0.0
        for stage, runs in stages.items():
            wall = run_all(server, runs, timeout_s=6 * 3600)
            results[f"{stage}_s"] = round(wall, 1)
            total += wall
            print(f"{stage}: {len(runs)} run(s) in {wall:.1f} s", flush=True)
        results["total_s"] = round(total, 1)
        results["flow_runs"] = int(pg.sql("SELECT count(*) FROM flow_run"))
        results["task_runs"] = int(pg.sql("SELECT count(*) FROM task_run"))
        results["db_bytes"] = pg.database_size()
        results["probe_ms_per_task_run_full_db"] = probe(server.url)

        # Projection. A site's year in steady state is 52 weekly runs, each with a
        # retrieve-day task run per business day of its year so far (~125 on average: the
        # days already stored are cache hits, recorded all the same) plus its other tasks.
        weekly_tasks = int(
            pg.sql(
                "SELECT count(*) FROM task_run t JOIN flow_run r ON t.flow_run_id = r.id "
                "JOIN flow f ON r.flow_id = f.id WHERE f.name = 'weekly-report'"
            )
        ) / len(sites)
        ytd = len(Settings().business_days(dt.date(args.end.year, 1, 1), args.end))
        per_year = 52 * (max(weekly_tasks - ytd, 0) + 125)
        per_task = (results["db_bytes"] - results["db_bytes_empty"]) / results["task_runs"]
        results["projection"] = {
            "task_runs_per_weekly_run": round(weekly_tasks),
            "db_bytes_per_task_run": round(per_task),
            "task_runs_per_site_year": round(per_year),
            "db_mb_per_site_year": round(per_year * per_task / 1e6),
            "db_gb_100_sites_year": round(100 * per_year * per_task / 1e9, 1),
            "task_runs_100_weekly_runs": round(100 * weekly_tasks),
            "task_runs_per_s_served": round(results["task_runs"] / total, 1),
        }
        print(json.dumps(results, indent=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    finally:
        for proc in reversed(procs):
            stop(proc)
        if server is not None:
            server.stop()
        if pg is not None:
            pg.stop()
        if not args.keep and args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
