"""Two sites on one Prefect server (PostgreSQL), each with its own pool, worker and PACS.

The scale proof of the multi-site set-up, end to end as an operator runs it:

* one config with ``[sites.a]`` (its PACS: the demo PACS) and ``[sites.b]`` (its PACS: a
  real Orthanc), each with its own data and report folders;
* ``pyschedvisu deploy`` registers every site's deployments on ``pyschedvisu-a`` and
  ``pyschedvisu-b`` (and the network report's) on the Prefect server, whose database is
  PostgreSQL;
* two ``prefect worker start`` processes, one per pool, each in its own working directory
  (a worker on a host inside each site's network);
* site a's PACS is down: a's backfill of two days and b's weekly run start together; b's
  completes, a's fails alone. a's PACS answers again (same port); a's run is retried as the
  UI's *Retry* does and completes, then a's weekly run; b's run is not run again and its
  stored days are untouched;
* the network report's run then completes with both sites' machines, its totals the sums.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from pyschedvisu.store import SeriesStore
from tests.conftest import LOG_DIR_ENV, free_port
from tests.fixtures.orthanc import Orthanc
from tests.fixtures.prefect_server import BIN, PrefectServer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
END = dt.date(2024, 3, 8)  # the Friday of the tiny department's week
FAILING = (dt.date(2024, 3, 4), dt.date(2024, 3, 5))  # site a's backfill while its PACS is down
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SITES = ("a", "b")


def write_config(path: Path, root: Path, port_a: int, orthanc: Orthanc, move_port: int) -> Path:
    path.write_text(
        f"""
[pacs]
host = "127.0.0.1"
move_port = 0
op_retries = 0
connect_timeout_s = 3
breaker_failures = 1
breaker_cooldown_s = 0
[report]
year_start = 2024
periods = ["hebdomadaire"]
language = "en"
[network]
title = "Two sites"
output_dir = "{(root / "network").as_posix()}"
work_pool = "pyschedvisu-a"

[sites.a.pacs]
port = {port_a}
called_ae = "DEMOPACS"
[sites.a.paths]
data_dir = "{(root / "a" / "data").as_posix()}"
output_dir = "{(root / "a" / "reports").as_posix()}"

