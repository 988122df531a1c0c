"""End to end through a real Prefect server: deploy, worker, a failed backfill, retry from the UI.

``prefect deploy`` registers the deployments of ``prefect.yaml``; a process worker runs them.
The demo PACS aborts every query about 2 of 5 days: the backfill run ends Failed with 3 days
stored. After the fault is cleared, the run is retried the way the UI's *Retry* button does
it (state ``AwaitingRetry``, forced): only the 2 missing days reach the PACS and the run
completes.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyschedvisu.config import load_settings
from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from pyschedvisu.store import SeriesStore
from tests.fixtures.prefect_server import BIN, PrefectServer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
POOL = "pyschedvisu"
DAYS = [dt.date(2024, 3, d) for d in (4, 5, 6, 7, 8)]  # Mon..Fri of the tiny department's week
FAILING = {dt.date(2024, 3, 4), dt.date(2024, 3, 7)}  # a day with studies, an empty day
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def write_config(path: Path, pacs: DemoPacs, data: Path) -> Path:
    path.write_text(
        f"""
[pacs]
host = "127.0.0.1"
port = {pacs.port}
called_ae = "{pacs.ae_title}"
move_port = 0
op_retries = 0
connect_timeout_s = 5
[paths]
data_dir = "{data.as_posix()}"
output_dir = "{(data / "reports").as_posix()}"
[report]
year_start = 2024
"""
    )
    return path


@pytest.fixture
def worker(prefect_server: PrefectServer, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``prefect deploy`` of prefect.yaml, then a process worker on its pool (stopped after)."""
    srv = prefect_server
    srv.prefect("work-pool", "create", POOL, "--type", "process", "--overwrite")
    srv.prefect(
        "--no-prompt",
        "deploy",
        "--all",
        cwd=ROOT,
        extra_env={"PYSCHEDVISU_HOME": str(ROOT)},
        timeout_s=180,
    )
    log = tmp_path / "worker.log"
    env = {
        **srv.env,
        "PYSCHEDVISU_HOME": str(ROOT),
        "PYSCHEDVISU_PSEUDONYM_KEY": os.environ["PYSCHEDVISU_PSEUDONYM_KEY"],
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Ready when the server has seen the worker's heartbeat on the pool.
        wait_until(
            lambda: proc.poll() is None and srv.post(f"/work_pools/{POOL}/workers/filter", {}),
            90,
            "the worker's first heartbeat",
        )
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        print(log.read_text()[-4000:])


def wait_state(
    srv: PrefectServer, run_id: str, timeout_s: float, done: set[str] = TERMINAL
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        run: dict[str, Any] = srv.get(f"/flow_runs/{run_id}")
        state = run.get("state") or {}
        return run if state.get("type") in done else None

    result: dict[str, Any] = wait_until(
        check, timeout_s, f"flow run {run_id} to reach {sorted(done)}", step_s=1.0
    )
    return result


def test_failed_backfill_retried_from_the_ui_fetches_only_the_missing_days(
    prefect_server: PrefectServer,
    worker: subprocess.Popen[bytes],
    demo_pacs: Callable[..., DemoPacs],
    tiny_pacs_dir: Path,
    tmp_path: Path,
) -> None:
    srv = prefect_server
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(fail_dates=set(FAILING)))
    data = tmp_path / "data"
    config = write_config(tmp_path / "pyschedvisu.toml", pacs, data)
    store = SeriesStore(data)

    (dep,) = srv.post("/deployments/filter", {"deployments": {"name": {"any_": ["backfill"]}}})
    assert dep["entrypoint"] == "flows/backfill.py:backfill"
    (weekly,) = srv.post(
        "/deployments/filter", {"deployments": {"name": {"any_": ["weekly-report"]}}}
    )
    assert weekly["schedules"][0]["schedule"]["cron"] == "0 1 * * 6"
    assert weekly["schedules"][0]["schedule"]["timezone"] == "Europe/Zurich"

    # The UI's custom run form sends the parameters as JSON: plain strings for dates.
    run = srv.post(
        f"/deployments/{dep['id']}/create_flow_run",
        {"parameters": {"start": "2024-03-04", "end": "2024-03-08", "config_path": str(config)}},
    )
    first = wait_state(srv, run["id"], 240)
    assert first["state"]["type"] == "FAILED", first["state"]
    for day in sorted(FAILING):
        assert day.isoformat() in first["state"]["message"]
    assert set(store.days()) == set(DAYS) - FAILING
    before = {d: store.manifest(d) for d in store.days()}
    assert pacs.stats.aborted >= len(FAILING)

    # The PACS answers again; retry exactly as the UI's "Retry" button does.
    pacs.behaviour.fail_dates.clear()
    pacs.reset_stats()
    srv.post(
        f"/flow_runs/{run['id']}/set_state",
        {
            "state": {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"},
            "force": True,
        },
    )
    second = wait_state(srv, run["id"], 180)
    assert second["state"]["type"] == "COMPLETED", second["state"]
    assert second["run_count"] >= 2

    assert set(store.days()) == set(DAYS)
    for day, manifest in before.items():
        assert store.manifest(day) == manifest, f"{day} was fetched again"
    # Every retrieved day starts with one STUDY-level C-FIND per study modality (DOMAIN §2.1):
    # the retry asked about exactly the 2 missing days, not the 5 of the range.
    per_day = len(load_settings(config).retrieve.study_modalities)
    study_finds = [op for op in pacs.stats.ops if op.kind == "find" and op.level == "STUDY"]
    assert len(study_finds) == per_day * len(FAILING), pacs.stats.as_dict()
    assert store.manifest(dt.date(2024, 3, 4))["studies"] >= 1  # type: ignore[index]


def run_logs(srv: PrefectServer, run_id: str) -> list[dict[str, Any]]:
    """Every log record of a flow run (and its task runs) the server holds, oldest first."""
    logs: list[dict[str, Any]] = srv.post(
        "/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"}
    )
    return logs


def test_failed_flow_run_logs_its_reason_once_without_a_traceback(
    prefect_server: PrefectServer,
    worker: subprocess.Popen[bytes],
    demo_pacs: Callable[..., DemoPacs],
    tiny_pacs_dir: Path,
    tmp_path: Path,
) -> None:
    """Regression: every intentionally Failed flow run made the worker log ERROR tracebacks.

    Two known failures through the worker: a day the PACS does not deliver, and a config
    file that does not exist. Each run is Failed, says why in exactly one ERROR record and
    nowhere a traceback, neither in the run's logs nor in the worker's own output.
    """
    srv = prefect_server
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(fail_dates={dt.date(2024, 3, 5)}))
    config = write_config(tmp_path / "pyschedvisu.toml", pacs, tmp_path / "data")
    (dep,) = srv.post("/deployments/filter", {"deployments": {"name": {"any_": ["backfill"]}}})
    cases = {
        "1 day(s) could not be retrieved (2024-03-05)": str(config),
        "file not found": str(tmp_path / "missing.toml"),
    }
    for reason, config_path in cases.items():
        run = srv.post(
            f"/deployments/{dep['id']}/create_flow_run",
            {
                "parameters": {
                    "start": "2024-03-04",
                    "end": "2024-03-08",
                    "config_path": config_path,
                }
            },
        )
        state = wait_state(srv, run["id"], 240)["state"]
        assert state["type"] == "FAILED", state
        assert reason in state["message"]
        # the run's last records reach the server a moment after its state, in batches
        # that a loaded machine may deliver in any order: wait for the end and the reason
        logs = wait_until(
            lambda run_id=run["id"]: (
                (got := run_logs(srv, run_id))
                and any("Finished in state" in r["message"] for r in got)
                and any(r["level"] >= 40 for r in got)
                and got
            ),
            60,
            "the flow run's final log records and its reason at ERROR",
        )
        errors = [r for r in logs if r["level"] >= 40]
        assert len(errors) == 1, [r["message"] for r in errors]
        assert reason in errors[0]["message"]
        assert not [r["message"] for r in logs if "Traceback" in r["message"]]
    worker_output = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Traceback" not in worker_output, worker_output[-4000:]
    assert "exited with unexpected exception" not in worker_output
