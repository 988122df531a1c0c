"""The worklist-snapshot flow and the weekly report with a worklist, on a real Prefect server.

The tiny department gets a small appointment book for its Monday. A snapshot run whose
worklist aborts is retried by its task, then ends Failed, keeping nothing; the weekly report
still completes: Monday is planned against performed (one performed step, one no-show, one
unplanned study), the other days say "no plan", never "no-show".
"""

from __future__ import annotations

import datetime as dt
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from pypdf import PdfReader

from pyschedvisu.demo_pacs import DemoPacs
from pyschedvisu.synth.appointments import BOOK_SCHEMA
from pyschedvisu.worklist.store import WorklistStore
from tests.fixtures.prefect_server import PrefectServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MONDAY, TUESDAY, END = dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 8)


@pytest.fixture
def on_server(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url}):
        yield prefect_server
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=30)
        EventsWorker.drain_all(timeout=30)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot task's two retries without their delays (the deployment keeps them)."""
    import tasks.retrieve
    import tasks.worklist

    monkeypatch.setattr(
        tasks.worklist,
        "snapshot_worklist",
        tasks.worklist.snapshot_worklist.with_options(retry_delay_seconds=0),
    )
    monkeypatch.setattr(
        tasks.retrieve, "retrieve_day", tasks.retrieve.retrieve_day.with_options(retries=0)
    )


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


@pytest.fixture
def tiny_with_book(tiny_pacs_dir: Path, tmp_path: Path) -> Path:
    """The tiny department and a RIS book for its Monday: the PET study (accession A1)
    booked at 08:00, a PET no-show at 10:00; the afternoon bone scan is unplanned."""
    out = tmp_path / "tiny"
    shutil.copytree(tiny_pacs_dir, out)
    common = {
        "date": MONDAY,
        "machine": "PET Siemens",
        "station_ae": "PETCT_VISION",
        "station_name": "PET Siemens",
        "modality": "PT",
        "study_uid": None,
        "booked_at": at(MONDAY, "00:00") - dt.timedelta(days=3),
        "rescheduled_at": None,
        "cancelled_at": None,
    }
    rows = [
        {
            **common,
            "patient_id": "1001",
            "patient_name": "Test^Patient1001",
            "accession_number": "A1",
            "requested_procedure_id": "RP1",
            "step_id": "SPS1",
            "description": "PET-CT FDG TRONC",
            "first_start": at(MONDAY, "08:00"),
            "start": at(MONDAY, "08:00"),
            "end": at(MONDAY, "08:30"),
            "performed_at": at(MONDAY, "08:16"),
        },
        {
            **common,
            "patient_id": "2002",
            "patient_name": "Test^Absent",
            "accession_number": "N1",
            "requested_procedure_id": "RP2",
            "step_id": "SPS2",
            "description": "PET-CT FDG TRONC",
            "first_start": at(MONDAY, "10:00"),
            "start": at(MONDAY, "10:00"),
            "end": at(MONDAY, "10:30"),
            "performed_at": None,
        },
    ]
    (out / "truth").mkdir(exist_ok=True)
    pl.DataFrame(rows, schema=BOOK_SCHEMA).write_parquet(out / "truth" / "book.parquet")
    return out


def write_config(path: Path, pacs: DemoPacs, data: Path) -> Path:
    path.write_text(
        f"""
[pacs]
host = "127.0.0.1"
port = {pacs.port}
called_ae = "{pacs.ae_title}"
move_port = 0
op_retries = 0
[worklist]
enabled = true
port = {pacs.port}
called_ae = "{pacs.ae_title}"
[paths]
data_dir = "{data.as_posix()}"
output_dir = "{(data / "reports").as_posix()}"
[report]
year_start = 2024
periods = ["hebdomadaire"]
"""
    )
    return path


def task_runs(srv: PrefectServer, flow_run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = srv.post(
        "/task_runs/filter", {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}}
    )
    return found