[sites.b.pacs]
port = {orthanc.dicom_port}
called_ae = "{orthanc.aet}"
move_port = {move_port}
move_bind = "127.0.0.1"
max_concurrent = 2
[sites.b.paths]
data_dir = "{(root / "b" / "data").as_posix()}"
output_dir = "{(root / "b" / "reports").as_posix()}"
[sites.b.calendar]
timezone = "Europe/Paris"
"""
    )
    return path


@dataclass
class Worker:
    pool: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(srv: PrefectServer, pool: str, workdir: Path, config: Path) -> Worker:
    """``prefect worker start --pool <pool>`` in ``workdir``, ready once it heartbeats."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "worker.log"
    env = {
        **srv.env,
        "PYSCHEDVISU_HOME": str(ROOT),
        "PYSCHEDVISU_CONFIG": str(config),
        "PYSCHEDVISU_PSEUDONYM_KEY": os.environ["PYSCHEDVISU_PSEUDONYM_KEY"],
        LOG_DIR_ENV: str(workdir / "logs"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(pool, proc, log)
    try:
        wait_until(
            lambda: proc.poll() is None and srv.post(f"/work_pools/{pool}/workers/filter", {}),
            120,
            f"the first heartbeat of the worker on {pool}",
        )
    except BaseException:
        stop_worker(worker)
        raise
    return worker


def stop_worker(worker: Worker) -> None:
    if worker.process.poll() is None:
        os.killpg(worker.process.pid, signal.SIGTERM)
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait(timeout=10)
    print(f"--- worker {worker.pool}:\n{worker.output()[-3000:]}")


def deployment(srv: PrefectServer, name: str) -> dict[str, Any]:
    (dep,) = srv.post("/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
    return dep  # type: ignore[no-any-return]


def wait_state(srv: PrefectServer, run_id: str, timeout_s: float) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        run: dict[str, Any] = srv.get(f"/flow_runs/{run_id}")
        return run if (run.get("state") or {}).get("type") in TERMINAL else None

    result: dict[str, Any] = wait_until(check, timeout_s, f"flow run {run_id} to end", 1.0)
    return result


@pytest.fixture
def sites(
    prefect_server_pg: PrefectServer,
    demo_pacs: Callable[..., DemoPacs],
    orthanc_factory: Callable[..., Orthanc],
    tiny_pacs_dir: Path,
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    """Both PACS, the config, ``pyschedvisu deploy`` applied, one worker per site's pool."""
    srv = prefect_server_pg
    pacs_a = demo_pacs(tiny_pacs_dir)
    orthanc = orthanc_factory(tiny_pacs_dir, "Always")
    move_port = free_port()
    orthanc.set_modality("PYSCHEDVISU", "127.0.0.1", move_port)
    config = write_config(tmp_path / "sites.toml", tmp_path, pacs_a.port, orthanc, move_port)
    proc = subprocess.run(
        [str(BIN / "pyschedvisu"), "--config", str(config), "deploy", "--out",
         str(tmp_path / "prefect.sites.yaml")],
        env={**srv.env, "PYSCHEDVISU_PSEUDONYM_KEY": os.environ["PYSCHEDVISU_PSEUDONYM_KEY"]},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "prefect worker start --pool pyschedvisu-a" in proc.stdout
    workers: list[Worker] = []
    try:
        for site in SITES:
            workers.append(
                start_worker(srv, f"pyschedvisu-{site}", tmp_path / f"worker-{site}", config)
            )
        yield {
            "config": config,
            "pacs_a": pacs_a,
            "orthanc": orthanc,
            "workers": dict(zip(SITES, workers, strict=True)),
            "root": tmp_path,
        }
    finally:
        for worker in workers:
            stop_worker(worker)


def test_two_sites_one_server_a_down_site_fails_alone_and_is_retried_alone(
    prefect_server_pg: PrefectServer, sites: dict[str, Any], tiny_pacs_dir: Path
) -> None:
    srv = prefect_server_pg
    root: Path = sites["root"]
    workers: dict[str, Worker] = sites["workers"]

    # every site's deployments, on its own pool, in its own time zone; the network report's
    weekly = {s: deployment(srv, f"weekly-report-{s}") for s in SITES}
    for site, dep in weekly.items():
        assert dep["work_pool_name"] == f"pyschedvisu-{site}"
        assert dep["job_variables"]["env"]["PYSCHEDVISU_SITE"] == site
    assert weekly["b"]["schedules"][0]["schedule"]["timezone"] == "Europe/Paris"
    for site in SITES:
        assert deployment(srv, f"backfill-{site}")["work_pool_name"] == f"pyschedvisu-{site}"
    network = deployment(srv, "network-report")
    assert network["work_pool_name"] == "pyschedvisu-a"

    # site a's PACS is down: a's backfill of two days and b's weekly run start together
    pacs_a: DemoPacs = sites["pacs_a"]
    port_a = pacs_a.port
    pacs_a.stop()
    weekly_params = {"end": END.isoformat(), "send_email": False}
    backfill_params = {"start": FAILING[0].isoformat(), "end": FAILING[-1].isoformat()}
    runs = {
        "a": srv.post(
            f"/deployments/{deployment(srv, 'backfill-a')['id']}/create_flow_run",
            {"parameters": backfill_params},
        ),
        "b": srv.post(
            f"/deployments/{weekly['b']['id']}/create_flow_run", {"parameters": weekly_params}
        ),
    }
    done = {s: wait_state(srv, runs[s]["id"], 420) for s in ("b", "a")}
    assert done["b"]["state"]["type"] == "COMPLETED", done["b"]["state"]
    assert done["a"]["state"]["type"] == "FAILED", done["a"]["state"]
    assert "2 day(s) could not be retrieved" in done["a"]["state"]["message"], done["a"]["state"]
    for site in SITES:  # each run went to its own site's worker
        other = "b" if site == "a" else "a"
        assert runs[site]["id"] in workers[site].output()
        assert runs[site]["id"] not in workers[other].output()
    assert not SeriesStore(root / "a" / "data").days()
    store_b = SeriesStore(root / "b" / "data")
    assert END in set(store_b.days())
    b_manifests = {d: store_b.manifest(d) for d in store_b.days()}
    assert list((root / "b" / "reports").rglob("*.pdf"))

    # a's PACS answers again (same host and port): a's run is retried as the UI's Retry does
    back = DemoPacs(tiny_pacs_dir, host="127.0.0.1", port=port_a, behaviour=Behaviour())
    back.start()
    try:
        srv.post(
            f"/flow_runs/{runs['a']['id']}/set_state",
            {
                "state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry"},
                "force": True,
            },
        )
        again = wait_state(srv, runs["a"]["id"], 420)
        assert again["state"]["type"] == "COMPLETED", again["state"]
        assert again["run_count"] >= 2
        assert set(SeriesStore(root / "a" / "data").days()) == set(FAILING)
        # then a's weekly run, on its own worker
        run_a = srv.post(
            f"/deployments/{weekly['a']['id']}/create_flow_run", {"parameters": weekly_params}
        )
        weekly_a = wait_state(srv, run_a["id"], 420)
        assert weekly_a["state"]["type"] == "COMPLETED", weekly_a["state"]
        assert run_a["id"] in workers["a"].output()
    finally:
        back.stop()
    assert END in set(SeriesStore(root / "a" / "data").days())
    assert list((root / "a" / "reports").rglob("*.pdf"))
    # site b was left alone: its one run, once; its stored days untouched
    assert srv.get(f"/flow_runs/{runs['b']['id']}")["run_count"] == 1
    b_runs = srv.post("/flow_runs/filter", {"deployments": {"id": {"any_": [weekly["b"]["id"]]}}})
    assert len(b_runs) == 1
    assert {d: store_b.manifest(d) for d in store_b.days()} == b_manifests

    # the network report, on its pool, with both sites' numbers
    run = srv.post(f"/deployments/{network['id']}/create_flow_run", {"parameters": weekly_params})
    final = wait_state(srv, run["id"], 420)
    assert final["state"]["type"] == "COMPLETED", final["state"]
    assert run["id"] in workers["a"].output()
    (workbook,) = sorted((root / "network").rglob("*.xlsx"))
    assert sorted((root / "network").rglob("*.pdf"))
    table = pl.read_excel(workbook, sheet_name="network")
    machines = table.filter(pl.col("row") == "machine")
    totals = table.filter(pl.col("row") == "network")
    assert set(machines["site"].to_list()) == set(SITES)
    for r in totals.iter_rows(named=True):
        mine = machines.filter(
            (pl.col("period") == r["period"]) & (pl.col("machine_type") == r["machine_type"])
        )
        assert r["exams"] == mine["exams"].sum(), (r, mine)

    # the server's database is PostgreSQL: every run above is in its tables
    pg = srv.postgres
    assert pg is not None
    ids = "', '".join([runs["a"]["id"], runs["b"]["id"], run_a["id"], run["id"]])
    assert pg.sql(f"SELECT count(*) FROM flow_run WHERE id IN ('{ids}')") == "4"