def test_a_worklist_down_fails_its_snapshot_run_never_the_weekly_report(
    on_server: PrefectServer,
    quick_retries: None,
    demo_pacs: Callable[..., DemoPacs],
    tiny_with_book: Path,
    tmp_path: Path,
) -> None:
    from flows.weekly import weekly_report
    from flows.worklist import worklist_snapshot

    pacs = demo_pacs(tiny_with_book)
    data = tmp_path / "data"
    config = write_config(tmp_path / "pyschedvisu.toml", pacs, data)

    ok = worklist_snapshot(day=MONDAY, config_path=str(config), return_state=True)
    assert ok.is_completed(), ok
    assert ok.result()["entries"] == 2

    pacs.behaviour.fail_dates = {TUESDAY}
    down = worklist_snapshot(day=TUESDAY, config_path=str(config), return_state=True)
    assert down.is_failed(), down
    assert "worklist snapshot" in (down.message or "")
    (run,) = task_runs(on_server, str(down.state_details.flow_run_id))
    assert run["state"]["type"] == "FAILED" and run["run_count"] == 3  # retried twice
    store = WorklistStore(data)
    assert store.planned_days() == [MONDAY] and not store.snapshot_files(TUESDAY)

    pacs.behaviour.fail_dates = set()  # the PACS itself answers for every day
    weekly = weekly_report(end=END, config_path=str(config), send_email=False, return_state=True)
    assert weekly.is_completed(), weekly
    result = weekly.result()
    pages = PdfReader(result["pdf"]).pages
    text = unicodedata.normalize("NFKC", "\n".join(p.extract_text() for p in pages))
    assert "Planifié / réalisé" in text
    assert "sans plan" in text  # Tuesday to Friday: no snapshot, no plan
    summary = pl.read_excel(result["xlsx"], sheet_name="plan_summary")
    row = summary.filter(
        (pl.col("machine") == "PET Siemens") & (pl.col("period") == "hebdomadaire")
    ).row(0, named=True)
    assert (row["business_days"], row["plan_days"]) == (5, 1)
    assert (row["planned"], row["performed"], row["no_shows"]) == (2, 1, 1)
    assert row["delay_median_s"] == 16 * 60  # 08:16 against 08:00
    nm = summary.filter(
        (pl.col("machine") == "Discovery 670 NM") & (pl.col("period") == "hebdomadaire")
    ).row(0, named=True)
    assert (nm["planned"], nm["unplanned"]) == (0, 1)  # its Monday study had no slot
    matches = pl.read_excel(result["xlsx"], sheet_name="plan_matches")
    assert "accession_number" not in matches.columns and "step_key" not in matches.columns
    assert sorted(matches["status"].to_list()) == ["no_show", "performed", "unplanned"]


def test_a_snapshot_run_without_a_worklist_configured_does_nothing(
    on_server: PrefectServer, tmp_path: Path
) -> None:
    from flows.worklist import worklist_snapshot

    config = tmp_path / "pyschedvisu.toml"
    config.write_text(f'[paths]\ndata_dir = "{(tmp_path / "data").as_posix()}"\n')
    state = worklist_snapshot(day=MONDAY, config_path=str(config), return_state=True)
    assert state.is_completed(), state
    assert state.result() == {"skipped": "worklist.enabled is false"}
    assert not (tmp_path / "data" / "worklist").exists()


def test_a_matching_that_fails_leaves_the_plan_out_not_the_report(
    on_server: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow

    import tasks.worklist
    from pyschedvisu.config import Settings

    monkeypatch.setattr(
        tasks.worklist, "match_plan", tasks.worklist.match_plan.with_options(retries=0)
    )
    settings = Settings(worklist={"enabled": True}, paths={"data_dir": str(tmp_path / "data")})
    broken = WorklistStore(tmp_path / "data").planned_path(MONDAY)
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not parquet")

    @flow
    def report_inputs_only() -> str | None:
        return tasks.worklist.plan_for_report(settings)

    assert report_inputs_only() is None  # the report goes on without the plan
    settings.worklist.enabled = False
    assert report_inputs_only() is None  # and without a worklist, nothing is asked
